"""What one share server is made of, decided from the config and the cloud facts.

Pure: Manila's four network modes, the names, the SSH path, the security rules and every
share's script parameters are settled here, as plain data, before any resource exists. The
components only declare what this says.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from . import naming
from .config import NOOP_DRIVER, ShareSpec, StackSpec
from .discovery import CloudFacts
from .host_port_script import INTERFACE_DRIVERS, InterfaceDriver
from .instance import NicRole
from .security_rules import IngressRule, ingress_rules
from .service_subnet import host_port_address
from .share_script import AccessClient, nfs_client

NetworkMode = Literal["router", "direct", "direct+admin", "router+admin"]


@dataclass(frozen=True)
class ShareBlueprint:
    name: str
    share_id: str
    size: int
    protocol: Literal["NFS", "CIFS"]
    clients: tuple[AccessClient, ...]
    volume_name: str
    mount_path: str


@dataclass(frozen=True)
class ShareServerBlueprint:
    share_server_id: str
    mode: NetworkMode
    instance_name: str
    keypair_name: str
    security_group_name: str
    service_subnet_name: str
    service_subnet_cidr: str | None
    router_id: str | None
    nic_roles: tuple[NicRole, ...]
    """The instance's NICs in Manila's order: tenant, service, admin."""
    ssh_role: NicRole
    """The address the share commands SSH to (Manila's `ip`)."""
    public_role: NicRole
    """The address clients mount (Manila's `public_address`)."""
    admin_export_role: NicRole
    """The address of the admin export location (Manila's `admin_ip` or `ip`)."""
    interface_driver: InterfaceDriver
    host_port_address: str | None
    ingress_rules: tuple[IngressRule, ...]
    shares: tuple[ShareBlueprint, ...]
    availability_zone: str | None
    backend_name: str


def _mode(connect: bool, admin: bool) -> NetworkMode:
    if connect:
        return "direct+admin" if admin else "direct"
    return "router+admin" if admin else "router"


def _nic_roles(mode: NetworkMode) -> tuple[NicRole, ...]:
    roles: dict[NetworkMode, tuple[NicRole, ...]] = {
        "router": ("service",),
        "direct": ("tenant", "service"),
        "direct+admin": ("tenant", "admin"),
        "router+admin": ("service", "admin"),
    }
    return roles[mode]


def _clients(share: ShareSpec) -> tuple[AccessClient, ...]:
    # NFS clients in Manila's exports forms (/0 -> *, /32 -> bare address); Samba's
    # `hosts allow` takes the address or CIDR as written.
    return tuple(
        AccessClient(
            level=rule.access_level,
            address=nfs_client(rule.access_to) if share.share_proto == "NFS" else rule.access_to,
        )
        for rule in share.access_rules
    )


def share_server_blueprint(
    spec: StackSpec, facts: CloudFacts, *, project: str, stack: str
) -> ShareServerBlueprint:
    backend, share_network = spec.backend, spec.share_network
    server_id = naming.share_server_id(project, stack, share_network.neutron_subnet_id)
    backend_name = backend.share_backend_name or "generic"
    mode = _mode(backend.connect_share_server_to_tenant_network, bool(backend.admin_network_id))
    roles = _nic_roles(mode)
    ssh_role: NicRole = backend.effective_ssh_address
    driver = INTERFACE_DRIVERS[backend.interface_driver]

    host_address = None
    if facts.service_subnet_cidr and backend.interface_driver != NOOP_DRIVER:
        host_address = host_port_address(facts.service_subnet_cidr)

    # SSH is admitted only from where the commands come from. The config has checked that
    # the operator names the source wherever the program cannot know it.
    if backend.ssh_source_cidrs:
        ssh_sources = list(backend.ssh_source_cidrs)
    elif backend.ssh_proxy:
        ssh_sources = list(backend.ssh_proxy.source_cidrs)
    elif ssh_role == "service":
        assert host_address is not None
        ssh_sources = [f"{host_address}/32"]
    else:
        # The host's admin port takes an address Neutron picks in the admin subnet.
        assert ssh_role == "admin"
        assert facts.admin_subnet_cidr is not None
        ssh_sources = [facts.admin_subnet_cidr]

    client_cidrs = [facts.tenant_subnet_cidr]
    shares = []
    for share in spec.shares:
        client_cidrs.extend(str(rule.network) for rule in share.access_rules)
        share_id = naming.share_id(server_id, share.name)
        shares.append(
            ShareBlueprint(
                name=share.name,
                share_id=share_id,
                size=share.size,
                protocol=share.share_proto,
                clients=_clients(share),
                volume_name=naming.volume_name(backend.volume_name_template, share_id),
                mount_path=naming.mount_path(backend.share_mount_path, share.name),
            )
        )

    return ShareServerBlueprint(
        share_server_id=server_id,
        mode=mode,
        instance_name=naming.service_instance_name(
            backend.service_instance_name_template, backend_name, server_id
        ),
        keypair_name=naming.keypair_name(backend.manila_service_keypair_name, server_id),
        security_group_name=naming.security_group_name(
            backend.service_instance_security_group, server_id
        ),
        service_subnet_name=naming.service_subnet_name(share_network.neutron_subnet_id),
        service_subnet_cidr=facts.service_subnet_cidr,
        router_id=facts.router_id,
        nic_roles=roles,
        ssh_role=ssh_role,
        public_role="tenant" if "tenant" in roles else "service",
        admin_export_role="admin" if "admin" in roles else ssh_role,
        interface_driver=driver,
        host_port_address=host_address,
        ingress_rules=tuple(
            ingress_rules({s.share_proto for s in spec.shares}, client_cidrs, ssh_sources)
        ),
        shares=tuple(shares),
        availability_zone=backend.backend_availability_zone or backend.storage_availability_zone,
        backend_name=backend_name,
    )
