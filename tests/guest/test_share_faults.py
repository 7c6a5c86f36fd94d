"""Faults, injected for real: the share script keeps the data and says what went wrong.

Read errors on the volume (qemu's blkdebug driver under the disk), a share in use when it is
deleted, exportfs unable to write its table, a stopped NFS or Samba server, an extend that
stalls or never comes, a full root disk, and a volume detached under its export. Each gives
a clear error and a state that the same command, run again once the cause is gone, repairs;
no fault ever formats, loses or serves anything it should not.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest

from tests.guest.harness import Guest, volume_sha256
from tests.guest.test_share_helpers import (
    CLIENT_TIMEOUT,
    HOST,
    NOT_THE_HOST,
    WITHDRAW,
    Shares,
    ShareState,
    assert_host_refused_by_the_rules,
    assert_host_served,
    assert_nfs_refused,
    by_id,
    ensure_command,
    nfs_list,
    output,
    put_data,
    root,
    rw,
    share_state,
    smb_read,
)

MIB = 1 << 20
GIB = 1 << 30


@contextlib.contextmanager
def fault(guest: Guest, inject: str, repair: str) -> Iterator[None]:
    """A fault on the guest (``inject``, as root) for the ``with`` block; ``repair`` after."""
    root(guest, inject)
    try:
        yield
    finally:
        root(guest, repair)


# --- never format on a read error ----------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "bad_byte", "region"),
    [
        ("start", 1024, 0),  # the ext4 superblock: blkid cannot read it
        ("end", GIB - 512, GIB - MIB),  # the last sector, where RAID and GPT signatures live
    ],
)
def test_read_errors_during_the_probe_never_format_a_volume_with_data(
    guest: Guest, shares: Shares, where: str, bad_byte: int, region: int
) -> None:
    volume = shares.volume("1G")
    share = shares.params(f"probed-{where}", volume, "NFS", (rw(HOST),))
    shares.ensure(share)
    sha256 = put_data(guest, share)
    shares.delete(share)
    if where == "end":  # (an ext4 leaves it unwritten: qemu would not even read the file)
        root(guest, f"printf end | dd of={by_id(volume)} bs=512 seek={bad_byte // 512} "
             "conv=notrunc,fsync status=none")  # fmt: skip
    guest.detach_volume(volume)
    before = volume_sha256(guest.volume_path(volume))
    # Every read of that byte fails, as on a disk with a bad sector or a flaky storage path.
    # blkid then finds nothing, exactly as on a blank volume (and exits 2 for both).
    guest.attach_volume(volume, read_errors_at=[bad_byte])
    assert root(guest, f"blkid -p {by_id(volume)}", check=False).returncode == 2

    refused = shares.ensure(share, ok=False)

    assert refused.returncode == 1, output(refused)
    assert (
        f"ERROR: could not read volume {volume} ({by_id(volume)}) at byte {region} to check"
        " that it is blank, so the probe failed" in refused.stderr
    ), output(refused)
    assert "Input/output error" in refused.stderr
    assert "Nothing was changed" in refused.stderr
    assert "mkfs" not in refused.stderr
    assert "making" not in refused.stderr
    state = share_state(guest, share)
    assert (state.mounted, state.fstab, state.exported) == ("", [], []), state
    guest.detach_volume(volume)
    assert volume_sha256(guest.volume_path(volume)) == before, "the volume was written"
    # The fault gone (a healthy attachment), the same command uses the filesystem as it is.
    guest.attach_volume(volume)
    again = shares.ensure(share)
    assert "not formatted" in again.stderr
    assert share_state(guest, share).data_sha256 == sha256


# --- a delete never detaches a filesystem in use ------------------------------------------


def test_delete_refuses_while_a_process_or_an_nfs_client_uses_the_share(
    guest: Guest, shares: Shares
) -> None:
    # The guest's own NFS client comes from 127.0.0.1.
    share = shares.params("busy-nfs", shares.volume(), "NFS", (rw(HOST), rw("127.0.0.1")))
    shares.ensure(share)
    sha256 = put_data(guest, share)
    path = "/shares/busy-nfs"
    holders = f"""
        systemd-run --quiet --unit=dhss-test-local --working-directory={path} sleep 3600
        mkdir -p /mnt/busy-client
        mount -t nfs4 -o soft,timeo=50,retrans=1 127.0.0.1:{path} /mnt/busy-client
        systemd-run --quiet --unit=dhss-test-client \
            sh -c 'exec 3</mnt/busy-client/data.bin; exec sleep 3600'
        sleep 1
    """
    gone = "systemctl stop dhss-test-local dhss-test-client || true; umount -f /mnt/busy-client"
    with fault(guest, holders, f"{gone} || true"):
        refused = shares.delete(share, ok=False)

        assert refused.returncode == 1, output(refused)
        assert f"refusing to delete the share: {path} is in use by:" in refused.stderr
        assert re.search(
            rf"process \d+ \(sleep, user root\): working directory {path}\n", refused.stderr
        ), output(refused)
        # The client's open file is on the server's filesystem (nfsd holds it), not on the
        # guest's NFS mount, which is another filesystem.
        assert re.search(r"NFS client 127\.0\.0\.1:\d+ \(Linux NFSv4.*\): 1 open files or locks",
                         refused.stderr), output(refused)  # fmt: skip
        assert f"nothing was changed: {path} stays mounted and exported" in refused.stderr
        assert "umount -l" not in refused.stderr.replace("(umount -l)", "")
        state = share_state(guest, share)
        assert state.mounted == "volume", state
        assert f"{HOST} rw" in state.exported, state
        assert state.fstab, state
        assert_host_served(guest, share, sha256, "while the delete is refused")

        root(guest, "systemctl stop dhss-test-local")
        still = shares.delete(share, ok=False)
        assert not re.search(r"- process \d+", still.stderr), output(still)
        assert "NFS client 127.0.0.1" in still.stderr, output(still)

        root(guest, gone)  # the client closes the file and unmounts
        shares.delete(share)

    state = share_state(guest, share)
    assert (state.mounted, state.exported, state.fstab) == ("", [], []), state
    assert state.data_sha256 == sha256


def test_delete_refuses_while_a_samba_client_is_connected(guest: Guest, shares: Shares) -> None:
    share = shares.params("busy-cifs", shares.volume(), "CIFS", (rw(HOST),))
    shares.ensure(share)
    sha256 = put_data(guest, share)
    argv = ["smbclient", "-N", "-p", str(guest.smb_port), "//127.0.0.1/busy-cifs"]
    with subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    ) as client:
        assert client.stdin is not None
        assert client.stdout is not None
        client.stdin.write(b"ls\n")
        client.stdin.flush()
        # Connected once smbd lists the connection (smbclient buffers its output in a pipe).
        root(guest, f"""
            end=$((SECONDS + {CLIENT_TIMEOUT}))
            until smbstatus -S 2>/dev/null | grep -q '^busy-cifs '; do
                [ $SECONDS -lt $end ] || exit 1; sleep 1
            done""")  # fmt: skip

        refused = shares.delete(share, ok=False)

        assert refused.returncode == 1, output(refused)
        assert re.search(
            r"Samba client 10\.0\.2\.2 connected to share busy-cifs \(smbd process \d+\)",
            refused.stderr,
        ), output(refused)
        assert "nothing was changed: /shares/busy-cifs stays mounted and exported" in (
            refused.stderr
        )
        state = share_state(guest, share)
        assert state.mounted == "volume", state
        assert state.samba["hosts allow"] == HOST, state
        assert_host_served(guest, share, sha256, "while the delete is refused")
        client.stdin.close()  # the client disconnects
        client.wait(timeout=CLIENT_TIMEOUT)

    shares.delete(share)
    state = share_state(guest, share)
    assert (state.mounted, state.samba, state.fstab) == ("", {}, []), state
    assert state.data_sha256 == sha256


# --- NFS and Samba servers that fail -------------------------------------------------------


def test_exportfs_failing_during_a_rule_change_and_a_delete_converges(
    guest: Guest, shares: Shares
) -> None:
    share = shares.params("exportfs", shares.volume(), "NFS", (rw(HOST), rw("10.0.3.1")))
    shares.ensure(share)
    sha256 = put_data(guest, share)
    changed = replace(share, clients=(rw("10.0.3.1"),))
    # exportfs cannot write its table: /var/lib/nfs read-only, as on a failing root disk.
    read_only = ("mount --bind -o ro /var/lib/nfs /var/lib/nfs", "umount /var/lib/nfs")

    with fault(guest, *read_only):
        failed = shares.ensure(changed, ok=False)
    assert failed.returncode == 1, output(failed)
    assert "ERROR: exportfs -ra failed: exportfs: could not open /var/lib/nfs/.etab.lock" in (
        failed.stderr
    ), output(failed)
    assert "Read-only file system" in failed.stderr
    share_state(guest, changed).assert_nothing_points_at_an_unmounted_filesystem("rule change")

    shares.ensure(changed)

    state = share_state(guest, changed)
    assert state.exported == ["10.0.3.1 rw"], state
    assert_host_refused_by_the_rules(guest, changed, state, "after the rule change")

    with fault(guest, *read_only):
        failed = shares.delete(changed, ok=False)
    assert "ERROR: exportfs -ra failed" in failed.stderr, output(failed)
    state = share_state(guest, changed)
    assert state.mounted == "volume", f"unmounted while still exported: {state}"
    state.assert_nothing_points_at_an_unmounted_filesystem("delete")

    shares.delete(changed)

    state = share_state(guest, changed)
    assert (state.mounted, state.exported, state.fstab) == ("", [], []), state
    assert state.data_sha256 == sha256


def test_a_stopped_nfs_server_fails_clearly_and_converges(guest: Guest, shares: Shares) -> None:
    share = shares.params("nfs-stopped", shares.volume(), "NFS", (rw(NOT_THE_HOST),))
    other = shares.params("nfs-stopped-2", shares.volume(), "NFS", (rw(HOST),))
    shares.ensure(share)
    shares.ensure(other)
    sha256 = put_data(guest, share)
    stopped = (
        "systemctl mask --runtime --quiet nfs-server && systemctl stop nfs-server",
        "systemctl unmask --runtime --quiet nfs-server",
    )
    try:
        with fault(guest, *stopped):
            failed = shares.ensure(replace(share, clients=(rw(HOST),)), ok=False)
            deleted = shares.delete(other, ok=False)  # needs no server
        assert failed.returncode == 1, output(failed)
        assert "ERROR: could not start nfs-kernel-server" in failed.stderr, output(failed)
        assert deleted.returncode == 0, output(deleted)
        shares.made.pop(other.name)
        share_state(guest, share).assert_nothing_points_at_an_unmounted_filesystem("stopped")

        again = shares.ensure(replace(share, clients=(rw(HOST),)))
    finally:
        root(guest, "systemctl start nfs-server")

    assert "nfs-kernel-server is not running: starting it" in again.stderr
    served = replace(share, clients=(rw(HOST),))
    assert_host_served(guest, served, sha256, "after the restart")
    # Just after a restart nfsd can hold on to what it kept for a client that is done, for
    # some seconds, where nothing shows it; the delete waits for it rather than fail.
    shares.delete(served)


def test_a_stopped_samba_server_fails_clearly_and_converges(guest: Guest, shares: Shares) -> None:
    share = shares.params("smb-stopped", shares.volume(), "CIFS", (rw(HOST),))
    shares.ensure(share)
    sha256 = put_data(guest, share)
    changed = replace(share, clients=(rw(NOT_THE_HOST),))
    stopped = (
        "systemctl mask --runtime --quiet smbd && systemctl stop smbd",
        "systemctl unmask --runtime --quiet smbd",
    )
    try:
        with fault(guest, *stopped):
            failed = shares.ensure(changed, ok=False)
        assert failed.returncode == 1, output(failed)
        assert "ERROR: could not start smbd" in failed.stderr, output(failed)
        state = share_state(guest, changed)
        state.assert_nothing_points_at_an_unmounted_filesystem("smbd stopped")
        assert state.samba["hosts allow"] == NOT_THE_HOST, state  # cut before anything else

        again = shares.ensure(changed)
    finally:
        root(guest, "systemctl start smbd")

    assert "smbd is not running: starting it" in again.stderr
    state = share_state(guest, changed)
    assert_host_refused_by_the_rules(guest, changed, state, "after the restart")
    shares.ensure(share)
    assert_host_served(guest, share, sha256, "after the restart")


# --- an extend that stalls or fails never delays a rule ------------------------------------


@pytest.mark.parametrize("protocol", ["NFS", "CIFS"])
def test_a_stalled_or_failed_extend_never_delays_a_removed_clients_loss_of_access(
    guest: Guest, shares: Shares, protocol: str
) -> None:
    volume = shares.volume("1G")
    share = shares.params(f"extend-{protocol.lower()}", volume, protocol, (rw(HOST),))
    shares.ensure(share)
    sha256 = put_data(guest, share)
    # The host's rule removed together with a bigger size, and the extend never reaches the
    # guest: the command fails (after its bound), the host is out all the same.
    changed = replace(share, clients=(rw(NOT_THE_HOST),), size_gib=2, device_timeout=3)

    failed = shares.ensure(changed, ok=False)

    assert failed.returncode == 1, output(failed)
    assert f"volume {volume} ({by_id(volume)}) is 1073741824 bytes, smaller than the share's" in (
        failed.stderr
    ), output(failed)
    state = share_state(guest, changed)
    assert_host_refused_by_the_rules(guest, changed, state, "with the extend failed")
    assert state.data_sha256 == sha256

    # Again, while the extend is still on its way: the host is out before it comes.
    shares.ensure(share)  # the host back in (1 GiB asked, 1 GiB there)
    slow = replace(changed, device_timeout=600)
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(guest.ssh, ensure_command(slow), timeout=900)
        deadline = time.monotonic() + 300
        state = share_state(guest, slow)
        while not _has_only_the_new_rule(state, protocol):
            assert time.monotonic() < deadline, f"the rules did not change: {state}"
            time.sleep(1)
            state = share_state(guest, slow)
        assert not running.done(), output(running.result())  # still waiting for the extend
        assert_host_refused_by_the_rules(guest, slow, state, "while the extend is pending")
        guest.resize_volume(volume, "2G")
        done = running.result()
    assert done.returncode == 0, output(done)
    assert "growing the filesystem" in done.stderr
    assert share_state(guest, slow).size_mib > 1900  # (2 GiB less the metadata)


def _has_only_the_new_rule(state: ShareState, protocol: str) -> bool:
    if protocol == "NFS":
        return state.exported == [f"{NOT_THE_HOST} rw"]
    return state.samba.get("hosts allow") == NOT_THE_HOST


# --- a full root disk ----------------------------------------------------------------------

# Fill the root filesystem to the last block, root's reserve included (a disk fills as root
# writes logs); again before each step, since a step that fails may free a block.
FILL_ROOT = """
    free=$(stat -f -c '%f * %S' /); free=$((free))
    if [ "$free" -gt 16777216 ]; then
        fallocate -l $((free - 8388608)) /dhss-test-fill.big || true
    fi
    i=0
    for size in 1048576 65536 4096; do
        while fallocate -l $size /dhss-test-fill.$size.$i 2>/dev/null; do i=$((i + 1)); done
    done
"""
FREE_ROOT = "rm -f /dhss-test-fill.*"


def test_a_full_root_disk_fails_clearly_and_converges(guest: Guest, shares: Shares) -> None:
    share = shares.params("disk-full", shares.volume(), "NFS", (rw(HOST),))
    shares.ensure(share)
    sha256 = put_data(guest, share)
    changed = replace(share, clients=(rw(NOT_THE_HOST),))
    new = shares.params("disk-full-new", shares.volume(), "NFS", (rw(HOST),))
    try:
        root(guest, FILL_ROOT)
        not_made = shares.ensure(new, ok=False)
        root(guest, FILL_ROOT)
        unchanged = shares.ensure(share, ok=False)
        root(guest, FILL_ROOT)
        failed = shares.ensure(changed, ok=False)
    finally:
        root(guest, FREE_ROOT)

    # Nothing to change, but exportfs -ra wrote an empty table (and exited 0): NFS served
    # nothing any more, and the run says so.
    assert unchanged.returncode == 1, output(unchanged)
    assert "ERROR: exportfs -ra did not apply the exports" in unchanged.stderr, output(unchanged)
    assert "it lacks /shares/disk-full 10.0.2.2 rw." in unchanged.stderr, output(unchanged)
    assert failed.returncode == 1, output(failed)
    assert (
        "ERROR: could not write /etc/exports.d/disk-full.exports: No space left on device."
        " Is the disk full?" in failed.stderr
    ), output(failed)
    share_state(guest, changed).assert_nothing_points_at_an_unmounted_filesystem("disk full")
    assert not_made.returncode == 1, output(not_made)
    assert "No space left on device. Is the disk full?" in not_made.stderr, output(not_made)
    assert "/var/lib/manila-dhss" in not_made.stderr, output(not_made)  # noting the new UUID
    assert "making" not in not_made.stderr
    assert root(guest, f"blkid -p {by_id(new.volume_id)}", check=False).returncode == 2  # blank

    shares.ensure(changed)
    shares.ensure(new)

    state = share_state(guest, changed)
    assert_host_refused_by_the_rules(guest, changed, state, "after the disk was freed")
    assert state.data_sha256 == sha256
    assert share_state(guest, new).mounted == "volume"


# --- a volume detached under its export ----------------------------------------------------


def test_a_volume_detached_under_its_export_is_withdrawn_then_served_again(
    guest: Guest, shares: Shares
) -> None:
    made = [
        shares.params("detached-nfs", shares.volume(), "NFS", (rw(HOST),), device_timeout=2),
        shares.params("detached-cifs", shares.volume(), "CIFS", (rw(HOST),), device_timeout=2),
    ]
    digests = []
    for share in made:
        shares.ensure(share)
        digests.append(put_data(guest, share))
        guest.detach_volume(share.volume_id)  # behind the share's back: Nova, an operator

    for share in made:
        # Each run withdraws the share a step further (killed at each step), until the last
        # says why it stops there.
        for step in WITHDRAW[:-1]:
            shares.ensure(share, stop_at=step)
        missing = shares.ensure(share, ok=False)
        assert missing.returncode == 1, output(missing)
        assert f"volume {share.volume_id} did not appear as {by_id(share.volume_id)}" in (
            missing.stderr
        )
        state = share_state(guest, share)
        assert state.mounted.startswith("other "), state  # the mount of a device that is gone
        assert (state.fstab, state.exported, state.samba) == ([], [], {}), state
        assert state.exports_file is None, state
    assert_nfs_refused(nfs_list(guest, "/shares/detached-nfs"), "/shares/detached-nfs")
    gone, _ = smb_read(guest, "detached-cifs", "data.bin")
    assert "NT_STATUS_BAD_NETWORK_NAME" in gone.stdout + gone.stderr, output(gone)

    for share, sha256 in zip(made, digests, strict=True):
        guest.attach_volume(share.volume_id)  # back, under another device name
        shares.ensure(share, stop_at="unmounted")  # the dead mount is gone, nothing else yet
        again = shares.ensure(share)
        assert "not formatted" in again.stderr
        state = share_state(guest, share)
        assert state.mounted == "volume", state
        assert state.data_sha256 == sha256
        assert_host_served(guest, share, sha256, "after the volume came back")
