"""A lost service instance, rebuilt: a new server with the same volumes serves what the old one did.

The first guest serves two shares, one NFS and one CIFS, made by the commands the program
declares (taken from a run of the program under the simulated cloud, byte for byte). It is
then lost: qemu quits under it, as when Nova deletes a server or its host dies, so nothing
unmounts, unexports or runs a delete on it. A second guest boots from the same image with a
fresh root disk (no fstab lines, no exports, no Samba registry), and the same volume files are
attached to it. What `fleet rebuild` (or `pulumi refresh && pulumi up`) then runs on it is
each share command's replacement: the old command's delete (delete_before_replace), which
finds nothing to undo, then the create. The shares must come back as they were: the same
filesystems (UUIDs, mkfs time, data), mounted, in fstab, exported to the same clients; and
nothing formatted.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from tests.guest.harness import Guest, GuestError, GuestImage
from tests.guest.test_program_commands import declared_commands
from tests.guest.test_share_helpers import (
    Shares,
    ShareState,
    assert_host_served,
    fs_created,
    look,
    output,
    put_data,
    share_state,
)

PROTOCOLS = {"declared-nfs": "NFS", "declared-cifs": "CIFS"}


def lose(server: Guest) -> None:
    """The server is gone at once: qemu quits, the guest gets no shutdown."""
    with contextlib.suppress(GuestError, OSError):
        server.qmp.execute("quit", timeout=10)
    server.process.wait(timeout=60)
    server.shutdown()  # only closes what the harness holds: the guest is already gone


def test_a_new_server_with_the_same_volumes_serves_what_the_lost_one_served(
    guest_image: GuestImage, tmp_path: Path
) -> None:
    commands = declared_commands()
    assert set(commands) == set(PROTOCOLS)
    workdir = tmp_path / "server"  # the volumes' qcow2 files live here, for both servers
    data: dict[str, str] = {}
    before: dict[str, ShareState] = {}
    made: dict[str, str] = {}

    first = Guest.boot(guest_image, workdir)
    try:
        shares = {
            name: Shares(first).params(name, command["volume_id"], PROTOCOLS[name])
            for name, command in commands.items()
        }
        for command in commands.values():
            first.attach_volume(command["volume_id"], "1G")
            created = first.ssh(command["create"])
            assert created.returncode == 0, output(created)
        for name, share in shares.items():
            data[name] = put_data(first, share)
            before[name] = share_state(first, share)
            made[name] = fs_created(first, share.volume_id)
            assert before[name].mounted == "volume", before[name]
            assert before[name].exported or before[name].samba, before[name]
            assert_host_served(first, share, data[name], f"{name} on the first server")
    finally:
        lose(first)

    second = Guest.boot(guest_image, workdir)
    try:
        fresh = look(second)
        assert not fresh.mounts, fresh  # a fresh root disk: nothing of the lost server's
        assert not fresh.fstab, fresh
        assert not fresh.exportfs, fresh
        assert not fresh.samba_shares, fresh
        for command in commands.values():
            second.attach_volume(command["volume_id"])  # the file exists: the same volume
        for command in commands.values():
            deleted = second.ssh(command["delete"])  # the replaced command's delete
            assert deleted.returncode == 0, output(deleted)
            created = second.ssh(command["create"])
            assert created.returncode == 0, output(created)
            assert "making an" not in created.stderr, created.stderr  # never formatted
            assert "new UUID" not in created.stderr, created.stderr  # its own filesystem
        for name, share in shares.items():
            after = share_state(second, share)
            assert after == before[name], f"{name}: before {before[name]}, after {after}"
            assert fs_created(second, share.volume_id) == made[name]
            assert_host_served(second, share, data[name], f"{name} on the new server")
        # Run again: nothing changes.
        for name, command in commands.items():
            again = second.ssh(command["create"])
            assert again.returncode == 0, output(again)
            assert share_state(second, shares[name]) == before[name]
    finally:
        second.shutdown()
