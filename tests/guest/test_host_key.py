"""The pinned SSH host key on a guest booted the way Nova boots the service instance.

The session guest got its host key from the program's own user data
(``host_keys.cloud_config``, byte for byte, on a NoCloud seed that cloud-init applies before
sshd starts). Here the program's two SSH clients are pointed at it: ``ssh_ready.sh``, which
the share commands wait for, and OpenSSH pinned to the key as the fleet's verify dials
(``fleet/openssh.py``), running a rendered share command. A wrong pin, or the guest
answering with another key, is refused before anything runs on it.
"""

from __future__ import annotations

import shlex
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dhss_components.fleet.openssh import OpenSsh, SshTarget
from dhss_components.host_keys import cloud_config
from dhss_components.share_script import render_ensure_command
from tests.guest.harness import (
    HOST_ADDRESS_SEEN_BY_GUEST,
    SERVICE_INSTANCE_USER,
    Guest,
    HostKey,
    generate_host_key,
)
from tests.guest.test_share_helpers import Shares, root, rw
from tests.test_ssh_ready import run as run_ssh_ready

# Every host key type OpenSSH offers (DSA has been off by default since OpenSSH 7.0).
ALL_KEY_TYPES = ("rsa", "ecdsa", "ed25519", "ecdsa-sk", "ed25519-sk")
# The guest is up, so the wait's timeout must never be what ends it. A refusal took 9 to 91 s
# here (a load average of 26 to 33 on 2 cores; one scan of the emulated guest then often
# brings no key), against 1 s from a real sshd (tests/test_ssh_ready.py).
READY_TIMEOUT = 600


def offered_host_keys(guest: Guest) -> list[str]:
    """Every host key the guest's sshd offers, of every type, as "TYPE BASE64".

    One scan per type, each asked twice if it brings nothing: a scan of several types at
    once sometimes brought no key at all from the emulated guest on a busy host.
    """
    keys = set()
    for key_type in ALL_KEY_TYPES:
        for _ in range(2):
            scan = subprocess.run(
                ["ssh-keyscan", "-T", "30", "-t", key_type, "-p", str(guest.ssh_port),
                 "127.0.0.1"],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )  # fmt: skip
            found = {" ".join(line.split()[1:3]) for line in scan.stdout.splitlines() if line}
            keys |= found
            if found:
                break
    return sorted(keys)


def pinned_ssh(guest: Guest, host_key: str) -> OpenSsh:
    """OpenSSH as the fleet dials the instance: only ``host_key`` in its known_hosts."""
    return OpenSsh(
        SshTarget(
            host="127.0.0.1",
            port=guest.ssh_port,
            user=SERVICE_INSTANCE_USER,
            host_key=host_key,
            private_key=guest.image.ssh_key.read_text(),
        )
    )


def marker_path() -> str:
    return f"/tmp/dhss-ran-{uuid.uuid4().hex}"


def assert_refused_and_nothing_ran(guest: Guest, pinned: str, offered: list[str]) -> None:
    """ssh_ready.sh refuses at once naming both keys; OpenSSH refuses; no command ran."""
    started = time.monotonic()
    ready = run_ssh_ready("127.0.0.1", READY_TIMEOUT, pinned, guest.ssh_port)
    elapsed = time.monotonic() - started
    assert ready.returncode == 1, ready.stderr
    assert "host key mismatch" in ready.stderr
    assert pinned in ready.stderr
    for key in offered:
        assert key in ready.stderr
    assert elapsed < READY_TIMEOUT / 2, f"refused after {elapsed:.0f} s: waited, not refused"

    marker = marker_path()
    with pinned_ssh(guest, pinned) as ssh:
        dialed = ssh.run(f"touch {marker}")
    assert dialed.exit_status == 255, dialed
    assert "Host key verification failed" in dialed.stderr
    assert guest.ssh(f"test -e {marker}").returncode == 1, f"{marker} was made: a command ran"


def test_the_guest_offers_exactly_the_key_of_its_user_data(guest: Guest) -> None:
    assert offered_host_keys(guest) == [guest.host_key.public]
    host_keys = root(guest, "ls /etc/ssh/ | grep ssh_host_").stdout.split()
    assert host_keys == ["ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"]
    # cloud-init kept the user data it applied: the program's cloud-config, byte for byte.
    user_data = root(guest, "cat /var/lib/cloud/instance/user-data.txt").stdout
    key = guest.host_key
    assert user_data == cloud_config(key.private_key_openssh, key.public_key_openssh)


def test_the_share_commands_get_through_with_the_pinned_key(guest: Guest, shares: Shares) -> None:
    ready = run_ssh_ready("127.0.0.1", READY_TIMEOUT, guest.host_key.public, guest.ssh_port)
    assert ready.returncode == 0, ready.stderr
    assert "offers the pinned host key" in ready.stderr

    volume_id = shares.volume()
    share = shares.params("pinned-key", volume_id, "NFS", (rw(HOST_ADDRESS_SEEN_BY_GUEST),))
    shares.made[share.name] = share  # deleted after the test
    with pinned_ssh(guest, guest.host_key.public) as ssh:
        created = ssh.run(render_ensure_command(share, volume_id))
        again = ssh.run(render_ensure_command(share, volume_id))  # what an update runs
    assert created.exit_status == 0, created
    assert again.exit_status == 0, again
    assert "share pinned-key" in created.stderr
    assert "/shares/pinned-key" in root(guest, "exportfs -v").stdout


def test_a_wrong_pinned_key_is_refused_before_anything_runs(guest: Guest, tmp_path: Path) -> None:
    other = generate_host_key(tmp_path / "other_host_key")
    assert_refused_and_nothing_ran(guest, other.public, [guest.host_key.public])


@pytest.fixture
def host_keys_restored(guest: Guest) -> Iterator[None]:
    """Give the guest its own host key back after a test swapped it, and check it did."""
    yield
    install_host_keys(guest, [guest.host_key])
    assert offered_host_keys(guest) == [guest.host_key.public]


def install_host_keys(guest: Guest, keys: list[HostKey] | list[Path]) -> None:
    """Make these the guest's only host keys and restart sshd (sessions open stay open)."""
    script = ["rm -f /etc/ssh/ssh_host_*"]
    for key in keys:
        if isinstance(key, HostKey):
            private, public, name = key.private_key_openssh, key.public_key_openssh, "ed25519"
        else:
            private, public = key.read_text(), Path(f"{key}.pub").read_text()
            name = key.name.removeprefix("host_")
        for path, text, mode in (
            (f"/etc/ssh/ssh_host_{name}_key", private, "600"),
            (f"/etc/ssh/ssh_host_{name}_key.pub", public, "644"),
        ):
            script.append(
                f"printf %s {shlex.quote(text)} > {path} && chmod {mode} {path}",
            )
    script.append("systemctl restart ssh")
    root(guest, "\n".join(script))


def keygen(path: Path, key_type: str) -> Path:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", key_type, "-N", "", "-C", "", "-f", str(path)], check=True
    )
    return path


def test_the_guest_answering_with_another_key_is_refused(
    guest: Guest, tmp_path: Path, host_keys_restored: None
) -> None:
    # Another machine on the instance's address, as sshd sees it: another ed25519 key.
    other = keygen(tmp_path / "host_ed25519", "ed25519")
    install_host_keys(guest, [other])
    offered = offered_host_keys(guest)
    assert offered == [" ".join(Path(f"{other}.pub").read_text().split()[:2])]
    assert_refused_and_nothing_ran(guest, guest.host_key.public, offered)


def test_the_guest_offering_only_other_key_types_is_refused_at_once(
    guest: Guest, tmp_path: Path, host_keys_restored: None
) -> None:
    # No ed25519 key at all: ssh_ready.sh once asked only for the pinned key's type, saw
    # nothing and waited out its timeout.
    install_host_keys(
        guest, [keygen(tmp_path / "host_rsa", "rsa"), keygen(tmp_path / "host_ecdsa", "ecdsa")]
    )
    offered = offered_host_keys(guest)
    assert [key.split()[0] for key in offered] == ["ecdsa-sha2-nistp256", "ssh-rsa"]
    assert_refused_and_nothing_ran(guest, guest.host_key.public, offered)
