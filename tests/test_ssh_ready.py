"""The wait for the service instance's sshd: every command waits for it, a wrong key stops it.

The script runs for real here against stand-in sshds: a small server that speaks the first
line of SSH and an ssh-keyscan stand-in on PATH would prove little, so these tests run the
real OpenSSH sshd on a loopback port with a host key of the test's own.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dhss_components.simulated_cloud import SimulatedCloud
from dhss_components.ssh_ready_script import SCRIPT_PATH, render_ssh_ready_command
from tests.local_sshd import SSHD, free_port, keygen
from tests.stack_run import run_stack


@contextlib.contextmanager
def running_sshd(tmp_path: Path, key_types: tuple[str, ...]) -> Iterator[tuple[int, list[str]]]:
    """A real sshd on 127.0.0.1 with host keys of these types; (port, public keys)."""
    if not Path(SSHD).exists() or shutil.which("ssh-keyscan") is None:
        pytest.skip("openssh-server and openssh-client are needed (run-tests installs them)")
    if os.geteuid() != 0:
        pytest.skip("sshd needs root for its privilege separation (run-tests runs as root)")
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation dir
    keys = [tmp_path / f"host_{key_type}" for key_type in key_types]
    publics = [keygen(key, key_type) for key, key_type in zip(keys, key_types, strict=True)]
    port = free_port()
    process = subprocess.Popen(
        [SSHD, "-D", "-e", "-f", "/dev/null", *(f"-h{key}" for key in keys), "-p", str(port),
         "-o", "ListenAddress=127.0.0.1", "-o", f"PidFile={tmp_path / 'pid'}"],
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield port, publics
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[tuple[int, str, Path]]:
    """A real sshd on 127.0.0.1 with a host key of this test; (port, public key, key file)."""
    with running_sshd(tmp_path, ("ed25519",)) as (port, publics):
        yield port, publics[0], tmp_path / "host_ed25519"


def run_script(*arguments: str) -> subprocess.CompletedProcess[str]:
    """ssh_ready.sh with these arguments, fed to bash on stdin as the program's command does."""
    return subprocess.run(
        ["bash", "-s", "--", *arguments],
        input=SCRIPT_PATH.read_text(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def run(host: str, timeout: int, key: str | None, port: int) -> subprocess.CompletedProcess[str]:
    command = render_ssh_ready_command(host, timeout, key)
    # The test's sshd listens on a port of its own (the program's command uses 22).
    first, body = command.split("\n", 1)
    first = first.replace(" <<", f" --port {port} <<", 1)
    return subprocess.run(
        ["sh", "-c", f"{first}\n{body}"], capture_output=True, text=True, timeout=120, check=False
    )


def test_the_pinned_key_lets_the_commands_through(sshd: tuple[int, str, Path]) -> None:
    port, public, _ = sshd
    result = run("127.0.0.1", 30, public + " comment-is-no-part-of-the-key", port)
    assert result.returncode == 0, result.stderr
    assert "offers the pinned host key" in result.stderr


def test_another_key_is_refused_at_once(sshd: tuple[int, str, Path], tmp_path: Path) -> None:
    port, public, _ = sshd
    other = keygen(tmp_path / "other")
    started = time.monotonic()
    result = run("127.0.0.1", 60, other, port)
    assert result.returncode == 1
    assert "host key mismatch" in result.stderr
    assert public in result.stderr
    assert other in result.stderr
    assert time.monotonic() - started < 30  # not after the whole timeout


def test_a_machine_offering_only_other_key_types_is_refused_at_once(tmp_path: Path) -> None:
    # Another machine on the address whose sshd has no ed25519 key at all: before, only the
    # pinned key's type was asked for, so it looked silent and was waited on until the timeout.
    pinned = keygen(tmp_path / "pinned")
    with running_sshd(tmp_path, ("rsa", "ecdsa")) as (port, offered):
        started = time.monotonic()
        result = run("127.0.0.1", 60, pinned, port)
    assert result.returncode == 1
    assert "host key mismatch" in result.stderr
    assert pinned in result.stderr
    for key in offered:  # both of what it offers are named
        assert key in result.stderr
    assert time.monotonic() - started < 30  # not after the whole timeout


def test_the_pinned_key_among_other_types_lets_the_commands_through(tmp_path: Path) -> None:
    # An image that keeps RSA and ECDSA keys beside the pinned one (a key the operator gave):
    # scanning every type must still find it.
    with running_sshd(tmp_path, ("rsa", "ecdsa", "ed25519")) as (port, offered):
        result = run("127.0.0.1", 30, offered[2], port)
    assert result.returncode == 0, result.stderr
    assert "offers the pinned host key" in result.stderr


@pytest.mark.parametrize("port", ["0", "65536", "99999", "080", "22x"])
def test_a_port_outside_1_to_65535_is_a_usage_error(port: str) -> None:
    result = run_script("--host", "127.0.0.1", "--timeout", "2", "--port", port)
    assert result.returncode == 2, result.stderr
    assert f"invalid --port '{port}': a TCP port, 1 to 65535" in result.stderr
    assert "usage: ssh_ready.sh" in result.stderr


def test_port_65535_is_a_port() -> None:
    result = run_script("--host", "127.0.0.1", "--timeout", "1", "--port", "65535")
    assert result.returncode == 1  # waited, nobody answered: not a usage error
    assert "did not answer within 1s" in result.stderr


@pytest.mark.parametrize("timeout", ["0", "86401", "1000000", "99999999999999999999", "-5"])
def test_a_timeout_beyond_a_day_is_a_usage_error(sshd: tuple[int, str, Path], timeout: str) -> None:
    port, public, _ = sshd  # it would answer at once: only the check can refuse
    result = run_script(
        "--host", "127.0.0.1", "--port", str(port), "--timeout", timeout, "--host-key", public
    )
    assert result.returncode == 2, result.stderr
    assert f"invalid --timeout '{timeout}': whole seconds, 1 to 86400 (a day)" in result.stderr


def test_a_timeout_of_a_day_is_allowed(sshd: tuple[int, str, Path]) -> None:
    port, public, _ = sshd
    result = run_script(
        "--host", "127.0.0.1", "--port", str(port), "--timeout", "86400", "--host-key", public
    )
    assert result.returncode == 0, result.stderr


def test_a_silent_host_times_out_with_the_option_named() -> None:
    started = time.monotonic()
    result = run("127.0.0.1", 3, None, free_port())
    assert result.returncode == 1
    assert "did not answer within 3s (max_time_to_build_instance)" in result.stderr
    assert 2 < time.monotonic() - started < 30


def test_the_script_refuses_bad_arguments() -> None:
    result = run_script("--host", "a;b", "--timeout", "1")
    assert result.returncode == 2
    assert "invalid --host" in result.stderr


def test_every_share_command_waits_for_it(cloud: SimulatedCloud, config: dict[str, Any]) -> None:
    config["shares"].append({**config["shares"][0], "name": "scratch"})
    run_result = run_stack(cloud, config)
    gate = run_result.monitor.named("share-server-ssh-ready")
    for share in ("projects", "scratch"):
        export = run_result.monitor.named(f"share-server-share-{share}-export")
        assert gate.urn in export.dependencies
    # It waits for what SSH needs (the instance, the host plug), and runs once per server.
    assert run_result.monitor.named("share-server-instance-server").urn in gate.dependencies
    assert run_result.monitor.named("share-server-host-service-plug").urn in gate.dependencies
    inputs = cloud.one("command:local:Command", "ssh-ready").inputs
    assert inputs["triggers"] == [run_result.outputs["share_server"]["instance_id"]]
    assert "--host-key" in inputs["create"].split("\n", 1)[0]


def test_through_a_bastion_there_is_no_local_wait(
    cloud: SimulatedCloud, config: dict[str, Any]
) -> None:
    config["backend"]["ssh_proxy"] = {
        "host": "bastion.example.org",
        "user": "jump",
        "source_cidrs": ["192.0.2.10/32"],
        "host_key": "unverified",
    }
    run_stack(cloud, config)
    assert [r.name for r in cloud.created("command:local:Command") if "ssh-ready" in r.name] == []
