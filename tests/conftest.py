from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pulumi
import pytest
from hypothesis import settings

from dhss_components.simulated_cloud import SimulatedCloud
from tests.clouds import devstack_cloud
from tests.stack_run import base_config, write_key_pair


class _NeverRetrieved(logging.Filter):
    """Drop asyncio's "exception was never retrieved" for the futures of a refused run.

    A run the cloud refuses leaves futures holding the refusal (the test has it already).
    When the garbage collector finalizes one while pytest parses a source file to report a
    failure, the log record's traceback, formatted with Python 3.11's caret anchors, calls
    ast.parse from inside that ast.parse; 3.11's ast module keeps its recursion depth in
    module state, and the outer parse then fails with "SystemError: AST constructor
    recursion depth mismatch", an INTERNALERROR that ends the session."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "exception was never retrieved" not in str(record.msg)


logging.getLogger("asyncio").addFilter(_NeverRetrieved())


# Property tests judge correctness, never speed: on a busy 2-core CI machine a per-example
# deadline only makes them flaky.
settings.register_profile("dhss", deadline=None)
settings.load_profile("dhss")


@pytest.fixture(autouse=True)
def _event_loop() -> Iterator[None]:
    # One loop per test: Pulumi's pending work must never resolve against another test's
    # mocks (pulumi/pulumi's own conftest does the same).
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    # set_mocks keeps any root stack resource an earlier test left in this thread's context,
    # and with it that test's stack name.
    pulumi.runtime.settings.ROOT.set(None)
    yield
    loop.close()
    asyncio.set_event_loop(None)


@pytest.fixture
def cloud() -> SimulatedCloud:
    return devstack_cloud()


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    return write_key_pair(tmp_path)


@pytest.fixture
def config(keys: tuple[Path, Path]) -> dict[str, Any]:
    return base_config(keys)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say how long the real-guest part took: it must fit comfortably in CI's 90 minutes."""
    guest_seconds = 0.0
    count = 0
    for reports in terminalreporter.stats.values():
        for report in reports:
            keywords = getattr(report, "keywords", {})
            if "guest" in keywords and getattr(report, "duration", None) is not None:
                guest_seconds += report.duration
                count += report.when == "call"
    if count:
        terminalreporter.write_line(
            f"guest tests: {count} ran in {guest_seconds:.0f} s "
            "(setup, including the guest image build and boot, and calls)"
        )
