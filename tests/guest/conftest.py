"""Fixtures for tests on a real Debian guest under qemu (see harness.py and README.md)."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.guest.harness import (
    HOST_APT_PACKAGES,
    Guest,
    GuestImage,
    build_guest_image,
    missing_host_tools,
)
from tests.guest.test_share_helpers import Shares, shares_for

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.guest)


def _require_host_tools() -> None:
    missing = missing_host_tools()
    missing_text = (
        f"{', '.join(missing)} not found (apt-get install {' '.join(HOST_APT_PACKAGES)})"
        if missing
        else "the host tools are installed"
    )
    if os.environ.get("DHSS_SKIP_GUEST") == "1":
        pytest.skip(f"DHSS_SKIP_GUEST=1: guest tests skipped; {missing_text}")
    if missing:
        pytest.fail(
            f"the guest tests need qemu and mmdebstrap: {missing_text}. "
            "Set DHSS_SKIP_GUEST=1 to skip them instead.",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def host_tools() -> None:
    """Fails (or skips, with DHSS_SKIP_GUEST=1) unless qemu, mmdebstrap and ssh are here."""
    _require_host_tools()


@pytest.fixture(scope="session")
def guest_image(host_tools: None) -> GuestImage:
    """The cached Debian guest image (built on first use, about 2 minutes)."""
    return build_guest_image()


@pytest.fixture(scope="session")
def guest(guest_image: GuestImage, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Guest]:
    """One guest for the whole session; tests must leave it as they found it."""
    booted = Guest.boot(guest_image, tmp_path_factory.mktemp("guest"))
    try:
        yield booted
    finally:
        booted.shutdown()


@pytest.fixture(autouse=True)
def _detach_volumes_left_attached(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a test on the session guest, detach the volumes it attached and left attached.

    A failed test would otherwise leave disks that change the next test's /dev/vdX names.
    """
    if "guest" not in request.fixturenames:
        yield
        return
    session_guest: Guest = request.getfixturevalue("guest")
    before = set(session_guest.attached_volumes())
    yield
    for volume_id in session_guest.attached_volumes():
        if volume_id not in before:
            print(f"detaching volume {volume_id} left attached by the test", file=sys.stderr)
            session_guest.detach_volume(volume_id)


@pytest.fixture
def volume_id() -> str:
    """A fresh Cinder-like volume id (UUID4)."""
    return str(uuid.uuid4())


@pytest.fixture
def shares(guest: Guest) -> Iterator[Shares]:
    """The share tests' shares on the guest, each cleaned up after its test."""
    yield from shares_for(guest)
