"""Two fleets on two machines (two work roots, two ledgers; one state backend, one cloud)
give blocks on one service network at the same moment. Each reads the network first, so each
sees it free and gives the same blocks; the cloud then decides: the one that comes second is
refused, by the program's discovery ("already held by subnet") or by Neutron itself (the
subnet overlaps), and its fleet reads the network again and gives those tenants the next free
blocks. Every tenant ends up built, no two subnets overlap, and nothing is retried forever.
"""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from dhss_components.fleet.results import EXIT_OK
from tests.fleet.fleet_env import (
    Bed,
    FleetRun,
    neutron_subnets,
    pairwise_disjoint,
    tenants_document,
    write_yaml,
)

FIRST, SECOND = [1, 2], [3, 4]


@pytest.mark.parametrize(
    ("hold", "refusal"),
    [
        ("hold", "is already held by subnet"),  # discovery, before anything is made
        ("hold_subnet", "overlaps with another subnet"),  # Neutron, refusing the subnet
    ],
)
def test_two_fleets_at_once_end_with_every_tenant_on_its_own_block(
    bed: Bed, hold: str, refusal: str
) -> None:
    release = bed.tmp / "go"
    second_tenants = [f"tenant-{i:02d}" for i in SECOND]
    # The second machine's tenants wait, after it has read the network and given its blocks:
    # before their programs run (their discovery then finds the first's subnets), or after
    # (Neutron then refuses their subnets).
    bed.tenants(FIRST + SECOND, **{hold: {t: str(release) for t in second_tenants}})
    first_file = write_yaml(bed.tmp / "first.yaml", tenants_document(bed.keys, FIRST))
    second_file = write_yaml(bed.tmp / "second.yaml", tenants_document(bed.keys, SECOND))
    other_machine = replace(bed, work=bed.tmp / "work-of-the-other-machine")
    runs: list[FleetRun] = []
    second = threading.Thread(
        target=lambda: runs.append(other_machine.fleet("up", str(second_file)))
    )
    second.start()
    try:
        # The other machine has read the network and given its blocks.
        its_ledger = other_machine.work / "service-subnets.json"
        for _ in range(600):
            if its_ledger.exists():
                break
            threading.Event().wait(0.05)
        given_second = other_machine.ledger()
        first = bed.fleet("up", str(first_file))
        assert first.code == EXIT_OK, first.stdout + first.stderr
        given_first = bed.ledger()
        assert set(given_first.values()) == set(given_second.values())
    finally:
        release.touch()
        second.join(120)
    (second_run,) = runs

    assert second_run.code == EXIT_OK, second_run.stdout + second_run.stderr
    moved = other_machine.ledger()
    rows = second_run.rows()
    for tenant in second_tenants:
        assert rows[tenant][2] == "ok"
        note = (
            f"{given_second[tenant]} was taken meanwhile by another subnet on the service network"
        )
        assert f"{tenant}: {note}; given {moved[tenant]}" in second_run.stdout
    assert not set(moved.values()) & set(given_first.values())
    # What the cloud holds: four subnets, none overlapping, each its tenant's final block.
    subnets = neutron_subnets(bed.cli)
    assert sorted(s["stack"] for s in subnets.values()) == [
        f"tenant-{i:02d}" for i in FIRST + SECOND
    ]
    assert pairwise_disjoint(s["cidr"] for s in subnets.values())
    assert {s["stack"]: s["cidr"] for s in subnets.values()} == {**given_first, **moved}
    # Each tenant's log keeps its refused attempt, then the one that built it.
    (log,) = (other_machine.work / "logs").glob("*-up/tenant-03.log")
    first_try, retry = log.read_text().split("# manila-dhss fleet: up of stack tenant-03")[1:]
    assert refusal in first_try
    assert given_second["tenant-03"] in first_try
    assert "failed" in first_try
    assert moved["tenant-03"] in retry
