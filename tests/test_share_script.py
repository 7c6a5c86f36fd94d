"""share_script: Manila's NFS client forms, and the commands that carry share.sh (no guest)."""

from __future__ import annotations

import ipaddress
import shlex
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from dhss_components import script_heredoc
from dhss_components.config import Backend
from dhss_components.share_script import (
    SCRIPT_DELIMITER,
    SCRIPT_PATH,
    AccessClient,
    ShareScriptParams,
    render_check_command,
    render_delete_command,
    render_ensure_command,
)

SCRIPT = SCRIPT_PATH
SHELLCHECK = Path(sys.executable).with_name("shellcheck")
VOLUME_ID = "5f1c1bd3-7d2a-4c11-9a53-4c1f3a0c9e21"


def client(level: str, address: str) -> AccessClient:
    return AccessClient(level, ipaddress.IPv4Network(address))  # type: ignore[arg-type]


PARAMS = ShareScriptParams(
    name="projects",
    protocol="NFS",
    size_gib=10,
    clients=(
        client("rw", "10.0.0.0/24"),
        client("ro", "10.0.1.7/32"),
        client("ro", "0.0.0.0/0"),
    ),
    mount_root="/shares",
    fstype="ext4",
    device_timeout=120,
)


def first_line_arguments(command: str) -> list[str]:
    """The words of the command line, before the here-document (what sudo receives)."""
    line = command.split("\n", 1)[0]
    words = shlex.split(line)
    assert words[-1] == f"<<{SCRIPT_DELIMITER}", line
    return words[:-1]


# --- rendered commands --------------------------------------------------------------------


def carried(path: Path) -> str:
    """The file's lines but its comment lines (the first, #!, stays): what a command carries."""
    lines = path.read_text("utf-8").splitlines(keepends=True)
    return "".join(lines[:1] + [line for line in lines[1:] if not line.lstrip().startswith("#")])


def test_ensure_command_carries_the_script_byte_for_byte() -> None:
    command = render_ensure_command(PARAMS, VOLUME_ID)
    script = carried(SCRIPT)
    first, rest = command.split("\n", 1)
    assert first.endswith(f" <<'{SCRIPT_DELIMITER}'")
    assert rest == f"{script}{SCRIPT_DELIMITER}\n"


def test_ensure_command_arguments() -> None:
    assert first_line_arguments(render_ensure_command(PARAMS, VOLUME_ID)) == [
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
        "--client", "ro:*",
    ]  # fmt: skip


def test_check_command_is_ensure_with_another_action() -> None:
    ensure = first_line_arguments(render_ensure_command(PARAMS, VOLUME_ID))
    check = first_line_arguments(render_check_command(PARAMS, VOLUME_ID))
    at = ensure.index("ensure")
    assert check == [*ensure[:at], "check", *ensure[at + 1 :]]
    assert render_check_command(PARAMS, VOLUME_ID).endswith(
        render_ensure_command(PARAMS, VOLUME_ID).split("\n", 1)[1]
    )


def test_check_help_says_its_threshold_and_exit_statuses() -> None:
    result = run_script("check", "--help")
    assert result.returncode == 0
    assert "room left: 95% or more of the blocks or of the\n        inodes used" in result.stderr
    assert "Exit status 0 as declared, 3 drift, 1 it cannot tell" in result.stderr


def test_cifs_clients_are_written_as_samba_takes_them() -> None:
    params = replace(
        PARAMS,
        protocol="CIFS",
        clients=(
            client("rw", "10.0.1.7/32"),
            client("rw", "10.1.0.0/16"),
            client("rw", "0.0.0.0/0"),
        ),
        mount_root="/srv/shares",
        fstype="ext3",
    )
    arguments = first_line_arguments(render_ensure_command(params, VOLUME_ID))
    assert arguments[arguments.index("--protocol") + 1] == "cifs"
    assert arguments[arguments.index("--mount-root") + 1] == "/srv/shares"
    assert arguments[arguments.index("--fstype") + 1] == "ext3"
    clients = [arguments[i + 1] for i, word in enumerate(arguments) if word == "--client"]
    assert clients == ["rw:10.0.1.7", "rw:10.1.0.0/16", "rw:0.0.0.0/0"]


def test_no_clients_means_no_client_arguments() -> None:
    arguments = first_line_arguments(render_ensure_command(replace(PARAMS, clients=()), VOLUME_ID))
    assert "--client" not in arguments


def test_delete_command() -> None:
    command = render_delete_command(PARAMS)
    assert first_line_arguments(command) == [
        "sudo", "-n", "bash", "-s", "--", "delete",
        "--name", "projects", "--protocol", "nfs", "--mount-root", "/shares",
    ]  # fmt: skip
    assert command.split("\n", 1)[1] == f"{carried(SCRIPT)}{SCRIPT_DELIMITER}\n"


def test_a_script_change_changes_the_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    before = render_ensure_command(PARAMS, VOLUME_ID), render_delete_command(PARAMS)
    changed = tmp_path / "share.sh"
    changed.write_text(SCRIPT.read_text("utf-8") + "true  # one more line\n")
    monkeypatch.setattr("dhss_components.share_script.SCRIPT_PATH", changed)
    after = render_ensure_command(PARAMS, VOLUME_ID), render_delete_command(PARAMS)
    assert after[0] != before[0]
    assert after[1] != before[1]
    assert carried(changed) in after[0]
    assert after[0].endswith("true  # one more line\nDHSS_SHARE_SCRIPT\n")


def test_a_parameter_change_changes_only_the_first_line() -> None:
    bigger = render_ensure_command(replace(PARAMS, size_gib=20), VOLUME_ID)
    original = render_ensure_command(PARAMS, VOLUME_ID)
    assert bigger != original
    assert bigger.split("\n", 1)[1] == original.split("\n", 1)[1]


@pytest.mark.parametrize("text", ["no newline at the end", "a\nDHSS_SHARE_SCRIPT\nb\n"])
def test_a_script_that_cannot_be_carried_is_refused(tmp_path: Path, text: str) -> None:
    script = tmp_path / f"bad-{len(text)}.sh"
    script.write_text(text)
    with pytest.raises(ValueError, match="must end with a newline and have no line"):
        script_heredoc.heredoc_command(["bash", "-s"], script, SCRIPT_DELIMITER)


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
        (("check", "--name", "p"), "--volume-id is required"),
        (("check", "--name", "p", "--volume-id", "v", "--protocol", "nfs"), "--size-gib is"),
        (
            ("check", "--name", "p", "--volume-id", "v", "--protocol", "nfs", "--size-gib", "1",
             "--client", "rw:10.0.0.1;reboot"),
            "invalid --client",
        ),
        (("delete",), "--name is required"),
        (("delete", "--name", "p", "--force"), "unknown argument '--force'"),
        (("delete", "--name"), "option --name needs a value"),
        (("delete", "--name", "../etc"), "invalid --name"),
        (("delete", "--name", "p", "--protocol", "smb"), "invalid --protocol 'smb'"),
        (("delete", "--name", "p", "--mount-root", "relative"), "invalid --mount-root"),
        (("delete", "--name", "p", "--mount-root", "/srv//shares"), "give a normalised path"),
        (("delete", "--name", "p", "--mount-root", "/srv/./shares"), "give a normalised path"),
        (("delete", "--name", "p", "--mount-root", "/srv/x/../shares/"), "give a normalised"),
        (("delete", "--name", "p", "--mount-root", "/.."), "give a normalised path"),
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


def test_every_carried_script_fits_in_a_pipe() -> None:
    # Bigger, bash spools the here-document to a temporary file, and on a full root disk no
    # share command could start (tests/guest/test_share_faults.py fills the disk).
    from dhss_components.host_port_script import SCRIPT_PATH as HOST_PORT
    from dhss_components.script_heredoc import PIPE_CAPACITY, script_text
    from dhss_components.ssh_ready_script import SCRIPT_PATH as SSH_READY

    for path in (SCRIPT_PATH, HOST_PORT, SSH_READY):
        carried = script_text(path, "END").encode()
        assert len(carried) < PIPE_CAPACITY, (path.name, len(carried))
        assert carried.startswith(b"#!/bin/bash\n")
        assert b"\n#" not in carried
        assert b"\n    #" not in carried


def test_by_hand_the_script_defaults_to_the_programs_defaults() -> None:
    # The commands always pass these; an operator running share.sh by hand (a repair, a
    # check) gets what the program would make only if the script's own defaults agree.
    defaults = subprocess.run(
        [
            "bash",
            "-c",
            'eval "$(sed -n "/^MOUNT_ROOT=/p; /^FSTYPE=/p; /^DEVICE_TIMEOUT=/p" "$1")"; '
            'echo "$MOUNT_ROOT $FSTYPE $DEVICE_TIMEOUT"',
            "bash",
            str(SCRIPT),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    backend = Backend.model_fields
    assert defaults == [
        backend["share_mount_path"].default,
        backend["share_volume_fstype"].default,
        str(backend["max_time_to_attach"].default),
    ]
