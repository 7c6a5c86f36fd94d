"""The benchmarks' pure graph logic on small hand-made graphs: correctness only, no timing."""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import pytest

from benchmarks.model import (
    ROOT,
    Declared,
    GraphError,
    Op,
    Span,
    backoff_offsets,
    default_provider,
    engine_graph,
    first_at_or_after,
    fixed_durations,
    fixed_poll_offsets,
    linear_fit,
    longest_path,
    schedule,
    state_change_poll_offsets,
)

# -- the engine's steps ---------------------------------------------------------------------------


def test_every_registration_is_a_step_and_waits_for_its_parent_and_the_stack() -> None:
    # A component's children are sent only once the component's own step has run, and a
    # parentless resource is the stack's child: the stack's step comes first.
    declared = [
        Declared("net", custom=False),
        Declared("subnet", custom=True, parent="net"),
        Declared("volume", custom=True),
    ]
    graph = engine_graph(declared)
    assert list(graph) == [ROOT, "net", "subnet", "volume"]
    assert graph == {ROOT: (), "net": (ROOT,), "subnet": ("net",), "volume": (ROOT,)}


def test_a_dependency_on_a_component_is_a_dependency_on_every_custom_resource_beneath_it() -> None:
    declared = [
        Declared("net", custom=False),
        Declared("subnet", custom=True, parent="net"),
        Declared("inner", custom=False, parent="net"),
        Declared("port", custom=True, parent="inner", dependencies=("subnet",)),
        Declared("ext", custom=True, parent="port"),
        Declared("server", custom=True, dependencies=("net",)),
    ]
    graph = engine_graph(declared)
    # Not the components themselves, and not a custom resource's own child (ext).
    assert graph["server"] == (ROOT, "subnet", "port")
    assert graph["ext"] == ("port",)


def test_depending_on_an_enclosing_component_skips_the_dependent_itself() -> None:
    declared = [
        Declared("comp", custom=False),
        Declared("sibling", custom=True, parent="comp"),
        Declared("me", custom=True, parent="comp", dependencies=("comp",)),
    ]
    assert engine_graph(declared)["me"] == ("comp", "sibling")


def test_an_empty_component_adds_no_dependency_and_duplicates_collapse() -> None:
    declared = [
        Declared("empty", custom=False),
        Declared("a", custom=True),
        Declared("b", custom=True, dependencies=("empty", "a", "a")),
    ]
    assert engine_graph(declared)["b"] == (ROOT, "a")


def test_the_first_resource_of_a_package_brings_its_default_provider_which_all_wait_for() -> None:
    declared = [
        Declared("comp", custom=False),
        Declared("subnet", custom=True, parent="comp", package="openstack"),
        Declared("plug", custom=True, parent="comp", package="command"),
        Declared("port", custom=True, parent="comp", dependencies=("subnet",), package="openstack"),
    ]
    graph = engine_graph(declared)
    openstack, command = default_provider("openstack"), default_provider("command")
    # Registered when the package's first resource arrives, so just before it in the order.
    assert list(graph) == [ROOT, "comp", openstack, "subnet", command, "plug", "port"]
    assert graph[openstack] == ("comp",)
    assert graph["subnet"] == ("comp", openstack)
    assert graph["port"] == ("comp", "subnet", openstack)
    assert command not in graph["port"]


def test_unregistered_dependencies_and_parents_are_errors() -> None:
    with pytest.raises(GraphError, match="unregistered resource"):
        engine_graph([Declared("a", custom=True, dependencies=("ghost",))])
    with pytest.raises(GraphError, match="unregistered parent"):
        engine_graph([Declared("a", custom=True, parent="ghost")])


def test_a_component_step_waits_for_a_slot_so_its_children_wait_too() -> None:
    # One slot: a slow volume registered first holds it; the network component behind it in
    # the queue cannot run, so its subnet (which needs nothing else) starts only afterwards.
    declared = [
        Declared("volume", custom=True),
        Declared("net", custom=False),
        Declared("subnet", custom=True, parent="net"),
    ]
    graph = engine_graph(declared)
    ops = [Op(urn, "test", deps) for urn, deps in graph.items()]
    seconds = {ROOT: 0.05, "net": 0.05, "volume": 3.0, "subnet": 0.5}
    result = schedule(ops, fixed_durations(seconds), parallel=1)
    assert result.spans["net"].start == pytest.approx(3.05)
    assert result.spans["subnet"].start == pytest.approx(3.1)
    assert result.makespan == pytest.approx(3.6)


def _ops(graph: Mapping[str, tuple[str, ...]]) -> list[Op]:
    return [Op(name, "test", deps) for name, deps in graph.items()]


DIAMOND = {"a": (), "b": ("a",), "c": ("a",), "d": ("b", "c")}
DIAMOND_SECONDS = {"a": 1.0, "b": 5.0, "c": 2.0, "d": 1.0}


def test_unbounded_schedule_of_a_diamond_is_its_longest_path() -> None:
    result = schedule(_ops(DIAMOND), fixed_durations(DIAMOND_SECONDS))
    assert result.makespan == pytest.approx(7.0)
    assert result.critical_chain() == ["a", "b", "d"]
    assert longest_path(_ops(DIAMOND), DIAMOND_SECONDS) == pytest.approx(7.0)
    assert result.spans["c"].start == pytest.approx(1.0)


def test_one_slot_runs_everything_one_after_another() -> None:
    result = schedule(_ops(DIAMOND), fixed_durations(DIAMOND_SECONDS), parallel=1)
    assert result.makespan == pytest.approx(sum(DIAMOND_SECONDS.values()))
    starts = sorted((s.start, n) for n, s in result.spans.items())
    assert [n for _, n in starts] == ["a", "b", "c", "d"]  # ties go in declaration order


def test_what_became_ready_first_starts_first_whatever_the_declaration_order() -> None:
    # Two slots. "late" is declared before "early" but only becomes ready at 1 s (its
    # dependency ends then); "early" has been waiting since 0 s and takes the slot freed at
    # 1 s: the engine's queue is first come, first served, nothing overtakes.
    ops = [Op("a", "t"), Op("b", "t"), Op("late", "t", ("a",)), Op("early", "t")]
    seconds = {"a": 1.0, "b": 10.0, "late": 1.0, "early": 4.0}
    result = schedule(ops, fixed_durations(seconds), parallel=2)
    assert result.spans["early"].start == pytest.approx(1.0)
    assert result.spans["late"].start == pytest.approx(5.0)


def test_a_bound_on_parallelism_delays_the_surplus() -> None:
    ops = _ops({f"op{i}": () for i in range(5)})
    result = schedule(ops, fixed_durations({f"op{i}": 2.0 for i in range(5)}), parallel=2)
    # 5 two-second operations on 2 slots: 3 waves.
    assert result.makespan == pytest.approx(6.0)
    assert sorted(s.start for s in result.spans.values()) == pytest.approx([0, 0, 2, 2, 4])


def test_a_lock_serialises_work_but_not_what_is_outside_it() -> None:
    # Three attaches to one server: the server's lock lets one work at a time; an unrelated
    # volume runs alongside.
    ops = [
        Op("attach1", "attach", (), ("server",)),
        Op("attach2", "attach", (), ("server",)),
        Op("attach3", "attach", (), ("server",)),
        Op("volume", "volume"),
    ]
    result = schedule(
        ops, fixed_durations(dict.fromkeys(("attach1", "attach2", "attach3", "volume"), 4.0))
    )
    ends = {name: span.end for name, span in result.spans.items()}
    assert ends == pytest.approx({"attach1": 4, "attach2": 8, "attach3": 12, "volume": 4})
    # They were all started (and hold an engine slot) at once: the wait is inside the cloud.
    assert {span.start for span in result.spans.values()} == {0.0}


def test_a_lock_released_at_work_end_lets_the_next_holder_in_before_the_first_is_noticed() -> None:
    def timing(op: Op, start: float, lock_free: float) -> Span:
        # 4 s of work under the lock, noticed 5 s later by a slow poll.
        return Span(start, lock_free, lock_free + 4, lock_free + 9, lock_free + 4)

    ops = [Op("first", "attach", (), ("vm",)), Op("second", "attach", (), ("vm",))]
    result = schedule(ops, timing)
    assert result.spans["second"].work_start == pytest.approx(4.0)
    assert result.spans["first"].end == pytest.approx(9.0)
    assert result.makespan == pytest.approx(13.0)  # second: works 4-8, noticed at 13


def test_the_critical_chain_follows_the_dependency_that_ended_last() -> None:
    graph = {
        "subnet": (),
        "port": ("subnet",),
        "volume": (),
        "server": ("port",),
        "attach": ("server", "volume"),
    }
    seconds = {"subnet": 0.5, "port": 0.5, "volume": 3.0, "server": 10.0, "attach": 4.0}
    result = schedule(_ops(graph), fixed_durations(seconds))
    assert result.critical_chain() == ["subnet", "port", "server", "attach"]
    assert result.makespan == pytest.approx(15.0)


def test_cycles_unknown_dependencies_and_duplicates_are_rejected() -> None:
    with pytest.raises(GraphError, match="cycle"):
        schedule(_ops({"a": ("b",), "b": ("a",), "c": ()}), fixed_durations({}))
    with pytest.raises(GraphError, match="unknown"):
        schedule(_ops({"a": ("nope",)}), fixed_durations({"a": 1}))
    with pytest.raises(GraphError, match="twice"):
        schedule([Op("a", "x"), Op("a", "x")], fixed_durations({"a": 1}))
    with pytest.raises(ValueError, match="at least 1"):
        schedule(_ops({"a": ()}), fixed_durations({"a": 1}), parallel=0)


def test_an_empty_graph_takes_no_time() -> None:
    assert schedule([], fixed_durations({})).makespan == 0.0
    assert schedule([], fixed_durations({})).critical_chain() == []
    assert longest_path([], {}) == 0.0


def test_longest_path_handles_a_long_chain() -> None:
    graph = {"n0": ()} | {f"n{i}": (f"n{i - 1}",) for i in range(1, 3000)}
    assert longest_path(_ops(graph), dict.fromkeys(graph, 0.5)) == pytest.approx(1500.0)


# -- poll schedules ----------------------------------------------------------------------------


def test_state_change_conf_refreshes_at_0_3_9_19_29() -> None:
    assert list(itertools.islice(state_change_poll_offsets(), 6)) == pytest.approx(
        [0, 3, 9, 19, 29, 39]
    )
    # A smaller MinTimeout lets the doubling show: 0.2 -> 0.4 -> ... until the 10 s cap.
    assert list(itertools.islice(state_change_poll_offsets(min_timeout=0.2), 4)) == pytest.approx(
        [0, 0.2, 0.6, 1.4]
    )


def test_pulumi_retry_backs_off_by_half_again_up_to_five_seconds() -> None:
    offsets = list(itertools.islice(backoff_offsets(), 14))
    gaps = [b - a for a, b in itertools.pairwise(offsets)]
    assert gaps[:3] == pytest.approx([0.1, 0.15, 0.225])
    assert max(gaps) == pytest.approx(5.0)
    assert gaps[-1] == pytest.approx(5.0)


def test_a_poller_notices_at_the_first_poll_at_or_after_the_event() -> None:
    assert first_at_or_after(state_change_poll_offsets(), 100.0, 110.0) == pytest.approx(119.0)
    assert first_at_or_after(state_change_poll_offsets(), 100.0, 100.0) == pytest.approx(100.0)
    assert first_at_or_after(fixed_poll_offsets(1.0), 0.5, 3.2) == pytest.approx(3.5)
    assert first_at_or_after(fixed_poll_offsets(5.0), 0.0, 5.0) == pytest.approx(5.0)


# -- linear fit ----------------------------------------------------------------------------------


def test_linear_fit_of_a_line_is_exact() -> None:
    fit = linear_fit([(1, 3.0), (10, 21.0), (26, 53.0)])
    assert fit.slope == pytest.approx(2.0)
    assert fit.intercept == pytest.approx(1.0)
    assert fit.r_squared == pytest.approx(1.0)


def test_linear_fit_of_a_curve_has_r_squared_below_one() -> None:
    fit = linear_fit([(x, float(x * x)) for x in (1, 10, 50)])
    assert fit.r_squared < 0.99
    with pytest.raises(ValueError, match="two points"):
        linear_fit([(1, 1.0)])
    with pytest.raises(ValueError, match="equal"):
        linear_fit([(1, 1.0), (1, 2.0)])
