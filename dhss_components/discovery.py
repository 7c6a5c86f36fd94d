"""What the stack reads from the cloud, all before it declares anything.

Each lookup is a provider invoke, i.e. an API call in every preview, so there are few and
their number does not grow with the number of shares. Failures are Manila's own errors, with
what to do about them, raised before any resource exists.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pulumi
import pulumi_openstack as openstack

from .config import StackSpec
from .naming import service_subnet_name
from .service_subnet import NoFreeServiceSubnet, choose_service_subnet_cidr


class DiscoveryError(pulumi.RunError):
    """A fact about the cloud that makes the share server impossible; no traceback."""


@dataclass(frozen=True)
class CloudFacts:
    tenant_subnet_cidr: str
    router_id: str | None
    image_id: str
    service_subnet_cidr: str | None
    admin_subnet_cidr: str | None


def _router_for_subnet(net_id: str, subnet_id: str, gateway_ip: str | None) -> str:
    """Manila's _get_private_router: gateway IP -> the port holding it -> its router."""
    if not gateway_ip:
        raise DiscoveryError(
            f"Subnet must have gateway. (tenant subnet {subnet_id} has none) Give the subnet a "
            "gateway attached to a router, or set "
            "dhss:backend.connect_share_server_to_tenant_network: true"
        )
    port_ids = openstack.networking.get_port_ids(network_id=net_id, fixed_ip=gateway_ip).ids
    for port_id in port_ids:
        port = openstack.networking.get_port(port_id=port_id)
        # Manila compares the port's first fixed IP with the gateway.
        if port.all_fixed_ips and port.all_fixed_ips[0] == gateway_ip and port.device_id:
            return port.device_id
    raise DiscoveryError(
        f"Subnet gateway is not attached to the router. (no port on network {net_id} holds "
        f"gateway {gateway_ip} of tenant subnet {subnet_id}) Attach the subnet to a router "
        "(openstack router add subnet ROUTER SUBNET), or set "
        "dhss:backend.connect_share_server_to_tenant_network: true"
    )


def _service_image(name: str) -> str:
    ids = openstack.images.get_image_ids(name=name).ids
    if len(ids) != 1:
        found = "no active image" if not ids else f"{len(ids)} active images ({', '.join(ids)})"
        raise DiscoveryError(
            f"service image: {found} named {name!r}; Manila needs exactly one. "
            + (
                "Upload it (openstack image create ...) or fix dhss:backend.service_image_name"
                if not ids
                else "Rename or deactivate the extra ones, or name a unique image"
            )
        )
    return ids[0]


def _service_subnet_cidr(spec: StackSpec) -> str | None:
    backend, share_network = spec.backend, spec.share_network
    if backend.connect_share_server_to_tenant_network and backend.admin_network_id:
        return None  # Manila's mode C: the service network is not used at all
    if share_network.service_subnet_cidr:
        return share_network.service_subnet_cidr
    if backend.service_network_id is None:
        # The stack makes the service network itself: it holds no other subnet.
        return choose_service_subnet_cidr(
            backend.service_network_cidr, backend.service_network_division_mask, []
        )
    own = openstack.networking.get_subnet_ids_v2(
        network_id=backend.service_network_id,
        name=service_subnet_name(share_network.neutron_subnet_id),
    ).ids
    if own:
        # Ours from an earlier run, so the CIDR stays. (One Manila made is not adopted:
        # Neutron then refuses the overlapping create; see the README.)
        return openstack.networking.get_subnet(subnet_id=own[0]).cidr
    existing = [
        openstack.networking.get_subnet(subnet_id=subnet_id).cidr
        for subnet_id in openstack.networking.get_subnet_ids_v2(
            network_id=backend.service_network_id
        ).ids
    ]
    try:
        return choose_service_subnet_cidr(
            backend.service_network_cidr, backend.service_network_division_mask, existing
        )
    except NoFreeServiceSubnet as exc:
        raise DiscoveryError(f"dhss:backend.service_network_cidr: {exc}") from None


def discover(spec: StackSpec) -> CloudFacts:
    backend, share_network = spec.backend, spec.share_network
    tenant = openstack.networking.get_subnet(subnet_id=share_network.neutron_subnet_id)
    if tenant.network_id != share_network.neutron_net_id:
        raise DiscoveryError(
            f"dhss:shareNetwork.neutron_subnet_id: subnet {share_network.neutron_subnet_id} "
            f"belongs to network {tenant.network_id}, not to neutron_net_id "
            f"{share_network.neutron_net_id}; give the subnet's own network"
        )
    router_id = None
    if not backend.connect_share_server_to_tenant_network:
        router_id = _router_for_subnet(
            share_network.neutron_net_id, share_network.neutron_subnet_id, tenant.gateway_ip
        )
    admin_subnet_cidr = None
    if backend.admin_subnet_id:
        admin = openstack.networking.get_subnet(subnet_id=backend.admin_subnet_id)
        if admin.network_id != backend.admin_network_id:
            raise DiscoveryError(
                f"dhss:backend.admin_subnet_id: subnet {backend.admin_subnet_id} belongs to "
                f"network {admin.network_id}, not to admin_network_id {backend.admin_network_id}"
            )
        admin_subnet_cidr = str(ipaddress.ip_network(admin.cidr))
    return CloudFacts(
        tenant_subnet_cidr=str(ipaddress.ip_network(tenant.cidr)),
        router_id=router_id,
        image_id=_service_image(backend.service_image_name),
        service_subnet_cidr=_service_subnet_cidr(spec),
        admin_subnet_cidr=admin_subnet_cidr,
    )
