"""Fixtures for tests on a real Neutron API server (marker ``neutron``).

One neutron-server for the whole session (about 10 s to start); each test works in projects of
its own (ids starting with a prefix made from the test's id), so tests never see each other's
objects and never need the server reset.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import pytest

# The fleet's stand-in CLI and its operator, for the fleet on this Neutron (test_fleet.py).
from tests.fleet.conftest import bed, environ, standin, standin_server  # noqa: F401

from . import server
from .client import NeutronClient
from .cloud import NeutronCloud
from .clouds import SERVICE_IMAGE, Cloud, busy_cloud
from .engine import Deployment

_started_in: list[float] = []
_on_the_server: set[str] = set()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "neutron_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.neutron)
            _on_the_server.add(item.nodeid)


def _require_neutron_server() -> None:
    reason = server.missing_reason()
    if reason is None:
        return
    if server.can_install():
        pytest.fail(
            f"{reason}. ./run-tests installs it (as root); or apt-get install -y "
            f"--no-install-recommends {server.DEBIAN_PACKAGE}",
            pytrace=False,
        )
    pytest.skip(
        f"{reason}, and it cannot be installed here (needs root and apt-get): the tests on a "
        "real Neutron did not run"
    )


@pytest.fixture(scope="session")
def neutron_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[server.NeutronServer]:
    """One neutron-server for the session, stopped at the end."""
    _require_neutron_server()
    directory = tmp_path_factory.mktemp("neutron")
    try:
        running = server.start(directory)
    except server.NeutronServerError as error:
        pytest.fail(str(error), pytrace=False)
    _started_in.append(running.started_in)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def neutron(neutron_server: server.NeutronServer) -> NeutronClient:
    return NeutronClient(neutron_server.endpoint, neutron_server.log)


@pytest.fixture
def prefix(request: pytest.FixtureRequest) -> str:
    """This test's project-id prefix: the same for the same test, unique in the session."""
    digest = hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:12]
    return f"t{digest}"


@pytest.fixture
def busy(neutron: NeutronClient, prefix: str) -> Cloud:
    """A cloud in use (see clouds.busy_cloud), in this test's projects."""
    return busy_cloud(neutron, prefix)


def make_deployment(neutron: NeutronClient, cloud: Cloud) -> Deployment:
    neutron_cloud = NeutronCloud(neutron, cloud.service_project)
    neutron_cloud.add_image(SERVICE_IMAGE)
    return Deployment(neutron_cloud)


@pytest.fixture
def deployment(neutron: NeutronClient, busy: Cloud) -> Deployment:
    """An empty stack on the busy cloud, deploying as its service project."""
    return make_deployment(neutron, busy)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say what the real Neutron adds to the run: the server's start and its tests."""
    seconds = 0.0
    count = 0
    for reports in terminalreporter.stats.values():
        for report in reports:
            if getattr(report, "nodeid", None) in _on_the_server and hasattr(report, "duration"):
                seconds += report.duration
                count += report.when == "call"
    if count:
        started = f"server ready in {_started_in[0]:.0f} s, " if _started_in else ""
        terminalreporter.write_line(
            f"neutron tests: {count} ran in {seconds:.0f} s ({started}setup and calls)"
        )
