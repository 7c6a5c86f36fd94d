"""What the stack reads from the cloud, all before it declares anything.

Each lookup is a provider invoke, i.e. an API call in every preview, so there are few and
their number does not grow with the number of shares. Every lookup that can find nothing, or
something unusable, ends in a message naming the config key, the value and how to find the
right one; all of it is raised before any resource exists.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import pulumi
import pulumi_openstack as openstack
from pulumi.runtime.settings import _get_rpc_manager

from .cloud_facts import CloudFacts
from .config import NAMESPACE, StackSpec
from .naming import service_subnet_name
from .service_subnet import Network, NoFreeServiceSubnet, choose_service_subnet_cidr

T = TypeVar("T")
_B = f"{NAMESPACE}:backend"
_N = f"{NAMESPACE}:shareNetwork"


class DiscoveryError(pulumi.RunError):
    """A fact about the cloud that makes the share server impossible; no traceback."""


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    # The engine's wrapping says which invoke failed; the key named below says it better.
    if text.startswith("invoke of ") and "failed: " in text:
        text = text.split("failed: ", 1)[1]
    return text


def _lookup(where: str, what: str, find: str, call: Callable[[], T]) -> T:
    """One invoke; a failure becomes an error that names the key and how to fix it."""
    try:
        return call()
    except Exception as exc:
        _handled(exc)
        message = f"{where}: {what} could not be read ({_reason(exc)}); {find}"
        raise DiscoveryError(message) from None


def _handled(exc: Exception) -> None:
    # The SDK keeps every failed RPC, and when the program ends it raises the first one, even
    # one the program caught (pulumi/runtime/rpc_manager.py RPCManager.do_rpc, and
    # stack.py wait_for_rpcs): the operator would see the provider's bare "Your query
    # returned no results" instead of the key to fix. This failure is handled here: forget
    # it, and only it. (The SDK is pinned in requirements.txt; tests/test_discovery.py
    # proves the operator sees our message.)
    manager = _get_rpc_manager()
    manager.rpcs = [
        rpc
        for rpc in manager.rpcs
        if not (rpc.done() and not rpc.cancelled() and rpc.exception() is exc)  # type: ignore[attr-defined]
    ]
    if manager.unhandled_exception is exc:
        manager.unhandled_exception = None
        manager.exception_traceback = None


def _ipv4(where: str, what: str, cidr: str) -> ipaddress.IPv4Network:
    network = ipaddress.ip_network(cidr, strict=False)
    if not isinstance(network, ipaddress.IPv4Network):
        # Manila's service instance gets IPv4 addresses only (its service subnets are IPv4).
        raise DiscoveryError(
            f"{where}: {what} is IPv6 ({network}); Manila's generic driver serves shares on "
            "IPv4 subnets only: give an IPv4 subnet of the network"
        )
    return network


def _router_for_subnet(net_id: str, subnet_id: str, gateway_ip: str | None) -> str:
    """Manila's _get_private_router: gateway IP -> the port holding it -> its router."""
    where = f"{_N}.neutron_subnet_id"
    if not gateway_ip:
        raise DiscoveryError(
            f"{where}: Subnet must have gateway. (tenant subnet {subnet_id} has none) Give the "
            "subnet a gateway attached to a router, or set "
            f"{_B}.connect_share_server_to_tenant_network: true"
        )
    port_ids = _lookup(
        where,
        f"the ports holding gateway {gateway_ip} of tenant subnet {subnet_id}",
        "check the subnet's router: openstack port list --fixed-ip ip-address=" + gateway_ip,
        lambda: openstack.networking.get_port_ids(network_id=net_id, fixed_ip=gateway_ip).ids,
    )
    for port_id in port_ids:
        port = _lookup(
            where,
            f"port {port_id}",
            f"check it with: openstack port show {port_id}",
            lambda port_id=port_id: openstack.networking.get_port(port_id=port_id),  # type: ignore[misc]
        )
        # Manila compares the port's first fixed IP with the gateway.
        if port.all_fixed_ips and port.all_fixed_ips[0] == gateway_ip and port.device_id:
            return port.device_id
    raise DiscoveryError(
        f"{where}: Subnet gateway is not attached to the router. (no port on network {net_id} "
        f"holds gateway {gateway_ip} of tenant subnet {subnet_id}) Attach the subnet to a "
        "router (openstack router add subnet ROUTER SUBNET), or set "
        f"{_B}.connect_share_server_to_tenant_network: true"
    )


def _router_subnets(router_id: str) -> list[Network]:
    """The CIDRs of the subnets on the router's interfaces.

    Neutron refuses a router interface whose subnet overlaps one of them (its gateway port's
    subnet does not count: l3_db's _check_for_dup_router_subnets).
    """
    where = f"{_N}.neutron_subnet_id"
    find = f"check the router: openstack router show {router_id}"
    port_ids = _lookup(
        where,
        f"the ports of router {router_id}",
        find,
        lambda: openstack.networking.get_port_ids(device_id=router_id).ids,
    )
    cidrs = []
    for port_id in port_ids:
        port = _lookup(
            where,
            f"router port {port_id}",
            find,
            lambda port_id=port_id: openstack.networking.get_port(port_id=port_id),  # type: ignore[misc]
        )
        if port.device_owner == "network:router_gateway" or not port.network_id:
            continue
        for address in port.all_fixed_ips:
            cidrs.append(_subnet_holding(where, find, port.network_id, address))
    return cidrs


def _subnet_holding(where: str, find: str, network_id: str, address: str) -> Network:
    # A subnet joined by its id puts its gateway address on the router's port: one lookup.
    by_gateway = _lookup(
        where,
        f"the subnets with gateway {address}",
        find,
        lambda: (
            openstack.networking.get_subnet_ids_v2(network_id=network_id, gateway_ip=address).ids
        ),
    )
    candidates = by_gateway or _lookup(
        where,
        f"the subnets of network {network_id}",
        find,
        lambda: openstack.networking.get_subnet_ids_v2(network_id=network_id).ids,
    )
    for subnet_id in candidates:
        cidr = ipaddress.ip_network(_subnet(where, "subnet", subnet_id).cidr, strict=False)
        if ipaddress.ip_address(address) in cidr:
            return cidr
    raise DiscoveryError(
        f"{where}: no subnet of network {network_id} holds router address {address}; {find}"
    )


def _service_image(name: str) -> str:
    where = f"{_B}.service_image_name"
    ids = _lookup(
        where,
        f"the images named {name!r}",
        "check the image service: openstack image list --name " + name,
        lambda: openstack.images.get_image_ids(name=name).ids,
    )
    if len(ids) != 1:
        found = "no active image" if not ids else f"{len(ids)} active images ({', '.join(ids)})"
        raise DiscoveryError(
            f"{where}: {found} named {name!r}; Manila needs exactly one. "
            + (
                "Upload it (openstack image create ...) or fix the name"
                if not ids
                else "Rename or deactivate the extra ones, or name a unique image"
            )
        )
    return ids[0]


def _flavor(flavor_id: str) -> None:
    _lookup(
        f"{_B}.service_instance_flavor_id",
        f"flavor {flavor_id}",
        "find the flavor's id with `openstack flavor list` (Manila's DevStack makes 100)",
        lambda: openstack.compute.get_flavor(flavor_id=flavor_id),
    )


def _availability_zone(key: str, zone: str) -> None:
    # The server and the volumes go to one zone: both Nova and Cinder must have it.
    find = "list them with `openstack availability zone list --compute --volume`"
    for service, call in (
        ("compute", lambda: openstack.compute.get_availability_zones().names),
        ("volume", lambda: openstack.blockstorage.get_availability_zones_v3().names),
    ):
        names = _lookup(f"{_B}.{key}", f"the {service} availability zones", find, call)
        if zone not in names:
            raise DiscoveryError(
                f"{_B}.{key}: {zone!r} is not one of the cloud's {service} availability zones "
                f"({', '.join(names) or 'none'}); {find}"
            )


def _subnet(where: str, what: str, subnet_id: str) -> openstack.networking.GetSubnetResult:
    return _lookup(
        where,
        f"{what} {subnet_id}",
        "find its id with `openstack subnet list` (and `openstack subnet show ID`)",
        lambda: openstack.networking.get_subnet(subnet_id=subnet_id),
    )


def _service_subnet_cidr(spec: StackSpec, side: TenantSide) -> ipaddress.IPv4Network | None:
    backend, share_network = spec.backend, spec.share_network
    if not backend.network_mode.service_subnet:
        return None
    nic_cidrs, router_id = side.nic_cidrs, side.router_id
    taken: list[Network] = list(nic_cidrs.values())
    network_id = backend.service_network_id
    if network_id is not None:
        where = f"{_B}.service_network_id"
        find = "find the service network's id with `openstack network list`"
        _lookup(
            where,
            f"service network {network_id}",
            find,
            lambda: openstack.networking.get_network(network_id=network_id),
        )
        own = _lookup(
            where,
            f"the subnets of service network {network_id}",
            find,
            lambda: (
                openstack.networking.get_subnet_ids_v2(
                    network_id=network_id, name=service_subnet_name(share_network.neutron_subnet_id)
                ).ids
            ),
        )
        if own:
            # Ours from an earlier run, so the CIDR stays. (One Manila made is not adopted:
            # Neutron then refuses the overlapping create; see the README.)
            found = _subnet(where, "service subnet", own[0])
            cidr = _ipv4(where, f"service subnet {own[0]}", found.cidr)
            pinned = share_network.service_subnet_cidr
            if pinned is not None and pinned != cidr:
                raise DiscoveryError(
                    f"{_N}.service_subnet_cidr: {pinned} differs from {cidr}, the CIDR of this "
                    f"share network's service subnet {own[0]}; a new CIDR would replace the "
                    "subnet and move the share server's ports to new addresses under it (its "
                    f"export locations would change). Set the key to {cidr} or remove it"
                )
            return cidr
        pinned = share_network.service_subnet_cidr
        if pinned is not None:
            # The fleet pins blocks from its ledger, which does not know subnets made by others
            # (Manila's own share servers): one exact lookup finds them, since every service
            # subnet is an aligned block of the pool. (Any other overlap Neutron refuses.)
            holders = _lookup(
                where,
                f"the subnets of service network {network_id} with CIDR {pinned}",
                find,
                lambda: (
                    openstack.networking.get_subnet_ids_v2(
                        network_id=network_id, cidr=str(pinned)
                    ).ids
                ),
            )
            if holders:
                raise DiscoveryError(
                    f"{_N}.service_subnet_cidr: {pinned} is already held by subnet "
                    f"{holders[0]} of service network {network_id} (made outside this stack); "
                    "pick a free block, or remove the key to let the program choose"
                )
        else:
            subnet_ids = _lookup(
                where,
                f"the subnets of service network {network_id}",
                find,
                lambda: openstack.networking.get_subnet_ids_v2(network_id=network_id).ids,
            )
            taken += [
                ipaddress.ip_network(_subnet(where, "subnet", i).cidr, strict=False)
                for i in subnet_ids
            ]
    # A new subnet must also stay clear of every subnet already on the tenant's router.
    router_cidrs = side.router_cidrs()
    pinned = share_network.service_subnet_cidr
    if pinned is not None:
        for what, cidr in nic_cidrs.items():
            if cidr.overlaps(pinned):
                raise DiscoveryError(
                    f"{_N}.service_subnet_cidr: {pinned} overlaps {cidr}, the {what}; the "
                    "service subnet must be a range of its own: pick another block of "
                    "service_network_cidr"
                )
        clash = [str(c) for c in router_cidrs if c.overlaps(pinned)]
        if clash:
            raise DiscoveryError(
                f"{_N}.service_subnet_cidr: {pinned} overlaps {', '.join(clash)} on the tenant's "
                f"router {router_id}, so Neutron would refuse the router interface; pick another "
                "block of service_network_cidr, or remove the key to let the program choose"
            )
        return pinned
    try:
        return choose_service_subnet_cidr(
            backend.service_network_cidr,
            backend.service_network_division_mask,
            [*taken, *router_cidrs],
        )
    except NoFreeServiceSubnet as exc:
        raise DiscoveryError(f"{_B}.service_network_cidr: {exc}") from None


@dataclass(frozen=True)
class TenantSide:
    """The tenant's side of a share server, as discovery reads it: its subnet, the router the
    subnet's gateway leads to (router modes), the admin subnet (when set).

    The service subnet must stay clear of ``nic_cidrs`` (the instance would have two routes to
    one range, and the SSH rule for the host port would admit that range's machines) and of
    ``router_cidrs()`` (Neutron refuses a router interface whose subnet overlaps another on the
    router). With the service network's own subnets, that is every block the stack refuses;
    the fleet's survey reads the same two, per tenant, so its allocator refuses them too
    (``service_subnet_neighbours``)."""

    tenant_subnet_cidr: ipaddress.IPv4Network
    router_id: str | None
    admin_subnet_cidr: ipaddress.IPv4Network | None
    nic_cidrs: dict[str, ipaddress.IPv4Network]
    """The subnets of the instance's other NICs (tenant, admin), by what they are."""

    def router_cidrs(self) -> list[Network]:
        """The subnets on the router's interfaces (lookups: read only when needed)."""
        return _router_subnets(self.router_id) if self.router_id else []


def read_tenant_side(spec: StackSpec) -> TenantSide:
    backend, share_network = spec.backend, spec.share_network
    mode = backend.network_mode
    where = f"{_N}.neutron_subnet_id"
    tenant = _subnet(where, "tenant subnet", share_network.neutron_subnet_id)
    if tenant.network_id != share_network.neutron_net_id:
        raise DiscoveryError(
            f"{where}: subnet {share_network.neutron_subnet_id} belongs to network "
            f"{tenant.network_id}, not to neutron_net_id {share_network.neutron_net_id}; give "
            "the subnet's own network"
        )
    tenant_cidr = _ipv4(where, f"tenant subnet {share_network.neutron_subnet_id}", tenant.cidr)
    router_id = None
    if mode.router:
        router_id = _router_for_subnet(
            share_network.neutron_net_id, share_network.neutron_subnet_id, tenant.gateway_ip
        )
    admin_subnet_cidr = None
    if backend.admin_subnet_id:
        where = f"{_B}.admin_subnet_id"
        admin = _subnet(where, "admin subnet", backend.admin_subnet_id)
        if admin.network_id != backend.admin_network_id:
            raise DiscoveryError(
                f"{where}: subnet {backend.admin_subnet_id} belongs to network "
                f"{admin.network_id}, not to admin_network_id {backend.admin_network_id}"
            )
        admin_subnet_cidr = _ipv4(where, f"admin subnet {backend.admin_subnet_id}", admin.cidr)
        if admin_subnet_cidr.overlaps(tenant_cidr):
            # The admin NIC's SSH and admin export would then face the tenant's own machines.
            raise DiscoveryError(
                f"{where}: admin subnet {admin_subnet_cidr} overlaps tenant subnet "
                f"{tenant_cidr}; the admin network must be apart from every tenant's: give an "
                "admin subnet of its own range"
            )
    nic_cidrs = {f"tenant subnet {share_network.neutron_subnet_id}": tenant_cidr}
    if admin_subnet_cidr is not None:
        nic_cidrs[f"admin subnet {backend.admin_subnet_id}"] = admin_subnet_cidr
    return TenantSide(tenant_cidr, router_id, admin_subnet_cidr, nic_cidrs)


def service_subnet_neighbours(spec: StackSpec) -> tuple[Network, ...]:
    """Every block the tenant's service subnet must not overlap besides the service network's
    own subnets: the rule of ``_service_subnet_cidr``, for the fleet's survey."""
    side = read_tenant_side(spec)
    return (*side.nic_cidrs.values(), *side.router_cidrs())


def discover(spec: StackSpec) -> CloudFacts:
    backend = spec.backend
    side = read_tenant_side(spec)
    _flavor(backend.service_instance_flavor_id)
    for key in ("backend_availability_zone", "storage_availability_zone"):
        zone = getattr(backend, key)
        if zone is not None:
            _availability_zone(key, zone)
            break  # the one the blueprint uses
    return CloudFacts(
        tenant_subnet_cidr=side.tenant_subnet_cidr,
        router_id=side.router_id,
        image_id=_service_image(backend.service_image_name),
        service_subnet_cidr=_service_subnet_cidr(spec, side),
        admin_subnet_cidr=side.admin_subnet_cidr,
    )
