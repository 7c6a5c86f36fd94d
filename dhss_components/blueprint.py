"""What one share server is made of: every decision, from the config and the cloud facts.

Pure and complete: the network mode's NICs, the service subnet, the host ports, the
instance, the SSH path and its limits, the security rules, and every share's volume and
script parameters are settled here, as plain data, before any resource exists. Components
take their slice of this (plus the secrets and the outputs that wire them) and only declare
it. Each config option makes one hop: from ``config`` to the field here that carries it.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from . import naming
from .cloud_facts import CloudFacts
from .config import Backend, ShareSpec, StackSpec
from .interface_drivers import DriverName
from .network_modes import SSH_SOURCES, NetworkMode, NicRole
from .protocols import ProtocolName
from .security_rules import IngressRule, ingress_rules
from .service_subnet import allocation_pool, host_port_address
from .share_script import AccessClient, ShareScriptParams

# pulumi-command retries a refused dial with a growing pause capped at 5 s; its default of
# 10 attempts gives up after about 8 s, long before a service instance has booted.
DIAL_PAUSE_SECONDS = 5
# Room on top of Manila's own waits (boot, attach) for the script's other steps.
COMMAND_MARGIN_MINUTES = 10


@dataclass(frozen=True)
class Nic:
    """Where one of the instance's ports goes (or one of the host's)."""

    role: NicRole
    network_id: str | None
    """None: the service network this stack makes (its id is known only once it exists)."""
    subnet_id: str | None
    """None: this stack's service subnet."""


@dataclass(frozen=True)
class ServiceNetworkBlueprint:
    existing_network_id: str | None
    """service_network_id: used, never declared (so never deleted); None: the stack makes one."""
    network_name: str
    """service_network_name, for the network the stack makes."""
    subnet_name: str
    """Manila's name: service_subnet_for_handling_of_share_server_for_tenant_subnet_<id>."""
    subnet_cidr: ipaddress.IPv4Network
    gateway: bool
    """Only in the router modes: in direct mode a gateway would route the instance's traffic
    through the service network instead of its tenant port (Manila bug 1983819)."""
    allocation_pool: tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]
    """DHCP's range, leaving the last address for the host port."""
    router_id: str | None
    """The tenant subnet's router, joined to the service subnet in the router modes."""


@dataclass(frozen=True)
class HostPortBlueprint:
    role: Literal["service", "admin"]
    device_id: str
    """naming.host_port_device_id: Manila's manila-share/manila-admin-share, this server's own."""
    nic: Nic
    fixed_address: ipaddress.IPv4Address | None
    """Pinned in the service subnet (the SSH rule admits exactly it); Neutron picks on admin."""
    prefixlen: int


@dataclass(frozen=True)
class HostConnectivityBlueprint:
    driver: DriverName
    host: str
    """service_network_host: the Neutron agent host the ports are bound to."""
    bridge: str
    """ovs_integration_bridge."""
    ports: tuple[HostPortBlueprint, ...]


@dataclass(frozen=True)
class InstanceBlueprint:
    name: str
    """Manila's service_instance_name_template % "<backend>_<share server id>"."""
    image_id: str
    """The one active image named service_image_name, resolved once."""
    flavor_id: str
    availability_zone: str | None
    keypair_name: str | None
    public_key: str | None
    security_group_name: str
    ingress_rules: tuple[IngressRule, ...]
    nics: tuple[Nic, ...]
    """In Manila's order: tenant (direct modes), service, admin."""
    metadata: Mapping[str, str]
    generate_host_key: bool
    """Make the instance's SSH host key in the stack and hand it over at boot (cloud-init)."""


HostKey = str
"""What a connection pins: a public key line ("ssh-ed25519 AAAA..."), "generated" (the one
the stack makes for the instance) or "unverified" (nothing: the operator's explicit choice)."""


@dataclass(frozen=True)
class SshProxyBlueprint:
    host: str
    user: str
    port: int
    host_key: HostKey


@dataclass(frozen=True)
class SshBlueprint:
    role: NicRole
    """The instance address the share commands dial (Manila's ``ip`` unless ssh_address)."""
    user: str
    dial_error_limit: int
    """Dials before giving up: max_time_to_build_instance at pulumi-command's 5 s pace."""
    boot_seconds: int
    """max_time_to_build_instance: how long a new instance's sshd is waited for."""
    command_timeout: str
    """Each command's create/update/delete timeout: boot and attach waits, plus a margin."""
    proxy: SshProxyBlueprint | None
    host_key: HostKey
    """What the service instance must prove it is before any command runs on it."""
    wait_until_ready: bool
    """Whether this machine polls the instance's sshd (ssh_ready.sh) before the commands dial.
    Not through a bastion: the instance's address is reachable only from the bastion, so the
    commands' own dial limit is the wait there."""


@dataclass(frozen=True)
class ShareBlueprint:
    name: str
    share_id: str
    """Stable id standing in for Manila's share instance id."""
    protocol: ProtocolName
    volume_name: str
    volume_type: str | None
    availability_zone: str | None
    protect_volume: bool
    mount_path: str
    script: ShareScriptParams
    snapshot_id: str | None
    """A Cinder snapshot the volume is made from (Manila's create_share_from_snapshot)."""
    source_volume_id: str | None
    """A volume the volume is copied from."""

    @property
    def size(self) -> int:
        """GiB: the volume's size, which the script grows the filesystem to."""
        return self.script.size_gib


@dataclass(frozen=True)
class ShareServerBlueprint:
    share_server_id: str
    backend_name: str
    mode: NetworkMode
    network: ServiceNetworkBlueprint | None
    host: HostConnectivityBlueprint | None
    instance: InstanceBlueprint
    ssh: SshBlueprint
    shares: tuple[ShareBlueprint, ...]

    @property
    def public_role(self) -> NicRole:
        return self.mode.public_role

    @property
    def admin_export_role(self) -> NicRole:
        return self.mode.admin_export_role


def _nic(role: NicRole, spec: StackSpec) -> Nic:
    backend = spec.backend
    if role == "tenant":
        return Nic(role, spec.share_network.neutron_net_id, spec.share_network.neutron_subnet_id)
    if role == "admin":
        return Nic(role, backend.admin_network_id, backend.admin_subnet_id)
    return Nic(role, backend.service_network_id, None)


def _service_network(
    backend: Backend, facts: CloudFacts, subnet_name: str
) -> ServiceNetworkBlueprint | None:
    if facts.service_subnet_cidr is None:
        return None
    gateway = backend.network_mode.router
    return ServiceNetworkBlueprint(
        existing_network_id=backend.service_network_id,
        network_name=backend.service_network_name,
        subnet_name=subnet_name,
        subnet_cidr=facts.service_subnet_cidr,
        gateway=gateway,
        allocation_pool=allocation_pool(facts.service_subnet_cidr, with_gateway=gateway),
        router_id=facts.router_id,
    )


def _host(spec: StackSpec, facts: CloudFacts, server_id: str) -> HostConnectivityBlueprint | None:
    backend = spec.backend
    if not backend.driver.plugs_host_port:
        return None
    assert backend.service_network_host is not None  # config: required with these drivers
    ports = []
    if facts.service_subnet_cidr is not None:
        ports.append(
            HostPortBlueprint(
                role="service",
                device_id=naming.host_port_device_id("service", server_id),
                nic=_nic("service", spec),
                fixed_address=host_port_address(facts.service_subnet_cidr),
                prefixlen=facts.service_subnet_cidr.prefixlen,
            )
        )
    if facts.admin_subnet_cidr is not None:
        ports.append(
            HostPortBlueprint(
                role="admin",
                device_id=naming.host_port_device_id("admin", server_id),
                nic=_nic("admin", spec),
                fixed_address=None,
                prefixlen=facts.admin_subnet_cidr.prefixlen,
            )
        )
    return HostConnectivityBlueprint(
        driver=backend.driver.name,
        host=backend.service_network_host,
        bridge=backend.ovs_integration_bridge,
        ports=tuple(ports),
    )


def _ssh_sources(
    spec: StackSpec, facts: CloudFacts, host: HostConnectivityBlueprint | None
) -> tuple[ipaddress.IPv4Network, ...]:
    """Where SSH is admitted from: only where the commands come from."""
    backend = spec.backend
    if backend.ssh_source_cidrs:
        return backend.ssh_source_cidrs
    if backend.ssh_proxy:
        return backend.ssh_proxy.source_cidrs
    # The config has checked that the operator names the sources wherever this cannot.
    source = SSH_SOURCES[backend.effective_ssh_address]
    if source == "host port":
        assert host is not None
        address = host.ports[0].fixed_address
        assert address is not None
        return (ipaddress.IPv4Network(address),)
    assert source == "admin subnet"
    assert facts.admin_subnet_cidr is not None
    return (facts.admin_subnet_cidr,)


def _share(spec: StackSpec, server_id: str, share: ShareSpec) -> ShareBlueprint:
    backend = spec.backend
    share_id = naming.share_id(server_id, share.name)
    return ShareBlueprint(
        name=share.name,
        share_id=share_id,
        protocol=share.share_proto,
        volume_name=naming.volume_name(backend.volume_name_template, share_id),
        volume_type=backend.cinder_volume_type,
        availability_zone=_availability_zone(backend),
        protect_volume=backend.protect_volumes,
        mount_path=naming.mount_path(backend.share_mount_path, share.name),
        script=share_script_params(backend, share),
        snapshot_id=share.snapshot_id,
        source_volume_id=share.source_volume_id,
    )


def share_script_params(backend: Backend, share: ShareSpec) -> ShareScriptParams:
    """What share.sh is told about a share: the config alone decides it (no cloud facts), so
    a check of a running stack can rebuild it from the stack's config."""
    return ShareScriptParams(
        name=share.name,
        protocol=share.share_proto,
        size_gib=share.size,
        clients=tuple(
            AccessClient(rule.access_level, rule.access_to) for rule in share.access_rules
        ),
        mount_root=backend.share_mount_path,
        fstype=backend.share_volume_fstype,
        device_timeout=backend.max_time_to_attach,
    )


def _command_timeout(backend: Backend) -> str:
    waits = backend.max_time_to_build_instance + backend.max_time_to_attach
    return f"{math.ceil(waits / 60) + COMMAND_MARGIN_MINUTES}m"


def _availability_zone(backend: Backend) -> str | None:
    return backend.backend_availability_zone or backend.storage_availability_zone


def share_server_blueprint(
    spec: StackSpec, facts: CloudFacts, *, project: str, stack: str
) -> ShareServerBlueprint:
    backend, share_network = spec.backend, spec.share_network
    server_id = naming.share_server_id(project, stack, share_network.neutron_subnet_id)
    backend_name = backend.share_backend_name or "generic"
    mode = backend.network_mode
    host = _host(spec, facts, server_id)
    shares = tuple(_share(spec, server_id, share) for share in spec.shares)
    rules = ingress_rules(
        [
            (share.protocol, [facts.tenant_subnet_cidr, *(r.access_to for r in share.access_rules)])
            for share in spec.shares
        ],
        _ssh_sources(spec, facts, host),
    )
    proxy = backend.ssh_proxy
    return ShareServerBlueprint(
        share_server_id=server_id,
        backend_name=backend_name,
        mode=mode,
        network=_service_network(
            backend, facts, naming.service_subnet_name(share_network.neutron_subnet_id)
        ),
        host=host,
        instance=InstanceBlueprint(
            name=naming.service_instance_name(
                backend.service_instance_name_template, backend_name, server_id
            ),
            image_id=facts.image_id,
            flavor_id=backend.service_instance_flavor_id,
            availability_zone=_availability_zone(backend),
            keypair_name=(
                naming.keypair_name(backend.manila_service_keypair_name, server_id)
                if spec.public_key
                else None
            ),
            public_key=spec.public_key,
            security_group_name=naming.security_group_name(
                backend.service_instance_security_group, server_id
            ),
            ingress_rules=tuple(rules),
            nics=tuple(_nic(role, spec) for role in mode.nics),
            metadata={"manila-dhss:share-server-id": server_id},
            generate_host_key=backend.service_instance_host_key == "generate",
        ),
        ssh=SshBlueprint(
            role=backend.effective_ssh_address,
            user=backend.service_instance_user,
            # Keep dialling for as long as Manila waits for a new instance's SSH login.
            dial_error_limit=math.ceil(backend.max_time_to_build_instance / DIAL_PAUSE_SECONDS),
            boot_seconds=backend.max_time_to_build_instance,
            command_timeout=_command_timeout(backend),
            proxy=(
                SshProxyBlueprint(proxy.host, proxy.user, proxy.port, proxy.host_key)
                if proxy
                else None
            ),
            wait_until_ready=proxy is None,
            host_key=(
                "generated"
                if backend.service_instance_host_key == "generate"
                else backend.service_instance_host_key
            ),
        ),
        shares=shares,
    )
