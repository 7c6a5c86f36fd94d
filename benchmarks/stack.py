"""Run the real program under the simulated cloud, as the tests do, and keep what it declared.

The same run the tests and the offline plan make (``simulated_cloud.run_program``), kept as
what the benchmarks read: the registrations (the dependency graph) and the invokes.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest.mock import patch

from pulumi.runtime import MockCallArgs
from pulumi.runtime.resource import register_resource

from benchmarks.model import Declared
from dhss_components.simulated_cloud import RecordingMonitor, SimulatedCloud
from dhss_components.simulated_cloud import run_program as run_simulated
from tests.clouds import devstack_cloud
from tests.stack_run import PROJECT, base_config, write_key_pair

SHARE_SIZE_GIB = 10


def share_name(index: int) -> str:
    return f"s{index:02d}"


def declared(monitor: RecordingMonitor, order: Sequence[tuple[str, str]] = ()) -> list[Declared]:
    """The graph as the scheduling model reads it: custom flag, parent, dependencies, in the
    order the program constructed the resources (``order``: (type, name) pairs; registration
    order where it is not given)."""
    rank = {key: i for i, key in enumerate(order)}
    registrations = sorted(
        monitor.registrations.values(), key=lambda r: rank.get((r.type, r.name), len(rank))
    )
    return [
        Declared(
            urn=r.urn,
            custom=r.custom,
            parent=r.parent if r.parent in monitor.registrations else "",
            dependencies=tuple(r.dependencies),
            package=r.type.split(":", 1)[0] if r.custom else "",
        )
        for r in registrations
    ]


@dataclass
class Declaration:
    monitor: RecordingMonitor
    invokes: list[MockCallArgs]
    construction_order: list[tuple[str, str]] = field(default_factory=list)
    """(type, name) of each resource in the order the program constructed it. Under the mocks
    every registration completes at once, so the order they reach the monitor says little
    about a real run; the construction order is what decides, in a real run, which of the
    registrations waiting on the same resource is sent first when it completes (the SDK's
    tasks wake in the order they started waiting)."""

    def declared(self) -> list[Declared]:
        return declared(self.monitor, self.construction_order)

    def type_of(self, urn: str) -> str:
        return self.monitor.registrations[urn].type

    def name_of(self, urn: str) -> str:
        return self.monitor.registrations[urn].name


@contextmanager
def key_pair() -> Iterator[tuple[Path, Path]]:
    with tempfile.TemporaryDirectory(prefix="dhss-bench-") as folder:
        yield write_key_pair(Path(folder))


def share_config(keys: tuple[Path, Path], shares: int) -> dict[str, Any]:
    """The dev stack's config (router mode, NFS) with ``shares`` shares s00, s01, ..."""
    config = base_config(keys)
    template = config["shares"][0]
    config["shares"] = [
        {**template, "name": share_name(i), "size": SHARE_SIZE_GIB} for i in range(shares)
    ]
    return config


def add_tenant(cloud: SimulatedCloud, index: int) -> tuple[str, str]:
    """Another tenant network behind its own router; tenant 0 is the DevStack one."""
    if index == 0:
        from tests.clouds import DEVSTACK_TENANT_NET, DEVSTACK_TENANT_SUBNET

        return DEVSTACK_TENANT_NET, DEVSTACK_TENANT_SUBNET
    net = cloud.add_network(f"tenant-{index}")
    subnet = cloud.add_subnet(net, f"10.{100 + index // 256}.{index % 256}.0/26", name="private")
    cloud.add_router(subnet)
    return net, subnet


def run_program(
    cloud: SimulatedCloud,
    config: dict[str, Any],
    *,
    stack: str = "dev",
    preview: bool = False,
) -> Declaration:
    """One run of the program, as the tests and the offline plan run it."""
    constructed: list[tuple[str, str]] = []

    def recording(res: Any, ty: str, name: str, *args: Any, **kwargs: Any) -> None:
        constructed.append((ty, name))
        register_resource(res, ty, name, *args, **kwargs)

    # pulumi.resource.Resource calls the name it imported: patch it there.
    with patch("pulumi.resource.register_resource", recording):
        run = run_simulated(cloud, config, project=PROJECT, stack=stack, preview=preview)
    return Declaration(run.monitor, run.invokes, constructed)


def declare(shares: int, *, preview: bool = False) -> Declaration:
    """What one stack with ``shares`` shares declares, on a fresh DevStack-like cloud."""
    with key_pair() as keys:
        return run_program(devstack_cloud(), share_config(keys, shares), preview=preview)
