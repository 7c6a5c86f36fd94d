"""Choosing the service subnet's CIDR: Manila's rule, made safe and stable.

Manila takes the first ``service_network_division_mask`` block of ``service_network_cidr``
whose *string* is not among the CIDRs already in the service network (service_instance.py,
``_get_cidr_for_subnet``): a subnet made with an older mask is not seen as taken, and Neutron
then refuses the overlapping subnet. Here a block is free only if it overlaps nothing, and a
subnet this stack already made keeps its CIDR, so a re-run declares the same inputs.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable


class NoFreeServiceSubnet(Exception):
    pass


def choose_service_subnet_cidr(
    service_network_cidr: str,
    division_mask: int,
    existing_cidrs: Iterable[str],
    *,
    own_cidr: str | None = None,
) -> str:
    """The CIDR for this stack's service subnet.

    ``own_cidr`` is the CIDR of the subnet this stack made on an earlier run (found by its
    Manila name); it wins, so the choice never moves once made.
    """
    if own_cidr is not None:
        return str(ipaddress.ip_network(own_cidr))
    pool = ipaddress.IPv4Network(service_network_cidr)
    taken = [ipaddress.ip_network(cidr, strict=False) for cidr in existing_cidrs]
    taken_v4 = [net for net in taken if isinstance(net, ipaddress.IPv4Network)]
    for candidate in pool.subnets(new_prefix=division_mask):
        if not any(candidate.overlaps(net) for net in taken_v4):
            return str(candidate)
    raise NoFreeServiceSubnet(
        f"no free /{division_mask} is left in service_network_cidr {pool}: every block overlaps "
        "a subnet of the service network; widen service_network_cidr or remove unused "
        "service subnets"
    )


def host_port_address(cidr: str) -> str:
    """The fixed address of the host port in a service subnet: its last usable address.

    Pinned (and kept out of the allocation pool) so the security group can admit SSH from
    exactly this address, known before anything is created.
    """
    network = ipaddress.IPv4Network(cidr)
    return str(network.broadcast_address - 1)


def allocation_pool(cidr: str, *, with_gateway: bool) -> tuple[str, str]:
    """DHCP allocation range: after the gateway, before the pinned host port address."""
    network = ipaddress.IPv4Network(cidr)
    first = network.network_address + (2 if with_gateway else 1)
    last = network.broadcast_address - 2
    return str(first), str(last)
