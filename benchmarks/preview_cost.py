"""Table 3: provider invokes per preview (each is an OpenStack API call on every preview).

The program runs in preview mode under the simulated cloud, which records every invoke.
Scenarios: a new stack on an empty service network; the same stack once deployed (what every
pull-request preview pays); a new stack when other tenants already have service subnets; and
a deployed stack whose service subnet CIDR is pinned in its config.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable
from typing import Any

from benchmarks.stack import add_tenant, key_pair, run_program, share_config
from benchmarks.tables import table, title
from dhss_components.simulated_cloud import SimulatedCloud
from tests.clouds import devstack_cloud

SHARE_COUNTS = (1, 25)
OTHER_TENANTS = 10

PURPOSE = {
    "openstack:networking/getSubnet:getSubnet": "a subnet's CIDR, gateway and network",
    "openstack:networking/getPortIds:getPortIds": "the port holding the tenant gateway IP",
    "openstack:networking/getPort:getPort": "that port's device: the tenant router",
    "openstack:images/getImageIds:getImageIds": "the one active service image by name",
    "openstack:networking/getSubnetIdsV2:getSubnetIdsV2": (
        "service subnets (by name, by CIDR, or all); the subnets holding a router's addresses"
    ),
    "openstack:networking/getNetwork:getNetwork": "the service network exists (its id, as given)",
    "openstack:compute/getFlavor:getFlavor": "the service instance's flavor exists (its id)",
    "openstack:compute/getAvailabilityZones:getAvailabilityZones": "Nova has the zone (if set)",
    "openstack:blockstorage/getAvailabilityZonesV3:getAvailabilityZonesV3": (
        "Cinder has the zone (if set)"
    ),
}


def _tenant_config(keys: Any, shares: int, cloud: SimulatedCloud, index: int) -> dict[str, Any]:
    config = share_config(keys, shares)
    net, subnet = add_tenant(cloud, index)
    config["shareNetwork"] = {"neutron_net_id": net, "neutron_subnet_id": subnet}
    return config


def _new_stack(keys: Any, shares: int) -> list[str]:
    cloud = devstack_cloud()
    return [i.token for i in run_program(cloud, share_config(keys, shares), preview=True).invokes]


def _deployed(keys: Any, shares: int, pinned: bool = False) -> list[str]:
    cloud = devstack_cloud()
    config = share_config(keys, shares)
    if pinned:
        config["shareNetwork"]["service_subnet_cidr"] = "10.254.0.0/28"
    run_program(cloud, config)  # pulumi up
    return [i.token for i in run_program(cloud, config, preview=True).invokes]


_populated: dict[int, SimulatedCloud] = {}


def _among_others(keys: Any, shares: int) -> list[str]:
    if not _populated:
        cloud = devstack_cloud()
        for i in range(1, OTHER_TENANTS + 1):
            run_program(cloud, _tenant_config(keys, 1, cloud, i), stack=f"tenant-{i}")
        _populated[0] = cloud
    cloud = copy.deepcopy(_populated[0])
    config = _tenant_config(keys, shares, cloud, OTHER_TENANTS + 1)
    return [i.token for i in run_program(cloud, config, stack="new", preview=True).invokes]


SCENARIOS: list[tuple[str, Callable[[Any, int], list[str]]]] = [
    ("new stack, empty service network", _new_stack),
    ("deployed stack (every PR preview)", _deployed),
    (f"new stack, {OTHER_TENANTS} other tenants' service subnets", _among_others),
    ("deployed stack, service_subnet_cidr pinned", lambda k, n: _deployed(k, n, pinned=True)),
]


def main() -> str:
    results: dict[str, dict[int, list[str]]] = {}
    with key_pair() as keys:
        for label, scenario in SCENARIOS:
            results[label] = {n: scenario(keys, n) for n in SHARE_COUNTS}
    out = [title("3. Preview cost: provider invokes (API calls) per preview")]
    out.append(
        table(
            ["scenario", *(f"{n} share{'s' if n > 1 else ''}" for n in SHARE_COUNTS), "same?"],
            [
                [
                    label,
                    *(len(by_count[n]) for n in SHARE_COUNTS),
                    "yes" if len({len(v) for v in by_count.values()}) == 1 else "NO",
                ]
                for label, by_count in results.items()
            ],
            right=(1, 2),
        )
    )
    steady = results[SCENARIOS[1][0]][SHARE_COUNTS[-1]]
    out.append(f"\nThe invokes of a deployed stack's preview ({SHARE_COUNTS[-1]} shares):\n")
    out.append(
        table(
            ["invoke", "count", "what for"],
            [
                [token.split(":")[-1], count, PURPOSE.get(token, "?")]
                for token, count in Counter(steady).items()
            ],
            right=(1,),
        )
    )
    return "\n".join(out)


if __name__ == "__main__":
    print(main())
