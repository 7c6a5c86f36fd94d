"""Twenty tenants on one service network: preview, up, a change of tenants, destroy.

Every tenant goes through the Automation API and the stand-in CLI with ``--parallel 4``: its
stack is created, its config set, its preview, up and destroy run, its outputs and history
read. Every tenant's real program runs through the LanguageRuntime on every preview and up,
against the simulated cloud, and every subnet it declares meets the stand-in's Neutron, which
refuses an overlap across stacks. So "no overlap" is checked on what twenty real programs
declared and Neutron accepted, not on the allocator's own answer. One tenant is told to fail
its up.
"""

from __future__ import annotations

import ipaddress
import json

import yaml

from dhss_components.fleet.results import EXIT_FAILED, EXIT_OK
from tests.fleet.fleet_env import (
    Bed,
    Call,
    config_sent,
    max_overlap,
    neutron_subnets,
    pairwise_disjoint,
    programs,
    reads_a_service_network,
    registered,
    tenant_entry,
    tenant_name,
    tenant_network,
    write_yaml,
)
from tests.fleet.standin.install import write_settings

TENANTS = [tenant_name(i) for i in range(20)]
QUOTA = "Quota exceeded for instances: Requested 1, but already used 10 of 10 instances"
SUBNET = "openstack:networking/subnet:Subnet"
INSTANCE = "openstack:compute/instance:Instance"


def in_flight(calls: list[Call]) -> int:
    """Most tenants with CLI work in progress at once (first call's start to last call's end)."""
    spans: dict[str, tuple[float, float]] = {}
    for call in calls:
        if call.stack is None or reads_a_service_network(call):
            continue
        start, end = spans.get(call.stack, (call.start, call.end))
        spans[call.stack] = (min(start, call.start), max(end, call.end))
    return max_overlap(spans.values())


def operations(calls: list[Call], command: str) -> list[tuple[float, float]]:
    return [(c.start, c.end) for c in calls if c.command == [command]]


def test_twenty_tenants_roll_out_in_parallel_with_isolated_failures_and_stable_cidrs(
    bed: Bed,
) -> None:
    tenants = bed.tenants(range(20), fail={"tenant-07": {"ops": ["up"], "message": QUOTA}})

    # -- preview: every tenant's program runs, each with its own block pinned ------------------
    preview = bed.fleet("preview", str(tenants), "--parallel", "4")

    assert preview.code == EXIT_OK, preview.stdout + preview.stderr
    rows = preview.rows()
    assert sorted(rows) == TENANTS
    assert {row[2] for row in rows.values()} == {"ok"}
    given = bed.ledger()
    assert sorted(given) == TENANTS
    assert pairwise_disjoint(given.values())
    calls = bed.calls()
    for tenant in TENANTS:
        (set_all,) = [c for c in calls if c.stack == tenant and c.command == ["config", "set-all"]]
        sent = json.loads(config_sent(set_all)["dhss:shareNetwork"][0])
        assert sent["service_subnet_cidr"] == given[tenant]
        (run,) = programs(bed.cli, tenant, "preview")
        assert run["dry_run"]
        (subnet,) = registered(run, SUBNET)
        assert subnet["inputs"]["cidr"] == given[tenant]
        assert rows[tenant][5] == given[tenant]  # the SERVICE SUBNET column
        assert len(registered(run, INSTANCE)) == 1
    # What the twenty programs declared does not overlap (not merely what was allocated).
    declared = [registered(programs(bed.cli, t, "preview")[0], SUBNET)[0] for t in TENANTS]
    assert pairwise_disjoint(r["inputs"]["cidr"] for r in declared)
    assert in_flight(calls) == 4
    assert max_overlap(operations(calls, "preview")) <= 4

    # -- up: one tenant fails, the other nineteen are built ---------------------------------------
    seen = len(calls)
    up = bed.fleet("up", str(tenants), "--parallel", "4")

    assert up.code == EXIT_FAILED
    rows = up.rows()
    assert rows["tenant-07"][2] == "failed"
    assert f"tenant-07: share-server-instance-server: {QUOTA}" in up.stdout
    for tenant in TENANTS:
        if tenant == "tenant-07":
            continue
        assert rows[tenant][2] == "ok"
        assert rows[tenant][3] == "+22"
        assert rows[tenant][5] == given[tenant]
        assert rows[tenant][6].endswith(":/shares/share0")
    assert "20 tenants: 1 failed, 19 ok" in up.stdout
    calls = bed.calls()[seen:]
    assert in_flight(calls) == 4
    assert max_overlap(operations(calls, "up")) <= 4
    assert bed.ledger() == given  # the same blocks as the preview's
    # What Neutron (the stand-in's shared cloud) holds: nineteen subnets, none overlapping,
    # each the tenant's block; the failed tenant holds none.
    subnets = neutron_subnets(bed.cli)
    assert sorted(s["stack"] for s in subnets.values()) == [t for t in TENANTS if t != "tenant-07"]
    assert all(s["cidr"] == given[s["stack"]] for s in subnets.values())

    # -- tenants change: tenant-03 leaves the file (its stack stays), tenant-20 arrives ----------
    document = yaml.safe_load(tenants.read_text())
    del document["tenants"]["tenant-03"]
    document["tenants"]["tenant-20"] = tenant_entry(20)
    write_yaml(tenants, document)
    settings = yaml.safe_load((bed.cli / "standin.json").read_text())
    settings["cloud"]["tenant_networks"].append(tenant_network(20))
    write_settings(bed.cli, settings)

    added = bed.fleet("up", str(tenants), "--tenant", "tenant-20")

    assert added.code == EXIT_OK, added.stdout
    after = bed.ledger()
    assert {t: after[t] for t in TENANTS} == given  # nobody moved, tenant-03 still reserved
    assert pairwise_disjoint(after.values())
    assert ipaddress.IPv4Network(after["tenant-20"]).subnet_of(
        ipaddress.IPv4Network("10.254.0.0/16")
    )
    assert len(neutron_subnets(bed.cli)) == 20

    # -- destroy: every tenant in the file; protected volumes stay -------------------------------
    seen = len(bed.calls())
    destroy = bed.fleet("destroy", str(tenants), "--parallel", "4")

    assert destroy.code == EXIT_OK, destroy.stdout
    rows = destroy.rows()
    assert len(rows) == 20
    assert {row[2] for row in rows.values()} == {"ok"}
    assert rows["tenant-07"][3] == "-"  # its failed up left nothing to destroy
    assert destroy.stdout.count("kept 1 protected resource (1 share volume") == 19
    assert max_overlap(operations(bed.calls()[seen:], "destroy")) <= 4
    # Only tenant-03, which left the file without being destroyed, keeps its block and subnet.
    assert bed.ledger() == {"tenant-03": given["tenant-03"]}
    assert [s["stack"] for s in neutron_subnets(bed.cli).values()] == ["tenant-03"]
