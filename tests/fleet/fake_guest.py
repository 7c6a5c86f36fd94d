"""A fake service instance for the in-guest check: the real OpenSSH sshd on a loopback port,
with a host key of the test's own, that answers ``share.sh check`` through
``guest_check_standin.py``. Optionally a bastion (a second sshd that only forwards) and
password logins (in a mount namespace of its own, root's password is the test's)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.local_sshd import SSHD, free_port, keygen

STANDIN = Path(__file__).with_name("guest_check_standin.py")


def require_sshd() -> None:
    if not Path(SSHD).exists() or shutil.which("ssh") is None:
        pytest.skip("openssh-server and openssh-client are needed (run-tests installs them)")
    if os.geteuid() != 0:
        pytest.skip("sshd needs root for its privilege separation (run-tests runs as root)")
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)


@dataclass
class Sshd:
    port: int
    host_key: str
    """"TYPE BASE64"."""
    host_key_file: Path
    """Its private half."""
    log: Path
    process: subprocess.Popen[bytes] = field(repr=False)


@contextmanager
def sshd(
    directory: Path,
    name: str,
    authorized: list[str],
    options: dict[str, str],
    *,
    wrap: list[str] | None = None,
) -> Iterator[Sshd]:
    """A real sshd on 127.0.0.1, logging to ``<name>.log``; ``wrap`` runs it under a command
    (e.g. ``unshare``)."""
    host_key = directory / f"{name}_host_ed25519"
    public = keygen(host_key)
    keys = directory / f"{name}_authorized_keys"
    keys.write_text("".join(f"{k}\n" for k in authorized))
    port = free_port()
    log = directory / f"{name}.log"
    settings = {
        "ListenAddress": "127.0.0.1",
        "PidFile": str(directory / f"{name}.pid"),
        "AuthorizedKeysFile": str(keys),
        "StrictModes": "no",
        "LogLevel": "DEBUG1",
        **options,
    }
    argv = [SSHD, "-D", "-f", "/dev/null", "-h", str(host_key), "-p", str(port), "-E", str(log)]
    for key, value in settings.items():
        argv += ["-o", f"{key}={value}"]
    process = subprocess.Popen([*(wrap or []), *argv], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"sshd {name} did not start: {log.read_text()}") from None
                time.sleep(0.05)
        yield Sshd(port, public, host_key, log, process)
    finally:
        process.terminate()
        process.wait(timeout=10)


@dataclass
class FakeGuest:
    """The instance: who may log in, and what its shares look like from inside."""

    sshd: Sshd
    state: Path
    client_key: Path
    """The private key the stack's commands log in with (path_to_private_key)."""

    @property
    def port(self) -> int:
        return self.sshd.port

    @property
    def host_key(self) -> str:
        return self.sshd.host_key

    def answer(self, volume_id: str, **answer: Any) -> None:
        """What ``share.sh check`` finds for that volume's share: drift=[...], exit, stderr."""
        path = self.state / "guest.json"
        answers = json.loads(path.read_text()) if path.exists() else {}
        answers[volume_id] = answer
        path.write_text(json.dumps(answers))

    def ran(self) -> list[dict[str, Any]]:
        path = self.state / "ran.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def guest_options(state: Path, **more: str) -> dict[str, str]:
    return {
        "ForceCommand": f"{sys.executable} {STANDIN} {state}",
        "PasswordAuthentication": "no",
        "KbdInteractiveAuthentication": "no",
        **more,
    }


@contextmanager
def fake_guest(directory: Path, **options: str) -> Iterator[FakeGuest]:
    """A guest that root logs in to with a key of this test's own."""
    require_sshd()
    state = directory / "guest"
    state.mkdir()
    client = directory / "client_ed25519"
    public = keygen(client)
    with sshd(directory, "guest", [public], guest_options(state, **options)) as server:
        yield FakeGuest(server, state, client)
