"""Run the real program under the simulated cloud, as the tests do, and keep what it declared.

``tests/stack_run.py`` runs the program for the tests; this is the same few steps with two
additions the benchmarks need: the monitor also records whether each registration is a custom
resource (the dependency graph needs it), and the run can be a preview.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import MockCallArgs

from benchmarks.model import Declared
from dhss_components.program import share_server_program
from dhss_components.simulated_cloud import RecordingMonitor, SimulatedCloud, devstack_cloud
from tests.stack_run import PROJECT, base_config, write_key_pair

SHARE_SIZE_GIB = 10


def share_name(index: int) -> str:
    return f"s{index:02d}"


class GraphMonitor(RecordingMonitor):
    """RecordingMonitor that also keeps each registration's custom flag, in order."""

    def __init__(self, mocks: SimulatedCloud) -> None:
        super().__init__(mocks)
        self.custom: dict[str, bool] = {}

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 (gRPC method name)
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            self.custom[response.urn] = bool(request.custom)
        return response

    def declared(self) -> list[Declared]:
        return [
            Declared(
                urn=r.urn,
                custom=self.custom[r.urn],
                parent=r.parent if r.parent in self.registrations else "",
                dependencies=tuple(r.dependencies),
            )
            for r in self.registrations.values()
        ]


@dataclass
class Declaration:
    monitor: GraphMonitor
    invokes: list[MockCallArgs]

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
        from dhss_components.simulated_cloud import DEVSTACK_TENANT_NET, DEVSTACK_TENANT_SUBNET

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
    """One run of the program in a fresh event loop (Pulumi's pending work never leaks)."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        monitor = GraphMonitor(cloud)
        first_invoke = len(cloud.invokes)
        pulumi.runtime.set_mocks(
            cloud, project=PROJECT, stack=stack, preview=preview, monitor=monitor
        )
        pulumi.runtime.set_all_config(
            {f"dhss:{key}": json.dumps(value) for key, value in config.items()}
        )

        def program() -> None:
            share_server_program()

        pulumi.runtime.test(program)()  # type: ignore[no-untyped-call]
        return Declaration(monitor, cloud.invokes[first_invoke:])
    finally:
        loop.close()
        asyncio.set_event_loop(None)


def declare(shares: int, *, preview: bool = False) -> Declaration:
    """What one stack with ``shares`` shares declares, on a fresh DevStack-like cloud."""
    with key_pair() as keys:
        return run_program(devstack_cloud(), share_config(keys, shares), preview=preview)
