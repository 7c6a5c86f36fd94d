"""What a shared service network holds, read from the cloud before any block is given.

The fleet's ledger knows only the blocks it gave. A service network that Manila already uses
holds its share servers' subnets too, under Manila's names and maybe another division mask,
and another fleet, or a stack made with ``pulumi up``, may have made some. So before it
allocates, the fleet asks the cloud: a read-only inline program that declares no resource
and only calls the provider's lookups (``getSubnetIdsV2``, then ``getSubnet`` for each), with
the very provider and credentials the tenants' stacks use (their ``openstack:cloud``), and
exports every subnet's id, name and CIDR. It runs as ``pulumi preview`` of a stack of its
own, one per service network (``manila-dhss-service-network-<network id>``, holding nothing):
a preview takes no lock and writes no state, so fleets on two machines may read at once.
No new dependency, no second set of credentials.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable

import pulumi
import pulumi_openstack as openstack
from pulumi.automation import ConfigValue, LocalWorkspaceOptions, create_or_select_stack

from .allocation import HeldSubnet
from .options import PROJECT, SERVICE_NETWORK_STACK_PREFIX
from .tenants import CLOUD_KEY

_PLAIN = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def survey_stack_name(network_id: str) -> str:
    """The read-only stack that reads one service network (a stack name: 1-100 of
    letters, digits, ``-``, ``_``, ``.``)."""
    if not _PLAIN.fullmatch(network_id) or network_id in (".", ".."):
        network_id = hashlib.sha256(network_id.encode()).hexdigest()[:32]
    return SERVICE_NETWORK_STACK_PREFIX + network_id


def survey_program(network_id: str, found: list[HeldSubnet]) -> Callable[[], None]:
    """The inline program: every subnet of the network, into ``found`` and the exports."""

    def program() -> None:
        ids = openstack.networking.get_subnet_ids_v2(network_id=network_id).ids
        for subnet_id in ids:
            subnet = openstack.networking.get_subnet(subnet_id=subnet_id)
            found.append(HeldSubnet(id=subnet.id, name=subnet.name, cidr=subnet.cidr))
        pulumi.export("subnets", [{"id": h.id, "name": h.name, "cidr": h.cidr} for h in found])

    return program


def read_service_network(
    network_id: str,
    cloud: str | None,
    workspace: LocalWorkspaceOptions,
    log: Callable[[str], object],
) -> tuple[HeldSubnet, ...]:
    """Every subnet the service network holds, as the tenants' provider sees it."""
    found: list[HeldSubnet] = []
    stack = create_or_select_stack(
        survey_stack_name(network_id),
        project_name=PROJECT,
        program=survey_program(network_id, found),
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
    return tuple(found)
