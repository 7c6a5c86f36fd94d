from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from tests.fleet.fleet_env import PASSPHRASE, Bed
from tests.fleet.standin.install import REPO, install
from tests.stack_run import write_key_pair


@pytest.fixture(scope="session")
def standin_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One stand-in server for the session: each CLI call is then a thin client (a CLI call
    that imports grpc and pulumi takes seconds on a busy machine)."""
    socket = tmp_path_factory.mktemp("standin") / "cli.sock"
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fleet.standin.server", str(socket)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready", "the stand-in server did not start"
    yield socket
    process.terminate()
    process.wait(10)


@pytest.fixture
def standin(tmp_path: Path, standin_server: Path) -> Path:
    """A stand-in ``pulumi`` under ``<root>/bin``; its records land in ``<root>``."""
    return install(tmp_path / "cli", socket=standin_server)


@pytest.fixture
def bed(tmp_path: Path, standin: Path, environ: Mapping[str, str]) -> Bed:
    state = tmp_path / "state"
    state.mkdir()
    return Bed(
        tmp=tmp_path,
        cli=standin,
        state=state,
        work=tmp_path / "work",
        keys=write_key_pair(tmp_path),
        environ=environ,
    )


@pytest.fixture
def environ(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Mapping[str, str]:
    """The operator's environment (the CLI inherits it): the passphrase, a home of its own."""
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", PASSPHRASE)
    for name in ("PULUMI_CONFIG_PASSPHRASE_FILE", "PULUMI_BACKEND_URL", "MANILA_DHSS_FLEET_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return os.environ
