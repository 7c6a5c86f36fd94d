"""Service subnet blocks for tenants on one service network: never overlapping, never moving."""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dhss_components.fleet.allocation import (
    AllocationError,
    HeldSubnet,
    SubnetRequest,
    allocate_service_subnets,
    host_pool,
    release,
)
from dhss_components.fleet.ledger import LedgerError, LedgerFile, reserve
from tests.fleet.fleet_env import pairwise_disjoint

NET = "b7d1a0c3-4e5f-4a6b-8c7d-9e0f1a2b3c41"
OTHER_NET = "0f0e0d0c-0b0a-4908-8706-050403020100"
POOL = ipaddress.IPv4Network("10.254.0.0/24")


def request(tenant: str, pinned: str | None = None, network: str = NET) -> SubnetRequest:
    return SubnetRequest(
        tenant=tenant,
        network_id=network,
        pool=POOL,
        mask=28,
        pinned=ipaddress.IPv4Network(pinned) if pinned else None,
    )


def cidrs_of(tenants: Sequence[str], ledger: Mapping[str, Mapping[str, str]] | None = None):
    return allocate_service_subnets([request(t) for t in tenants], ledger or {})


def test_new_tenants_get_the_first_free_blocks_in_name_order() -> None:
    allocation = cidrs_of(["tenant-b", "tenant-a", "tenant-c"])

    assert allocation.cidrs == {
        "tenant-a": "10.254.0.0/28",
        "tenant-b": "10.254.0.16/28",
        "tenant-c": "10.254.0.32/28",
    }
    assert allocation.new == {"tenant-a", "tenant-b", "tenant-c"}


def test_tenants_coming_and_going_never_move_the_others() -> None:
    first = cidrs_of(["tenant-a", "tenant-b", "tenant-c"])

    # tenant-b leaves the file (its stack is not destroyed yet), tenant-0 arrives: it sorts
    # first, but takes a free block instead of anyone's.
    second = cidrs_of(["tenant-0", "tenant-a", "tenant-c"], first.ledger)

    assert second.cidrs["tenant-a"] == first.cidrs["tenant-a"]
    assert second.cidrs["tenant-c"] == first.cidrs["tenant-c"]
    assert second.cidrs["tenant-0"] == "10.254.0.48/28"  # b's block stays reserved
    assert second.ledger[NET]["tenant-b"] == first.cidrs["tenant-b"]
    assert second.new == {"tenant-0"}


def test_a_destroyed_tenants_block_is_given_again() -> None:
    first = cidrs_of(["tenant-a", "tenant-b"])

    after = cidrs_of(["tenant-a", "tenant-z"], release(first.ledger, "tenant-b"))

    assert after.cidrs["tenant-z"] == first.cidrs["tenant-b"]


def test_a_pinned_block_is_kept_and_an_overlap_names_both_tenants() -> None:
    allocation = allocate_service_subnets(
        [request("tenant-a"), request("tenant-b", pinned="10.254.0.0/28")], {}
    )
    assert allocation.cidrs == {"tenant-a": "10.254.0.16/28", "tenant-b": "10.254.0.0/28"}

    with pytest.raises(AllocationError) as caught:
        allocate_service_subnets([request("tenant-c", pinned="10.254.0.16/28")], allocation.ledger)
    (problem,) = caught.value.problems
    assert problem.key == "tenants[tenant-c].shareNetwork.service_subnet_cidr"
    assert "overlaps 10.254.0.16/28, the service subnet of tenant tenant-a" in problem.message


def test_a_stack_made_before_the_ledger_keeps_its_subnet() -> None:
    # tenant-b's stack already has 10.254.0.0/28 (its service subnet, in its state).
    allocation = allocate_service_subnets(
        [request("tenant-a"), request("tenant-b")], {}, remembered={"tenant-b": "10.254.0.0/28"}
    )

    assert allocation.cidrs == {"tenant-a": "10.254.0.16/28", "tenant-b": "10.254.0.0/28"}
    assert allocation.new == {"tenant-a"}


def test_networks_are_allocated_separately() -> None:
    allocation = allocate_service_subnets(
        [request("tenant-a"), request("tenant-b", network=OTHER_NET)], {}
    )

    assert allocation.cidrs == {"tenant-a": "10.254.0.0/28", "tenant-b": "10.254.0.0/28"}


def test_a_full_pool_names_the_tenant_that_did_not_fit() -> None:
    with pytest.raises(AllocationError) as caught:
        cidrs_of([f"tenant-{i:02d}" for i in range(17)])

    (problem,) = caught.value.problems
    assert problem.key == "tenants[tenant-16]"
    assert "no free /28 is left in service_network_cidr 10.254.0.0/24" in problem.message


names = st.lists(st.from_regex(r"[a-z][a-z0-9-]{0,12}", fullmatch=True), unique=True, max_size=16)


@given(names, st.data())
def test_any_tenants_get_disjoint_blocks_that_stay_put(
    tenants: list[str], data: st.DataObject
) -> None:
    first = cidrs_of(tenants)
    assert set(first.cidrs) == set(tenants)
    assert pairwise_disjoint(first.cidrs.values())
    pool = ipaddress.ip_network(POOL)
    assert all(ipaddress.ip_network(c).subnet_of(pool) for c in first.cidrs.values())  # type: ignore[arg-type]

    leaving = data.draw(st.sets(st.sampled_from(tenants)) if tenants else st.just(set()))
    ledger = first.ledger
    for tenant in data.draw(
        st.sets(st.sampled_from(sorted(leaving))) if leaving else st.just(set())
    ):
        ledger = release(ledger, tenant)  # some of them were destroyed too
    arriving = data.draw(st.lists(st.from_regex(r"new-[a-z]{1,4}", fullmatch=True), unique=True))
    staying = [t for t in tenants if t not in leaving]
    reserved = sum(len(given) for given in ledger.values())
    free = 16 - reserved
    if len(arriving) > free:
        # More newcomers than free blocks: refused, naming the first that did not fit (in
        # name order), and nobody already placed is moved to make room.
        with pytest.raises(AllocationError) as caught:
            cidrs_of(staying + arriving, ledger)
        left_out = sorted(arriving)[free:]
        assert [p.key for p in caught.value.problems] == [f"tenants[{t}]" for t in left_out]
        return
    second = cidrs_of(staying + arriving, ledger)

    assert {t: second.cidrs[t] for t in staying} == {t: first.cidrs[t] for t in staying}
    assert set(second.new) == set(arriving)
    everything = {**second.ledger.get(NET, {})}
    assert len(everything) == reserved + len(arriving)
    assert pairwise_disjoint(everything.values())


@settings(max_examples=30)
@given(
    names, st.lists(st.integers(min_value=0, max_value=3), min_size=16, max_size=16), st.randoms()
)
def test_fleet_runs_in_any_order_never_share_a_block(
    tmp_path_factory: pytest.TempPathFactory,
    tenants: list[str],
    groups: list[int],
    random: object,
) -> None:
    """Tenants split over up to four fleet runs (different tenants files, one ledger), run in
    any order: every block given is given once."""
    ledger = LedgerFile(tmp_path_factory.mktemp("ledger") / "service-subnets.json")
    runs: dict[int, list[str]] = {}
    for tenant, group in zip(tenants, groups, strict=False):
        runs.setdefault(group, []).append(tenant)
    order = list(runs)
    random.shuffle(order)  # type: ignore[attr-defined]
    given_out: dict[str, str] = {}
    for group in order:
        given_out.update(reserve(ledger, [request(t) for t in runs[group]]).cidrs)
    assert set(given_out) == set(tenants)
    assert pairwise_disjoint(given_out.values())


def test_fleet_runs_at_the_same_time_wait_for_each_other(tmp_path: Path) -> None:
    """Four fleet runs on one machine at once, each taking its time to read stack outputs
    under the lock: without the lock they would all see an empty ledger and hand out
    10.254.0.0/28 four times."""
    ledger = LedgerFile(tmp_path / "service-subnets.json")
    results: dict[int, Mapping[str, str]] = {}

    def slow_outputs(unknown: Sequence[str]) -> dict[str, str]:
        time.sleep(0.05)
        return {}

    def fleet_run(group: int) -> None:
        tenants = [request(f"run{group}-tenant{i}") for i in range(3)]
        results[group] = reserve(ledger, tenants, slow_outputs).cidrs

    threads = [threading.Thread(target=fleet_run, args=(g,)) for g in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    everything = [c for cidrs in results.values() for c in cidrs.values()]
    assert len(everything) == 12
    assert pairwise_disjoint(everything)
    assert sum(len(given) for given in ledger.read().values()) == 12


def test_a_damaged_ledger_is_an_error_not_a_fresh_start(tmp_path: Path) -> None:
    path = tmp_path / "service-subnets.json"
    path.write_text("{not json")

    with pytest.raises(LedgerError, match="not valid JSON"):
        reserve(LedgerFile(path), [request("tenant-a")])


def test_an_overlapping_pin_is_found_whatever_the_order_of_the_file() -> None:
    # tenant-a (no pin) comes first in the file; tenant-b and tenant-c pin overlapping blocks.
    with pytest.raises(AllocationError) as caught:
        allocate_service_subnets(
            [request("tenant-a"), request("tenant-b", "10.254.0.0/28"),
             request("tenant-c", "10.254.0.0/27")],
            {},
        )  # fmt: skip
    assert sorted(p.key for p in caught.value.problems) == [
        "tenants[tenant-b].shareNetwork.service_subnet_cidr",
        "tenants[tenant-c].shareNetwork.service_subnet_cidr",
    ]


def test_every_tenant_that_does_not_fit_is_named() -> None:
    with pytest.raises(AllocationError) as caught:
        cidrs_of([f"tenant-{i:02d}" for i in range(18)])
    assert [p.key for p in caught.value.problems] == ["tenants[tenant-16]", "tenants[tenant-17]"]
    assert str(caught.value).count("no free /28 is left") == 2


def test_releasing_a_tenant_keeps_the_other_networks() -> None:
    ledger = {NET: {"tenant-a": "10.254.0.0/28", "tenant-b": "10.254.0.16/28"},
              OTHER_NET: {"tenant-c": "10.254.0.0/28"}}  # fmt: skip
    assert release(ledger, "tenant-b") == {
        NET: {"tenant-a": "10.254.0.0/28"},
        OTHER_NET: {"tenant-c": "10.254.0.0/28"},
    }
    assert release(release(ledger, "tenant-b"), "tenant-a") == {
        OTHER_NET: {"tenant-c": "10.254.0.0/28"}
    }


def test_a_stack_the_ledger_does_not_know_is_asked_for_under_the_lock(tmp_path: Path) -> None:
    ledger = LedgerFile(tmp_path / "service-subnets.json")
    asked: list[list[str]] = []

    def remember(unknown: Sequence[str]) -> dict[str, str]:
        asked.append(list(unknown))
        return {"tenant-b": "10.254.0.0/28"}  # its stack already has this subnet

    allocation = reserve(
        ledger, [request("tenant-a"), request("tenant-b"), request("tenant-p", "10.254.0.64/28")],
        remember,
    )  # fmt: skip

    assert asked == [["tenant-a", "tenant-b"]]  # the pinned tenant needs no asking
    assert allocation.cidrs == {
        "tenant-a": "10.254.0.16/28",
        "tenant-b": "10.254.0.0/28",
        "tenant-p": "10.254.0.64/28",
    }
    assert ledger.read()[NET] == allocation.cidrs
    # Known now: a second run asks nobody.
    reserve(ledger, [request("tenant-a"), request("tenant-b")], remember)
    assert len(asked) == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [("{not json", "not valid JSON"), ('{"version": 7}', "not a version 1 ledger")],
)
def test_a_damaged_ledger_names_its_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "service-subnets.json"
    path.write_text(text)
    with pytest.raises(LedgerError) as caught:
        LedgerFile(path).read()
    assert str(caught.value).startswith(str(path))
    assert message in str(caught.value)


# -- what the service network already holds in the cloud (survey.py) -----------------------


def held(name: str, cidr: str, subnet_id: str = "") -> HeldSubnet:
    return HeldSubnet(id=subnet_id or f"id-of-{name}", name=name, cidr=cidr)


def named(tenant: str, pinned: str | None = None) -> SubnetRequest:
    """A request with Manila's name for the tenant's service subnet (here: svc-<tenant>)."""
    return replace(request(tenant, pinned), subnet_name=f"svc-{tenant}")


def test_blocks_the_service_network_holds_are_never_given() -> None:
    # Manila's own share server (another tenant subnet's name) and an older /26, made by
    # neither the fleet nor its ledger.
    cloud = {
        NET: [
            held(
                "service_subnet_for_handling_of_share_server_for_tenant_subnet_x", "10.254.0.0/28"
            ),
            held("older-mask", "10.254.0.64/26"),
        ]
    }

    allocation = allocate_service_subnets([named(t) for t in "abcd"], {}, None, cloud)

    assert allocation.cidrs == {
        "a": "10.254.0.16/28",
        "b": "10.254.0.32/28",
        "c": "10.254.0.48/28",
        "d": "10.254.0.128/28",
    }
    assert allocation.new == {"a", "b", "c", "d"}


def test_a_tenant_whose_subnet_exists_keeps_it_whatever_the_ledger_says() -> None:
    cloud = {NET: [held("svc-a", "10.254.0.48/28")]}

    allocation = allocate_service_subnets(
        [named("a"), named("b")], {NET: {"a": "10.254.0.0/28"}}, None, cloud
    )

    assert allocation.cidrs == {"a": "10.254.0.48/28", "b": "10.254.0.0/28"}
    assert allocation.new == {"b"}


def test_a_block_given_but_never_made_is_given_again_once_another_subnet_holds_it() -> None:
    # a and b were given blocks by this fleet; b made its subnet, a has not yet. Meanwhile a
    # fleet on another machine made a subnet on a's block.
    ledger = {NET: {"a": "10.254.0.0/28", "b": "10.254.0.16/28"}}
    cloud = {NET: [held("svc-b", "10.254.0.16/28"), held("svc-elsewhere", "10.254.0.0/28")]}

    allocation = allocate_service_subnets([named("a"), named("b")], ledger, None, cloud)

    assert allocation.cidrs == {"a": "10.254.0.32/28", "b": "10.254.0.16/28"}
    assert allocation.new == {"a"}
    assert allocation.ledger[NET] == allocation.cidrs


def test_a_pinned_block_another_subnet_holds_is_an_error_naming_that_subnet() -> None:
    cloud = {NET: [held("manila-made", "10.254.0.0/24", "3f1c")]}

    with pytest.raises(AllocationError) as caught:
        allocate_service_subnets([named("a", pinned="10.254.0.32/28")], {}, None, cloud)

    assert [str(p) for p in caught.value.problems] == [
        "tenants[a].shareNetwork.service_subnet_cidr: 10.254.0.32/28 overlaps 10.254.0.0/24, "
        f"which subnet 3f1c (manila-made) already holds on service network {NET}; pick a free "
        "block or remove the key to let the fleet choose"
    ]


@given(
    names,
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=255), st.integers(min_value=26, max_value=30)),
        max_size=6,
    ),
)
def test_any_tenants_get_blocks_clear_of_whatever_the_network_holds(
    tenants: list[str], holdings: list[tuple[int, int]]
) -> None:
    found: list[HeldSubnet] = []
    for index, (octet, mask) in enumerate(holdings):
        cidr = ipaddress.ip_network(f"10.254.0.{octet}/{mask}", strict=False)
        if not any(cidr.overlaps(ipaddress.ip_network(h.cidr)) for h in found):  # as Neutron
            found.append(held(f"other-{index}", str(cidr)))
    cloud = {NET: found}
    try:
        first = allocate_service_subnets([named(t) for t in tenants], {}, None, cloud)
    except AllocationError:
        free = [
            b for b in POOL.subnets(new_prefix=28)
            if not any(b.overlaps(ipaddress.ip_network(h.cidr)) for h in found)
        ]  # fmt: skip
        assert len(tenants) > len(free)
        return
    given = list(first.cidrs.values())
    assert pairwise_disjoint(given + [h.cidr for h in found])
    # Made as given: each tenant's subnet is now in the cloud too, and nothing moves.
    made = found + [held(f"svc-{t}", c) for t, c in first.cidrs.items()]
    again = allocate_service_subnets([named(t) for t in tenants], first.ledger, None, {NET: made})
    assert again.cidrs == first.cidrs
    assert again.new == frozenset()


# -- what each tenant's own stack refuses besides the service network (survey.py) ----------


def test_a_block_on_the_tenants_own_router_is_never_given_to_it() -> None:
    # tenant a's router already joins 10.254.0.0/27 (a subnet of the tenant's own), which
    # its stack's discovery refuses for a service subnet; b's router does not.
    nearby = {"a": ["10.0.0.0/24", "10.254.0.0/27"], "b": ["10.1.0.0/24"]}

    allocation = allocate_service_subnets([named("a"), named("b")], {}, None, {NET: []}, nearby)

    assert allocation.cidrs == {"a": "10.254.0.32/28", "b": "10.254.0.0/28"}


def test_a_block_given_never_made_that_the_tenants_router_now_holds_is_given_again() -> None:
    # The fleet gave a 10.254.0.0/28 before a subnet on that block joined a's router: its
    # stack's discovery refuses it at every preview. a has no subnet yet, so it moves; b,
    # whose subnet exists, never does, whatever is near it.
    ledger = {NET: {"a": "10.254.0.0/28", "b": "10.254.0.16/28"}}
    cloud = {NET: [held("svc-b", "10.254.0.16/28")]}
    nearby = {"a": ["10.254.0.0/28"], "b": ["10.254.0.16/28"]}

    allocation = allocate_service_subnets([named("a"), named("b")], ledger, None, cloud, nearby)

    assert allocation.cidrs == {"a": "10.254.0.32/28", "b": "10.254.0.16/28"}
    assert allocation.new == {"a"}


def test_a_pinned_block_on_the_tenants_own_router_is_an_error() -> None:
    with pytest.raises(AllocationError) as caught:
        allocate_service_subnets(
            [named("a", pinned="10.254.0.32/28")], {}, None, {NET: []}, {"a": ["10.254.0.0/26"]}
        )

    assert [str(p) for p in caught.value.problems] == [
        "tenants[a].shareNetwork.service_subnet_cidr: 10.254.0.32/28 overlaps 10.254.0.0/26, a "
        "subnet of the tenant's own (its tenant or admin subnet, or one on its router), which its "
        "stack refuses; pick another block or remove the key to let the fleet choose"
    ]


@given(
    names,
    st.dictionaries(
        st.sampled_from("abcdefgh"),
        st.lists(st.integers(min_value=0, max_value=255).map(lambda o: f"10.254.0.{o}/30")),
    ),
)
def test_no_tenant_is_given_a_block_its_own_stack_refuses(
    tenants: list[str], near: dict[str, list[str]]
) -> None:
    nearby = {t: [str(ipaddress.ip_network(c, strict=False)) for c in cs] for t, cs in near.items()}
    try:
        allocation = allocate_service_subnets(
            [named(t) for t in tenants], {}, None, {NET: []}, nearby
        )
    except AllocationError:
        return
    for tenant, cidr in allocation.cidrs.items():
        block = ipaddress.ip_network(cidr)
        assert not any(block.overlaps(ipaddress.ip_network(c)) for c in nearby.get(tenant, []))
    assert pairwise_disjoint(allocation.cidrs.values())


# -- tenants without service_network_id: one pool per host their host ports are plugged on -----


def on_host(tenant: str) -> SubnetRequest:
    return SubnetRequest(
        tenant=tenant,
        network_id=host_pool("devstack"),
        pool=POOL,
        mask=28,
        subnet_name=f"svc-{tenant}",
        in_cloud=False,
    )


def test_tenants_plugged_on_one_host_never_share_a_block() -> None:
    allocation = allocate_service_subnets([on_host("a"), on_host("b")], {})

    assert allocation.cidrs == {"a": "10.254.0.0/28", "b": "10.254.0.16/28"}
    assert allocation.ledger == {"service_network_host:devstack": allocation.cidrs}


def test_a_tenant_on_a_host_whose_subnet_exists_keeps_it_whatever_the_ledger_says() -> None:
    # Its stack's state has its subnet (no network to read: each stack makes its own).
    ledger = {host_pool("devstack"): {"a": "10.254.0.0/28"}}

    allocation = allocate_service_subnets(
        [on_host("a"), on_host("b")], ledger, {"a": "10.254.0.48/28"}, {}, {"a": ["10.254.0.48/28"]}
    )

    assert allocation.cidrs == {"a": "10.254.0.48/28", "b": "10.254.0.0/28"}


def test_pools_plugged_on_one_host_never_overlap_each_other() -> None:
    # b's service network is given by id, a's is its own: both host ports are on devstack.
    a = replace(on_host("a"), host="devstack")
    b = replace(named("b"), host="devstack")
    elsewhere = replace(named("c"), host="another-host")

    allocation = allocate_service_subnets([a, b, elsewhere], {})

    assert pairwise_disjoint([allocation.cidrs["a"], allocation.cidrs["b"]])
    assert allocation.cidrs["c"] == "10.254.0.16/28"  # beside b on the network, not a's host
