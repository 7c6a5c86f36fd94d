"""Choosing the service subnet's CIDR: Manila's rule, made safe and stable.

Manila takes the first ``service_network_division_mask`` block of ``service_network_cidr``
whose *string* is not among the CIDRs already in the service network (service_instance.py,
``_get_cidr_for_subnet``): a subnet made with an older mask is not seen as taken, and Neutron
then refuses the overlapping subnet. Here a block is free only if it overlaps nothing given
(the service network's subnets and, in the router modes, every subnet on the tenant's
router), and a subnet this stack already made keeps its CIDR, so a re-run declares the same
inputs.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class NoFreeServiceSubnet(Exception):
    pass


def choose_service_subnet_cidr(
    service_network_cidr: ipaddress.IPv4Network,
    division_mask: int,
    taken: Iterable[Network],
) -> ipaddress.IPv4Network:
    """The first ``division_mask`` block of the pool that overlaps nothing taken."""
    taken_v4 = [net for net in taken if isinstance(net, ipaddress.IPv4Network)]
    for candidate in service_network_cidr.subnets(new_prefix=division_mask):
        if not any(candidate.overlaps(net) for net in taken_v4):
            return candidate
    raise NoFreeServiceSubnet(
        f"no free /{division_mask} is left in service_network_cidr {service_network_cidr}: "
        "every block overlaps a subnet of the service network or of the tenant's router; "
        "widen service_network_cidr or remove unused service subnets"
    )


def host_port_address(cidr: ipaddress.IPv4Network) -> ipaddress.IPv4Address:
    """The fixed address of the host port in a service subnet: its last usable address.

    Pinned (and kept out of the allocation pool) so the security group can admit SSH from
    exactly this address, known before anything is created.
    """
    return cidr.broadcast_address - 1


def allocation_pool(
    cidr: ipaddress.IPv4Network, *, with_gateway: bool
) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]:
    """DHCP allocation range: after the gateway, before the pinned host port address."""
    first = cidr.network_address + (2 if with_gateway else 1)
    last = cidr.broadcast_address - 2
    return first, last
