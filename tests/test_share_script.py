"""share_script: Manila's NFS client forms, and the commands that carry share.sh (no guest)."""

from __future__ import annotations

import ipaddress
import shlex
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dhss_components import share_script
from dhss_components.share_script import (
    SCRIPT_DELIMITER,
    AccessClient,
    ShareScriptParams,
    nfs_client,
    render_delete_command,
    render_ensure_command,
)

SCRIPT = Path(share_script.__file__).with_name("scripts") / "share.sh"
SHELLCHECK = Path(sys.executable).with_name("shellcheck")

PARAMS = ShareScriptParams(
    name="projects",
    volume_id="5f1c1bd3-7d2a-4c11-9a53-4c1f3a0c9e21",
    protocol="NFS",
    size_gib=10,
    clients=(
        AccessClient("rw", "10.0.0.0/24"),
        AccessClient("ro", "10.0.1.7/32"),
        AccessClient("rw", "1001::1000/124"),
        AccessClient("ro", "0.0.0.0/0"),
    ),
)


def first_line_arguments(command: str) -> list[str]:
    """The words of the command line, before the here-document (what sudo receives)."""
    line = command.split("\n", 1)[0]
    words = shlex.split(line)
    assert words[-1] == f"<<{SCRIPT_DELIMITER}", line
    return words[:-1]


# --- nfs_client ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("access_to", "client"),
    [
        # Manila's vectors (manila/tests/share/drivers/test_helpers.py)
        ("10.0.0.1", "10.0.0.1"),
        ("10.0.0.1/32", "10.0.0.1"),
        ("10.0.0.0/24", "10.0.0.0/24"),
        ("1001::1001", "[1001::1001]"),
        ("1001::1000/128", "[1001::1000]"),
        ("1001::1000/124", "[1001::1000]/124"),
        ("0.0.0.0/0", "*"),
        ("::/0", "*"),
    ],
)
def test_nfs_client_uses_manilas_forms(access_to: str, client: str) -> None:
    assert nfs_client(access_to) == client


@pytest.mark.parametrize("access_to", ["10.0.0.265", "10.0.0.0/33", "1001::/129", "10.0.0.1/24"])
def test_nfs_client_rejects_what_manila_rejects(access_to: str) -> None:
    with pytest.raises(ValueError, match="not an IP address or network"):
        nfs_client(access_to)


def parse_nfs_client(client: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """Read a Manila NFS client form back into the network it stands for."""
    if client == "*":
        raise AssertionError("'*' stands for both /0 networks; compare it separately")
    address, _, length = client.partition("/")
    address = address.removeprefix("[").removesuffix("]")
    return ipaddress.ip_network(f"{address}/{length}" if length else address)


networks = st.one_of(
    st.builds(
        lambda address, length: ipaddress.IPv4Network((address, length), strict=False),
        st.ip_addresses(v=4),
        st.integers(0, 32),
    ),
    st.builds(
        lambda address, length: ipaddress.IPv6Network((address, length), strict=False),
        st.ip_addresses(v=6),
        st.integers(0, 128),
    ),
)


@given(networks)
def test_nfs_client_round_trips(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> None:
    client = nfs_client(str(network))
    if network.prefixlen == 0:
        assert client == "*"
        return
    assert parse_nfs_client(client) == network
    assert ("[" in client) == (network.version == 6)
    assert ("/" in client) == (network.prefixlen != network.max_prefixlen)


@given(st.ip_addresses())
def test_nfs_client_of_a_bare_address_is_the_address(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    client = nfs_client(str(address))
    assert client == (str(address) if address.version == 4 else f"[{address}]")


# --- rendered commands --------------------------------------------------------------------


def test_ensure_command_carries_the_script_byte_for_byte() -> None:
    command = render_ensure_command(PARAMS)
    script = SCRIPT.read_text("utf-8")
    first, rest = command.split("\n", 1)
    assert first.endswith(f" <<'{SCRIPT_DELIMITER}'")
    assert rest == f"{script}{SCRIPT_DELIMITER}\n"


def test_ensure_command_arguments() -> None:
    assert first_line_arguments(render_ensure_command(PARAMS)) == [
        "sudo", "-n", "bash", "-s", "--", "ensure",
        "--name", "projects",
        "--volume-id", "5f1c1bd3-7d2a-4c11-9a53-4c1f3a0c9e21",
        "--protocol", "nfs",
        "--mount-root", "/shares",
        "--fstype", "ext4",
        "--size-gib", "10",
        "--device-timeout", "120",
        "--client", "rw:10.0.0.0/24",
        "--client", "ro:10.0.1.7",
        "--client", "rw:[1001::1000]/124",
        "--client", "ro:*",
    ]  # fmt: skip


def test_cifs_clients_are_the_addresses_as_written() -> None:
    params = replace(
        PARAMS,
        protocol="CIFS",
        clients=(AccessClient("rw", "10.0.1.7/32"), AccessClient("rw", "1001::1")),
        mount_root="/srv/shares",
        fstype="ext3",
    )
    arguments = first_line_arguments(render_ensure_command(params))
    assert arguments[arguments.index("--protocol") + 1] == "cifs"
    assert arguments[arguments.index("--mount-root") + 1] == "/srv/shares"
    assert arguments[arguments.index("--fstype") + 1] == "ext3"
    clients = [arguments[i + 1] for i, word in enumerate(arguments) if word == "--client"]
    assert clients == ["rw:10.0.1.7/32", "rw:1001::1"]


def test_no_clients_means_no_client_arguments() -> None:
    arguments = first_line_arguments(render_ensure_command(replace(PARAMS, clients=())))
    assert "--client" not in arguments


def test_delete_command() -> None:
    command = render_delete_command(PARAMS)
    assert first_line_arguments(command) == [
        "sudo", "-n", "bash", "-s", "--", "delete",
        "--name", "projects", "--protocol", "nfs", "--mount-root", "/shares",
    ]  # fmt: skip
    assert command.split("\n", 1)[1] == f"{SCRIPT.read_text('utf-8')}{SCRIPT_DELIMITER}\n"


def test_a_script_change_changes_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    before = render_ensure_command(PARAMS), render_delete_command(PARAMS)
    changed = SCRIPT.read_text("utf-8") + "# one more line\n"
    monkeypatch.setattr(share_script, "share_script", lambda: changed)
    after = render_ensure_command(PARAMS), render_delete_command(PARAMS)
    assert after[0] != before[0]
    assert after[1] != before[1]
    assert changed in after[0]


def test_a_parameter_change_changes_only_the_first_line() -> None:
    bigger = render_ensure_command(replace(PARAMS, size_gib=20))
    original = render_ensure_command(PARAMS)
    assert bigger != original
    assert bigger.split("\n", 1)[1] == original.split("\n", 1)[1]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": "Projects"}, "share name"),
        ({"name": "a b"}, "share name"),
        ({"name": "x" * 64}, "share name"),
        ({"mount_root": "shares"}, "share_mount_path"),
        ({"mount_root": "/"}, "share_mount_path"),
        ({"mount_root": "/sh ares"}, "share_mount_path"),
        ({"volume_id": "$(reboot)"}, "volume id"),
        ({"size_gib": 0}, "at least 1 GiB"),
        ({"device_timeout": 0}, "at least 1 second"),
        ({"clients": (AccessClient("rw", "10.0.0.1/8"),)}, "not an IP address or network"),
        ({"clients": (AccessClient("rw", "host.example.com"),)}, "not an IP address"),
    ],
)
def test_render_refuses_what_the_script_would_refuse(
    change: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        render_ensure_command(replace(PARAMS, **change))  # type: ignore[arg-type]


def test_the_script_cannot_end_the_here_document_early() -> None:
    lines = SCRIPT.read_text("utf-8").splitlines()
    assert SCRIPT_DELIMITER not in lines


def test_the_script_runs_main_on_its_last_line() -> None:
    # bash reads the script from stdin: nothing may run before the whole script is read.
    lines = [line for line in SCRIPT.read_text("utf-8").splitlines() if line.strip()]
    assert lines[-1] == 'main "$@"'
    assert lines[0] == "#!/bin/bash"


# --- the script itself, without a guest ---------------------------------------------------


def test_shellcheck_passes() -> None:
    result = subprocess.run(
        [str(SHELLCHECK), "--shell=bash", "--severity=style", str(SCRIPT)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_bash_parses_it() -> None:
    result = subprocess.run(
        ["bash", "-n", str(SCRIPT)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def run_script(*arguments: str) -> subprocess.CompletedProcess[str]:
    """Run share.sh as the command does (script on stdin), where only parsing can happen."""
    return subprocess.run(
        ["bash", "-s", "--", *arguments],
        input=SCRIPT.read_text("utf-8"),
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ((), "missing action"),
        (("format",), "unknown action 'format'"),
        (("ensure", "--name", "p"), "--volume-id is required"),
        (("ensure", "--name", "p", "--volume-id", "v", "--size-gib", "1"), "--protocol is"),
        (("ensure", "--name", "p", "--volume-id", "v", "--protocol", "nfs"), "--size-gib is"),
        (("delete",), "--name is required"),
        (("delete", "--name", "p", "--force"), "unknown argument '--force'"),
        (("delete", "--name"), "option --name needs a value"),
        (("delete", "--name", "../etc"), "invalid --name"),
        (("delete", "--name", "p", "--protocol", "smb"), "invalid --protocol 'smb'"),
        (("delete", "--name", "p", "--mount-root", "relative"), "invalid --mount-root"),
        (
            ("ensure", "--name", "p", "--volume-id", "v", "--protocol", "nfs", "--size-gib", "1",
             "--client", "rw:10.0.0.1;reboot"),
            "invalid --client",
        ),
        (
            ("ensure", "--name", "p", "--volume-id", "v", "--protocol", "nfs", "--size-gib", "1",
             "--fstype", "xfs"),
            "invalid --fstype 'xfs'",
        ),
    ],
)  # fmt: skip
def test_the_script_rejects_bad_arguments_with_usage(
    arguments: tuple[str, ...], message: str
) -> None:
    result = run_script(*arguments)
    assert result.returncode == 2
    assert message in result.stderr
    assert "usage: share.sh ensure" in result.stderr


def test_the_script_refuses_mixed_cifs_levels_before_touching_anything() -> None:
    result = run_script(
        "ensure", "--name", "p", "--volume-id", "v", "--protocol", "cifs", "--size-gib", "1",
        "--client", "rw:10.0.0.1", "--client", "ro:10.0.0.2",
    )  # fmt: skip
    assert result.returncode == 1
    assert "share p: ERROR: CIFS share with both rw and ro access rules" in result.stderr
