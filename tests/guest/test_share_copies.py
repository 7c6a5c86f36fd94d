"""A share made from a snapshot of another share, on the same server, on a real guest.

Cinder makes a volume from a snapshot by copying the source volume's blocks, filesystem UUID
included. Here the snapshot is what Cinder's is: a copy of the source volume's qcow2, taken
while the share is mounted and exported, frozen for the copy as the README says
(``fsfreeze -f``, copy, ``fsfreeze -u``). The copy is attached to the same guest as a new
volume and made a share with the command the Share component declares. The copy must keep
the data and never be formatted; the two filesystems must end up with two UUIDs, the
source's untouched, so that each ``UUID=`` line in /etc/fstab names one filesystem.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.guest.harness import Guest
from tests.guest.test_share_helpers import (
    HOST,
    GuestShare,
    Shares,
    assert_host_served,
    fs_created,
    put_data,
    root,
    rw,
    share_state,
)


def snapshot(guest: Guest, share: GuestShare, target: Path) -> None:
    """Copy the share's volume to ``target`` (qcow2) as a consistent snapshot of it."""
    path = f"{share.mount_root}/{share.name}"
    source = str(guest.volume_path(share.volume_id))
    root(guest, f"fsfreeze -f {path}")
    try:
        subprocess.run(
            ["qemu-img", "convert", "-U", "-O", "qcow2", source, str(target)],
            check=True,
            capture_output=True,
        )
    finally:
        root(guest, f"fsfreeze -u {path}")


def volume_from(guest: Guest, shares: Shares, snapshot_file: Path, size: str = "") -> str:
    """A new volume made from the snapshot (Cinder: volume create --snapshot, --size), attached."""
    volume_id = str(uuid.uuid4())
    path = guest.volume_path(volume_id)
    shutil.copyfile(snapshot_file, path)
    if size:
        subprocess.run(["qemu-img", "resize", "-q", str(path), size], check=True)
    guest.attach_volume(volume_id)  # the file exists: its data and size are kept
    shares.volumes.append(volume_id)
    return volume_id


def fstab_line(share: GuestShare, fs_uuid: str) -> str:
    return f"UUID={fs_uuid} {share.mount_root}/{share.name} {share.fstype} defaults,nofail 0 2"


def test_a_copy_on_the_same_server_gets_a_uuid_of_its_own_and_the_source_is_untouched(
    guest: Guest, shares: Shares, tmp_path: Path
) -> None:
    source = shares.params("original", shares.volume(), "NFS", (rw(HOST),))
    shares.ensure(source)
    data = put_data(guest, source)
    before = share_state(guest, source)
    made = fs_created(guest, source.volume_id)
    snapshot(guest, source, tmp_path / "snapshot.qcow2")

    # A bigger share from the snapshot (the share may be bigger than its source).
    copy = shares.params(
        "restored",
        volume_from(guest, shares, tmp_path / "snapshot.qcow2", "2G"),
        "NFS",
        (rw(HOST),),
        size_gib=2,
    )
    result = shares.ensure(copy)

    assert "making an" not in result.stderr, result.stderr  # never formatted
    assert "new UUID" in result.stderr, result.stderr
    original, restored = share_state(guest, source), share_state(guest, copy)
    assert original == before  # same UUID, mount, fstab line, exports, data
    assert restored.volume_uuid not in ("", before.volume_uuid), restored
    assert fs_created(guest, copy.volume_id) == made  # the source's filesystem, not a new one
    assert restored.data_sha256 == data
    assert restored.mounted == "volume"
    assert restored.fstab == [fstab_line(copy, restored.volume_uuid)]
    assert original.fstab == [fstab_line(source, before.volume_uuid)]
    assert restored.exported == [f"{HOST} rw"]
    assert 1900 < restored.size_mib <= 2048, restored  # grown to the new share's size
    assert original.size_mib <= 1024, original
    assert_host_served(guest, copy, data, "the copy, over NFS")
    assert_host_served(guest, source, data, "the source, over NFS")

    # Run again (pulumi up with nothing changed): neither UUID moves, nothing changes.
    for params, state in ((source, original), (copy, restored)):
        again = shares.ensure(params)
        assert "new UUID" not in again.stderr, again.stderr
        assert share_state(guest, params) == state

    # A second copy, its run killed right after the new UUID: the next run keeps that UUID.
    second_volume = volume_from(guest, shares, tmp_path / "snapshot.qcow2")
    second = shares.params("restored-again", second_volume)
    shares.ensure(second, stop_at="new-uuid")
    cut = share_state(guest, second)
    assert cut.volume_uuid not in ("", before.volume_uuid, restored.volume_uuid), cut
    assert cut.mounted == "", cut
    assert not cut.fstab, cut
    finished = shares.ensure(second)
    assert "new UUID" not in finished.stderr, finished.stderr
    done = share_state(guest, second)
    assert done.volume_uuid == cut.volume_uuid
    assert done.mounted == "volume", done
    assert done.data_sha256 == data, done
    assert share_state(guest, source) == before


def test_two_copies_of_one_snapshot_made_at_once_get_two_uuids(
    guest: Guest, shares: Shares, tmp_path: Path
) -> None:
    # The source share lives elsewhere: here, only its copies meet.
    source = shares.params("elsewhere", shares.volume(), "NFS", ())
    shares.ensure(source)
    data = put_data(guest, source)
    source_uuid = share_state(guest, source).volume_uuid
    snapshot(guest, source, tmp_path / "snapshot.qcow2")
    shares.delete(source)
    guest.detach_volume(source.volume_id)

    copies = [
        shares.params(name, volume_from(guest, shares, tmp_path / "snapshot.qcow2"), "NFS", ())
        for name in ("copy-a", "copy-b")
    ]
    with ThreadPoolExecutor(len(copies)) as pool:
        results = list(pool.map(shares.ensure, copies))

    states = [share_state(guest, copy) for copy in copies]
    uuids = {state.volume_uuid for state in states}
    assert len(uuids) == 2, [r.stderr for r in results]
    assert "" not in uuids, states
    # One of them at least moved off the source's UUID; both keep the data.
    assert sum("new UUID" in result.stderr for result in results) >= 1
    for copy, state in zip(copies, states, strict=True):
        assert state.mounted == "volume", state
        assert state.data_sha256 == data, state
        assert state.fstab == [fstab_line(copy, state.volume_uuid)]
    # fstab has one line per UUID.
    fstab = root(guest, "grep -o '^UUID=[^ ]*' /etc/fstab | sort | uniq -d").stdout
    assert fstab == "", fstab
    # Run again: nothing moves.
    for copy, state in zip(copies, states, strict=True):
        again = shares.ensure(copy)
        assert "new UUID" not in again.stderr, again.stderr
        assert share_state(guest, copy) == state
    assert source_uuid  # (read before the source left)


# The README's consistent snapshot, on the service instance: a timer armed before the freeze
# thaws the share whatever happens to the operator's shell; the trap thaws it at once.
README_FREEZE = (
    "sudo -n systemd-run --quiet --collect --on-active={seconds} --unit={unit}"
    " /sbin/fsfreeze --unfreeze {path} && sudo -n fsfreeze --freeze {path}"
)
README_THAW = "sudo -n fsfreeze --unfreeze {path}; sudo -n systemctl stop {unit}.timer"


def test_a_frozen_share_holds_writes_and_always_thaws(guest: Guest, shares: Shares) -> None:
    share = shares.params("frozen", shares.volume(), "NFS", ())
    shares.ensure(share)
    path, unit = "/shares/frozen", "thaw-frozen"
    write = f"echo written > {path}/during.txt"
    try:
        with ThreadPoolExecutor(1) as pool:
            # Nobody thaws it: the timer does.
            guest.ssh(README_FREEZE.format(seconds=40, unit=unit, path=path), check=True)
            frozen_at = time.monotonic()
            held = pool.submit(root, guest, write, check=False)
            time.sleep(15)
            assert not held.done(), "a write went through on a frozen share"
            result = held.result(timeout=300)
            assert result.returncode == 0, result.stderr
            assert time.monotonic() - frozen_at > 30  # released by the timer, not before
            assert root(guest, f"cat {path}/during.txt").stdout == "written\n"

            # The trap's thaw, long before the timer: the write goes through, the timer goes.
            guest.ssh(README_FREEZE.format(seconds=600, unit=unit, path=path), check=True)
            held = pool.submit(root, guest, f"{write}-again", check=False)
            time.sleep(10)
            assert not held.done(), "a write went through on a frozen share"
            guest.ssh(README_THAW.format(unit=unit, path=path), check=True)
            assert held.result(timeout=120).returncode == 0
            timer = guest.ssh(f"systemctl is-active {unit}.timer").stdout.strip()
            assert timer != "active", timer
    finally:
        guest.ssh(README_THAW.format(unit=unit, path=path))  # (a no-op when thawed)
