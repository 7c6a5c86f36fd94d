"""What the cloud holds around the blocks to give, read before any block is given.

The fleet's ledger knows only the blocks it gave. A service network that Manila already uses
holds its share servers' subnets too, under Manila's names and maybe another division mask,
and another fleet, or a stack made with ``pulumi up``, may have made some. And each tenant's
own stack refuses more than the service network's subnets: its tenant subnet, its admin
subnet, and every subnet on the router its tenant subnet's gateway leads to (discovery). So
before it allocates, the fleet asks the cloud: a read-only inline program that declares no
resource and only calls the provider's lookups: ``getSubnetIdsV2`` then ``getSubnet`` for
each service network, and for each tenant the very reads its stack's discovery makes
(``discovery.service_subnet_neighbours``: one rule, not a copy). It runs with the provider
and credentials the tenants' stacks use, one read per ``openstack:cloud`` (a tenant's side is
read with its own), as ``pulumi preview`` of a stack of its own
(``manila-dhss-service-network-<network id>`` in the usual case of one service network,
holding nothing): a preview takes no lock and writes no state, so fleets on two machines may
read at once. No new dependency, no second set of credentials.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_openstack as openstack
from pulumi.automation import ConfigValue, LocalWorkspaceOptions, create_or_select_stack

from ..discovery import DiscoveryError, service_subnet_neighbours
from .allocation import HeldSubnet
from .options import PROJECT, SERVICE_NETWORK_STACK_PREFIX
from .tenants import CLOUD_KEY, Tenant

_PLAIN = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def survey_stack_name(network_id: str) -> str:
    """The read-only stack that reads one service network (a stack name: 1-100 of
    letters, digits, ``-``, ``_``, ``.``)."""
    if not _PLAIN.fullmatch(network_id) or network_id in (".", ".."):
        network_id = hashlib.sha256(network_id.encode()).hexdigest()[:32]
    return SERVICE_NETWORK_STACK_PREFIX + network_id


def group_stack_name(network_ids: Sequence[str], cloud: str | None) -> str:
    """One read per provider config: named after its one service network (the usual case),
    else after what it reads (networks and cloud)."""
    if len(network_ids) == 1:
        return survey_stack_name(network_ids[0])
    return survey_stack_name(f"tenants-{cloud or 'default'}-" + "-".join(sorted(network_ids)))


@dataclass
class Survey:
    """What one read found."""

    held: dict[str, tuple[HeldSubnet, ...]] = field(default_factory=dict)
    """Service network id -> every subnet it holds."""
    nearby: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Tenant -> the CIDRs its stack's discovery refuses besides the service network (its
    tenant and admin subnets, every subnet on its router)."""
    unread: dict[str, str] = field(default_factory=dict)
    """Tenant -> why its side could not be read (its own stack will say the same, by key)."""


def survey_program(
    network_ids: Sequence[str], tenants: Sequence[Tenant], survey: Survey
) -> Callable[[], None]:
    """The inline program: every subnet of each network, and each tenant's neighbours."""

    def program() -> None:
        for network_id in network_ids:
            found = []
            for subnet_id in openstack.networking.get_subnet_ids_v2(network_id=network_id).ids:
                subnet = openstack.networking.get_subnet(subnet_id=subnet_id)
                found.append(HeldSubnet(id=subnet.id, name=subnet.name, cidr=subnet.cidr))
            survey.held[network_id] = tuple(found)
        for tenant in tenants:
            try:
                near = service_subnet_neighbours(tenant.spec)
            except DiscoveryError as exc:
                survey.unread[tenant.name] = str(exc)
                continue
            survey.nearby[tenant.name] = tuple(str(cidr) for cidr in near)
        pulumi.export(
            "subnets",
            {
                net: [{"id": h.id, "name": h.name, "cidr": h.cidr} for h in found]
                for net, found in survey.held.items()
            },
        )
        pulumi.export("neighbours", {t: list(c) for t, c in survey.nearby.items()})

    return program


def read_cloud(
    stack_name: str,
    *,
    network_ids: Sequence[str],
    tenants: Sequence[Tenant],
    cloud: str | None,
    workspace: LocalWorkspaceOptions,
    log: Callable[[str], object],
) -> Survey:
    """What the service networks hold and what the tenants' sides hold, as one provider
    (``cloud``) sees them."""
    survey = Survey()
    stack = create_or_select_stack(
        stack_name,
        project_name=PROJECT,
        program=survey_program(network_ids, tenants, survey),
        opts=workspace,
    )
    try:
        current = stack.workspace.stack_settings(stack.name).config or {}
    except FileNotFoundError:
        current = {}
    if cloud is None and CLOUD_KEY in current:
        stack.remove_config(CLOUD_KEY)
    if cloud is not None:
        stack.set_all_config({CLOUD_KEY: ConfigValue(cloud)})
    stack.preview(on_output=log, on_error=log, color="never", suppress_progress=True)
    for tenant, why in sorted(survey.unread.items()):
        log(f"# tenant {tenant}: its side could not be read: {why}")
    return survey
