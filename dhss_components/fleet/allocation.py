"""Service subnet CIDRs for tenants that share one service network, decided centrally.

Each stack, run on its own, picks the first free block of the service network (discovery).
Two new tenants running in parallel would both see the same block free and both claim it;
Neutron then refuses the second subnet. So before any stack runs, the fleet decides every
tenant's block here, in one place, and pins it in the tenant's config
(``dhss:shareNetwork.service_subnet_cidr``).

The ledger alone knows only what this fleet gave. Before allocating, the fleet reads what
each service network holds from the cloud itself (survey.py): Manila's own service subnets,
stacks made elsewhere, another fleet's tenants. The rules:
- a tenant whose service subnet exists (found by Manila's name for it) keeps its CIDR, and a
  block, once given to a tenant, stays that tenant's (the ledger remembers it), whatever
  tenants are added or removed around it;
- a tenant that pins its own CIDR in the tenants file gets exactly that one;
- a removed tenant keeps its block reserved until its stack is destroyed (its subnet may
  still exist);
- new tenants, in name order, get the first block that overlaps nothing already given,
  nothing the network holds, and nothing the tenant's own stack refuses besides (its tenant
  and admin subnets, every subnet on its router: ``nearby``, read by discovery's own lookups),
  by the same rule a single stack uses (``choose_service_subnet_cidr``);
- a block given but never made (the tenant's first ``up`` has not made its subnet), which a
  subnet made meanwhile by someone else, or one of the tenant's own, now overlaps, is given
  again: Neutron or the tenant's discovery would refuse it. A tenant that has its subnet never
  moves.

A pool is a service network given by id, or, for stacks that make service networks of their
own, the host their host ports are plugged on (``host_pool``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ..config import Problem
from ..service_subnet import NoFreeServiceSubnet, choose_service_subnet_cidr

Ledger = Mapping[str, Mapping[str, str]]
"""Service network id -> tenant (stack name) -> the CIDR given to it."""


@dataclass(frozen=True)
class SubnetRequest:
    """One tenant's need for a block of a shared service network."""

    tenant: str
    network_id: str
    pool: ipaddress.IPv4Network
    """service_network_cidr."""
    mask: int
    """service_network_division_mask."""
    pinned: ipaddress.IPv4Network | None = None
    """The tenant's own dhss:shareNetwork.service_subnet_cidr, if the file sets one."""
    subnet_name: str = ""
    """Manila's name for the tenant's service subnet (it carries the tenant subnet's id)."""
    host: str | None = None
    """service_network_host, when the tenant's host port is plugged there (OVS, bridge): one
    host's interfaces must never share a range, whichever pools their subnets come from."""
    in_cloud: bool = True
    """``network_id`` is a Neutron network (``service_network_id``), read by the survey.
    False: it is a host's pool (``host_pool``): the service networks that stacks without a
    ``service_network_id`` each make, whose subnets one host plugs; no network to read, and a
    tenant's subnet is known from its stack's state."""

    @property
    def pool_name(self) -> str:
        if self.in_cloud:
            return f"service network {self.network_id}"
        return f"the service networks plugged on host {self.network_id.removeprefix(HOST_POOL)}"


HOST_POOL = "service_network_host:"


def host_pool(host: str) -> str:
    """The ledger's key for the blocks of the service networks plugged on one host.

    Manila has one service network per host (``service_network_name``, whose single host port
    ``manila-share`` takes an address in every service subnet), so its service subnets never
    overlap. A stack without ``service_network_id`` makes a network of its own, and its host
    port is plugged on ``service_network_host`` like every other tenant's there: two of them
    on one block would give the host two interfaces on one range. So one pool per host, whatever
    each tenant's ``service_network_cidr`` (two pools may overlap)."""
    return HOST_POOL + host


@dataclass(frozen=True)
class HeldSubnet:
    """A subnet the service network holds in the cloud, whoever made it."""

    id: str
    name: str
    cidr: str


@dataclass(frozen=True)
class Allocation:
    cidrs: Mapping[str, str]
    """Tenant -> its service subnet CIDR, for every request."""
    ledger: Ledger
    """The ledger to remember: the old one plus every new decision."""
    new: frozenset[str]
    """Tenants whose block was given on this run."""


class AllocationError(Exception):
    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def _overlap(cidr: str, taken: Mapping[str, str], tenant: str) -> str | None:
    network = ipaddress.ip_network(cidr)
    for other, other_cidr in sorted(taken.items()):
        if other != tenant and network.overlaps(ipaddress.ip_network(other_cidr)):
            return other
    return None


def _held_overlap(cidr: str, held: Sequence[HeldSubnet]) -> HeldSubnet | None:
    network = ipaddress.ip_network(cidr)
    return next((h for h in held if network.overlaps(ipaddress.ip_network(h.cidr))), None)


def _near(cidr: str, nearby: Sequence[str]) -> str | None:
    network = ipaddress.ip_network(cidr)
    for other in nearby:
        near = ipaddress.ip_network(other)
        if isinstance(near, ipaddress.IPv4Network) and network.overlaps(near):
            return other
    return None


def allocate_service_subnets(
    requests: Iterable[SubnetRequest],
    ledger: Ledger,
    remembered: Mapping[str, str] | None = None,
    held: Mapping[str, Sequence[HeldSubnet]] | None = None,
    nearby: Mapping[str, Sequence[str]] | None = None,
) -> Allocation:
    """Give every request a block; raise AllocationError naming the tenants in conflict.

    ``remembered`` holds CIDRs learnt from the stacks' state: for a tenant the ledger does not
    know, they count as given; for a host's pool (no network to read), the tenant's subnet
    exists, so its block never moves. ``held`` is what each service network holds in the
    cloud, by network id. ``nearby`` is, by tenant, what its own stack's discovery refuses
    besides the service network (``discovery.service_subnet_neighbours``: its tenant and admin
    subnets, every subnet on its router): never given to that tenant.
    """
    remembered = remembered or {}
    held = held or {}
    nearby = nearby or {}
    by_network: dict[str, list[SubnetRequest]] = {}
    for request in requests:
        by_network.setdefault(request.network_id, []).append(request)

    cidrs: dict[str, str] = {}
    new: set[str] = set()
    result: dict[str, dict[str, str]] = {net: dict(given) for net, given in ledger.items()}
    problems: list[Problem] = []
    host_of = {r.tenant: r.host for r in by_network_requests(by_network) if r.host is not None}

    def on_same_host(request: SubnetRequest, network_id: str) -> list[ipaddress.IPv4Network]:
        """Blocks of other pools plugged on the request's host (their ledger's, and any given
        on this run), which its block must not overlap either."""
        if request.host is None:
            return []
        return [
            ipaddress.IPv4Network(cidr)
            for other, given in result.items()
            if other != network_id
            for tenant, cidr in given.items()
            if host_of.get(tenant) == request.host
        ]

    for network_id, group in sorted(by_network.items()):
        taken = result.setdefault(network_id, {})
        in_cloud = held.get(network_id, ())
        own = {
            r.tenant: h
            for r in group
            for h in in_cloud
            if r.subnet_name and h.name == r.subnet_name
        }
        others = [h for h in in_cloud if h not in own.values()]
        for request in group:
            if not request.in_cloud and request.tenant in remembered:
                # Its stack's state has its subnet (in a network of its own): it exists.
                own[request.tenant] = HeldSubnet(
                    "", request.subnet_name, remembered[request.tenant]
                )
        for request in group:
            if request.tenant not in taken and request.tenant in remembered:
                taken[request.tenant] = remembered[request.tenant]
            if request.tenant in own and request.pinned is None:
                # Its subnet exists: the cloud says which block it has.
                taken[request.tenant] = own[request.tenant].cidr
        for request in group:
            if request.pinned is None:
                continue
            taken[request.tenant] = str(request.pinned)
        for request in group:
            if request.pinned is None:
                continue
            where = f"tenants[{request.tenant}].shareNetwork.service_subnet_cidr"
            other = _overlap(taken[request.tenant], taken, request.tenant)
            if other is not None:
                problems.append(
                    Problem(
                        where,
                        f"{request.pinned} overlaps {taken[other]}, the service subnet of "
                        f"tenant {other} on {request.pool_name}; pick a free block "
                        "or remove the key to let the fleet choose",
                    )
                )
            near = (
                None
                if request.tenant in own
                else _near(str(request.pinned), nearby.get(request.tenant, ()))
            )
            if near is not None:
                problems.append(
                    Problem(
                        where,
                        f"{request.pinned} overlaps {near}, a subnet of the tenant's own (its "
                        "tenant or admin subnet, or one on its router), which its stack refuses; "
                        "pick another block or remove the key to let the fleet choose",
                    )
                )
            holder = None if request.tenant in own else _held_overlap(str(request.pinned), others)
            if holder is not None:
                problems.append(
                    Problem(
                        where,
                        f"{request.pinned} overlaps {holder.cidr}, which subnet {holder.id} "
                        f"({holder.name or 'no name'}) already holds on service network "
                        f"{network_id}; pick a free block or remove the key to let the fleet "
                        "choose",
                    )
                )
        for request in group:
            given = taken.get(request.tenant)
            if given is None or request.pinned is not None or request.tenant in own:
                continue
            if (
                _held_overlap(given, others) is not None
                or _near(given, nearby.get(request.tenant, ())) is not None
            ):
                # Given, never made, and taken meanwhile by a subnet made elsewhere (Neutron
                # would refuse it), or on a block its own stack refuses (its router or its
                # tenant or admin subnet holds it). The tenant has no subnet yet, so nothing
                # moves.
                del taken[request.tenant]
        blocked = [ipaddress.ip_network(h.cidr) for h in others]
        for request in sorted(group, key=lambda r: r.tenant):
            if request.tenant in taken:
                continue
            try:
                cidr = choose_service_subnet_cidr(
                    request.pool,
                    request.mask,
                    [
                        *(ipaddress.ip_network(c) for c in taken.values()),
                        *blocked,
                        *(ipaddress.ip_network(c) for c in nearby.get(request.tenant, ())),
                        *on_same_host(request, network_id),
                    ],
                )
            except NoFreeServiceSubnet as exc:
                problems.append(Problem(f"tenants[{request.tenant}]", str(exc)))
                continue
            taken[request.tenant] = str(cidr)
            new.add(request.tenant)
        for request in group:
            if request.tenant in taken:
                cidrs[request.tenant] = taken[request.tenant]
    if problems:
        raise AllocationError(problems)
    return Allocation(
        cidrs=cidrs,
        ledger={net: dict(sorted(given.items())) for net, given in sorted(result.items()) if given},
        new=frozenset(new),
    )


def by_network_requests(
    by_network: Mapping[str, Sequence[SubnetRequest]],
) -> list[SubnetRequest]:
    return [r for group in by_network.values() for r in group]


def release(ledger: Ledger, tenant: str) -> Ledger:
    """The ledger without the tenant (its stack was destroyed, so its subnet is gone)."""
    return {
        net: {t: c for t, c in given.items() if t != tenant}
        for net, given in ledger.items()
        if any(t != tenant for t in given)
    }
