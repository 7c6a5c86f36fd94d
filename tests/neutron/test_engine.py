"""The engine's delete order (no server): dependents always go before what they depend on."""

from __future__ import annotations

import pytest

from .engine import EngineError, ResourceState, _dependents_first


def _resource(name: str, *needs: str) -> ResourceState:
    return ResourceState(
        urn=name,
        type="t",
        custom=True,
        id=name,
        inputs={},
        outputs={},
        dependencies=set(needs),
        protect=False,
    )


@pytest.mark.parametrize("given", ["registration order", "reversed"])
def test_dependents_are_deleted_first(given: str) -> None:
    # The service stack's shape: network <- subnet <- (router interface, port) <- server.
    network = _resource("network")
    subnet = _resource("subnet", "network")
    interface = _resource("interface", "subnet")
    port = _resource("port", "subnet", "network")
    server = _resource("server", "port")
    doomed = [network, subnet, interface, port, server]
    if given == "reversed":
        doomed.reverse()
    order = [r.urn for r in _dependents_first(doomed)]
    for dependent, needed in [
        ("subnet", "network"),
        ("interface", "subnet"),
        ("port", "subnet"),
        ("server", "port"),
    ]:
        assert order.index(dependent) < order.index(needed), order


def test_a_replaced_resource_goes_after_the_old_dependents_of_its_urn() -> None:
    # Old and new instance share a URN: what depends on the URN goes first.
    old_subnet = _resource("subnet", "network")
    old_interface = _resource("interface", "subnet")
    for doomed in ([old_subnet, old_interface], [old_interface, old_subnet]):
        assert [r.urn for r in _dependents_first(doomed)] == ["interface", "subnet"]


def test_a_cycle_is_an_error() -> None:
    with pytest.raises(EngineError, match="cycle"):
        _dependents_first([_resource("a", "b"), _resource("b", "a")])
