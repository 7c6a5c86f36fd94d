"""The data is safe: what the share script must never do, and what it must survive.

Never format a volume that holds anything, never trust the /dev/vdX name, never lose another
share's export, never destroy data on delete; survive a re-run, a rule change, an online
extend and a reboot with the data intact and the share served.
"""

from __future__ import annotations

import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest

from tests.guest.harness import Guest, volume_sha256
from tests.guest.test_share_helpers import (
    HOST,
    Shares,
    assert_nfs_refused,
    assert_smb_refused,
    by_id,
    delete_command,
    ensure_command,
    fs_uuid,
    look,
    nfs_list,
    nfs_read,
    nfs_write,
    output,
    put_data,
    read_on_volume,
    root,
    rw,
    share_state,
    smb_read,
    smb_write,
)

# --- re-runs and updates keep the data -----------------------------------------------------


def test_ensure_twice_changes_nothing(guest: Guest, shares: Shares) -> None:
    share = shares.params("again", shares.volume(), "NFS", (rw(HOST),))
    first = shares.ensure(share)
    assert "making an ext4 filesystem" in first.stderr
    assert nfs_write(guest, "/shares/again/data.txt", "precious\n").returncode == 0
    before = look(guest)
    uuid_before = fs_uuid(guest, share.volume_id)

    second = shares.ensure(share)

    assert "not formatted" in second.stderr, output(second)
    assert "making" not in second.stderr
    assert "already mounted" in second.stderr
    assert "wrote" not in second.stderr  # neither the exports file nor fstab was rewritten
    assert look(guest) == before
    assert fs_uuid(guest, share.volume_id) == uuid_before
    assert nfs_read(guest, "/shares/again/data.txt").stdout == "precious\n"
    assert [line for line in before.fstab if " /shares/again " in line] == [
        f"UUID={uuid_before} /shares/again ext4 defaults,nofail 0 2"
    ]
    assert root(guest, "stat -c %a /shares/again").stdout.strip() == "777"  # Manila's chmod


def test_delete_twice_and_delete_of_a_share_never_made_succeed(
    guest: Guest, shares: Shares
) -> None:
    never = shares.params("never-made", "0a5e1f3c-0000-4000-8000-000000000000", "NFS")
    for _ in range(2):
        result = shares.delete(never)
        assert result.returncode == 0, output(result)
    share = shares.params("twice", shares.volume(), "CIFS", (rw(HOST),))
    shares.ensure(share)
    shares.delete(share)
    assert shares.delete(share).returncode == 0


def test_delete_keeps_the_data_and_leaves_nothing_behind(guest: Guest, shares: Shares) -> None:
    volume = shares.volume()
    share = shares.params("kept", volume, "NFS", (rw(HOST),))
    shares.ensure(share)
    assert nfs_write(guest, "/shares/kept/data.txt", "still here\n").returncode == 0
    uuid_before = fs_uuid(guest, volume)

    result = shares.delete(share)

    assert "the data on the volume is kept" in result.stderr
    assert "share kept: deleted" in result.stderr
    view = look(guest)
    assert "/shares/kept" not in view.mounts
    assert not [line for line in view.fstab if "/shares/kept" in line]
    assert view.exports_of("/shares/kept") == []
    assert "kept.exports" not in view.exports_files
    assert "kept" not in view.directories
    # The volume still holds the filesystem and the file: re-creating the share finds them.
    guest.detach_volume(volume)
    assert read_on_volume(guest.volume_path(volume), "/data.txt") == "still here\n"
    guest.attach_volume(volume)
    again = shares.ensure(share)
    assert "not formatted" in again.stderr
    assert fs_uuid(guest, volume) == uuid_before
    assert nfs_read(guest, "/shares/kept/data.txt").stdout == "still here\n"


def test_online_extend_grows_the_filesystem_without_cutting_access(
    guest: Guest, shares: Shares
) -> None:
    volume = shares.volume("1G")
    share = shares.params("grows", volume, "NFS", (rw(HOST),))
    shares.ensure(share)
    assert nfs_write(guest, "/shares/grows/data.txt", "read all along\n").returncode == 0

    # A client keeps reading the file over NFS during the whole extend.
    reads: list[str] = []
    failures: list[str] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            result = nfs_read(guest, "/shares/grows/data.txt")
            if result.stdout == "read all along\n":
                reads.append(result.stdout)
            else:
                failures.append(output(result))
            time.sleep(0.2)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        guest.resize_volume(volume, "2G")  # Cinder's extend, seen by the guest online
        result = shares.ensure(replace(share, size_gib=2))
        reads_during = len(reads)
    finally:
        stop.set()
        thread.join()

    assert "growing the filesystem on /shares/grows online" in result.stderr, output(result)
    assert "unmounted" not in result.stderr
    assert not failures, failures[:3]
    assert reads_during >= 2, "the reader did not get going during the extend"
    size = root(guest, "df --output=size -B1M /shares/grows | tail -1").stdout.strip()
    assert int(size) > 1900, size  # about 2 GiB of filesystem now (it was about 1 GiB)
    assert nfs_read(guest, "/shares/grows/data.txt").stdout == "read all along\n"


def test_an_unmounted_volume_is_never_served_from_the_root_disk(
    guest: Guest, shares: Shares
) -> None:
    nfs = shares.params("gone-nfs", shares.volume(), "NFS", (rw(HOST),))
    cifs = shares.params("gone-cifs", shares.volume(), "CIFS", (rw(HOST),))
    shares.ensure(nfs)
    shares.ensure(cifs)
    # The volumes go away under the shares (a detach behind our back, a reboot without them).
    root(guest, "umount /shares/gone-nfs /shares/gone-cifs")

    # Refused by the exports' mp and Samba's root preexec (not mounted), not by anything else.
    assert_nfs_refused(nfs_write(guest, "/shares/gone-nfs/lost.txt", "x"), "/shares/gone-nfs")
    assert_smb_refused(smb_write(guest, "gone-cifs", "lost.txt", "x"))
    assert root(guest, "ls -A /shares/gone-nfs /shares/gone-cifs").stdout.split() == [
        "/shares/gone-cifs:",
        "/shares/gone-nfs:",
    ]
    # ensure mounts them again, and they are served again.
    shares.ensure(nfs)
    shares.ensure(cifs)
    assert nfs_write(guest, "/shares/gone-nfs/back.txt", "back\n").returncode == 0
    assert smb_write(guest, "gone-cifs", "back.txt", "back\n").returncode == 0


# --- never format what it should not -------------------------------------------------------


def test_an_existing_filesystem_is_used_as_it_is(guest: Guest, shares: Shares) -> None:
    volume = shares.volume()
    root(
        guest,
        f"""mkfs.ext4 -q {by_id(volume)}
        mkdir -p /mnt/prepare && mount {by_id(volume)} /mnt/prepare
        echo 'from before' > /mnt/prepare/old.txt && chmod 750 /mnt/prepare
        umount /mnt/prepare""",
    )
    uuid_before = fs_uuid(guest, volume)
    share = shares.params("existing", volume, "NFS", (rw(HOST),))

    result = shares.ensure(share)

    assert f"using the existing ext4 filesystem {uuid_before}" in result.stderr
    assert "making" not in result.stderr
    assert fs_uuid(guest, volume) == uuid_before
    assert root(guest, "cat /shares/existing/old.txt").stdout == "from before\n"
    assert root(guest, "stat -c %a /shares/existing").stdout.strip() == "750"  # untouched


def _dos_partition_table() -> bytes:
    """An MBR with one Linux partition, as fdisk would write it."""
    mbr = bytearray(512)
    mbr[440:444] = b"\x12\x34\x56\x78"  # disk id
    mbr[446:462] = struct.pack("<B3sB3sII", 0, b"\x00\x02\x00", 0x83, b"\xfe\xff\xff", 2048, 4096)
    mbr[510:512] = b"\x55\xaa"
    return bytes(mbr)


@pytest.mark.parametrize(
    ("prepare", "refusal"),
    [
        ("partition table", "it holds a dos partition table"),
        ("swap", "it holds 'swap'"),
        ("ext2", "it holds 'ext2'"),
    ],
)
def test_a_volume_that_holds_something_else_is_refused_and_untouched(
    guest: Guest, shares: Shares, prepare: str, refusal: str
) -> None:
    volume = shares.volume()
    device = by_id(volume)
    if prepare == "partition table":
        written = guest.ssh(
            f"sudo -n dd of={device} bs=512 count=1 conv=notrunc,fsync status=none",
            input=_dos_partition_table(),
        )
        assert written.returncode == 0, output(written)
    elif prepare == "swap":
        root(guest, f"mkswap {device} >/dev/null")
    else:
        root(guest, f"mkfs.ext2 -q {device}")
    root(guest, "sync")
    guest.detach_volume(volume)
    before = volume_sha256(guest.volume_path(volume))
    guest.attach_volume(volume)
    share = shares.params("refused", volume, "NFS", (rw(HOST),))

    result = shares.ensure(share, ok=False)

    assert result.returncode == 1, output(result)
    assert f"ERROR: refusing to use volume {volume}" in result.stderr
    assert refusal in result.stderr
    assert "Nothing was changed" in result.stderr
    view = look(guest)
    assert "/shares/refused" not in view.mounts
    assert "refused.exports" not in view.exports_files
    assert not [line for line in view.fstab if "/shares/refused" in line]
    guest.detach_volume(volume)
    assert volume_sha256(guest.volume_path(volume)) == before
    shares.made.pop("refused")


def test_a_volume_id_mix_up_is_refused_before_anything_is_written(
    guest: Guest, shares: Shares
) -> None:
    first, second = shares.volume(), shares.volume()
    share = shares.params("mixed-up", first, "NFS", (rw(HOST),))
    shares.ensure(share)
    other = shares.params("other-name", first, "NFS", (rw(HOST),))

    # The same path with another volume, and the same volume under another name.
    wrong_volume = shares.ensure(replace(share, volume_id=second), ok=False)
    wrong_name = shares.ensure(other, ok=False)
    shares.made.pop("other-name")
    shares.made["mixed-up"] = share

    assert wrong_volume.returncode == 1
    assert "/shares/mixed-up is already a mount point of device" in wrong_volume.stderr
    assert wrong_name.returncode == 1
    assert "is already mounted on /shares/mixed-up, not on /shares/other-name" in (
        wrong_name.stderr
    )
    # The second volume was not formatted: it is still blank.
    assert root(guest, f"blkid -p {by_id(second)}", check=False).returncode == 2


def test_each_share_lands_on_its_own_volume_whatever_the_device_names(
    guest: Guest, shares: Shares
) -> None:
    # Attach in the opposite order of the shares: the first share's volume becomes the second
    # disk (/dev/vdc, say), where Nova's guessed device name would point at the other one.
    second_volume = shares.volume()
    first_volume = shares.volume()
    first = shares.params("first", first_volume, "NFS", (rw(HOST),))
    second = shares.params("second", second_volume, "NFS", (rw(HOST),))
    shares.ensure(first)
    shares.ensure(second)
    assert nfs_write(guest, "/shares/first/which.txt", "first\n").returncode == 0
    assert nfs_write(guest, "/shares/second/which.txt", "second\n").returncode == 0
    names = root(guest, f"readlink -f {by_id(first_volume)} {by_id(second_volume)}").stdout
    view = look(guest)
    assert view.mounts["/shares/first"][0] == names.split()[0]
    assert view.mounts["/shares/second"][0] == names.split()[1]

    shares.delete(first)
    shares.delete(second)
    guest.detach_volume(first_volume)
    guest.detach_volume(second_volume)
    assert read_on_volume(guest.volume_path(first_volume), "/which.txt") == "first\n"
    assert read_on_volume(guest.volume_path(second_volume), "/which.txt") == "second\n"


def test_a_missing_device_fails_within_its_bound(guest: Guest, shares: Shares) -> None:
    missing = "5b7c0d0e-1111-4222-8333-944455556666"  # never attached
    share = shares.params("missing", missing, "NFS", (rw(HOST),), device_timeout=5)

    started = time.monotonic()
    result = shares.ensure(share, ok=False)
    elapsed = time.monotonic() - started

    assert result.returncode == 1, output(result)
    assert (
        f"volume {missing} did not appear as /dev/disk/by-id/virtio-{missing[:20]} within 5s"
        in result.stderr
    )
    assert "openstack server volume list" in result.stderr  # what to check
    assert 5 <= elapsed < 5 + 60, elapsed  # the bound, plus ssh on an emulated guest
    shares.made.pop("missing")


def test_a_foreign_filesystem_at_the_share_path_is_never_served(
    guest: Guest, shares: Shares
) -> None:
    share = shares.params("swapped", shares.volume(), "NFS", (rw(HOST),))
    shares.ensure(share)
    # By hand, another filesystem takes the share's place.
    root(guest, "umount /shares/swapped && mount -t tmpfs foreign /shares/swapped")
    try:
        result = shares.ensure(share, ok=False)

        assert result.returncode == 1, output(result)
        assert "which is neither volume" in result.stderr, output(result)
        assert "the share's exports and fstab line were removed" in result.stderr
        state = share_state(guest, share)
        assert state.mounted.startswith("other "), state
        assert (state.exported, state.fstab, state.exports_file) == ([], [], None), state
        assert_nfs_refused(nfs_list(guest, "/shares/swapped"), "/shares/swapped")
        # A delete leaves it mounted: unmounting a tmpfs would lose what it holds.
        root(guest, "echo kept > /shares/swapped/note")
        deleted = shares.delete(share)
        assert "warning: left /shares/swapped mounted" in deleted.stderr, output(deleted)
        assert root(guest, "cat /shares/swapped/note").stdout == "kept\n"
    finally:
        root(guest, "umount /shares/swapped")
    again = shares.ensure(share)
    assert "not formatted" in again.stderr
    assert share_state(guest, share).exported == [f"{HOST} rw"]


# --- names, locks and state on the guest ---------------------------------------------------


@pytest.mark.parametrize("name", ["global", "globals", "homes", "printers"])
def test_samba_special_sections_are_never_a_share_name(
    guest: Guest, shares: Shares, name: str
) -> None:
    volume = "0a5e1f3c-0000-4000-8000-000000000001"  # never attached: refused before that
    share = shares.params(name, volume, "CIFS", (rw(HOST),), device_timeout=1)
    registry = root(guest, "net conf list").stdout

    refused = shares.ensure(share, ok=False)
    deleted = shares.delete(share, ok=False)

    assert refused.returncode == 2, output(refused)
    assert f"share name '{name}' is one of Samba's special sections" in refused.stderr
    assert "Give the share another name" in refused.stderr
    assert deleted.returncode == 0, output(deleted)  # a share that was never made
    assert f"not touching Samba's special section [{name}]" in deleted.stderr
    assert root(guest, "net conf list").stdout == registry
    assert f"/shares/{name}" not in look(guest).mounts
    shares.made.pop(name)


RESTORE_RUN_DIR = """
    if [ -L /run/manila-dhss ]; then
        rm /run/manila-dhss && mv /run/manila-dhss.aside /run/manila-dhss
    fi
    chmod 700 /run/manila-dhss
"""


def test_locks_are_in_a_directory_of_roots_own_and_planted_links_are_not_followed(
    guest: Guest, shares: Shares
) -> None:
    # The service user plants symlinks where lock files were once opened (world-writable
    # /run/lock) and truncated, pointing at a file of its own.
    planted = "/run/lock/dhss-fstab.lock /run/lock/dhss-exports.lock /run/lock/dhss-samba.lock"
    guest.ssh(
        f"echo mine > ~/victim && for link in {planted}; do ln -sfn ~/victim $link; done",
        check=True,
    )
    share = shares.params("locked", shares.volume(), "NFS", (rw(HOST),))
    try:
        shares.ensure(share)
        assert guest.ssh("cat ~/victim", check=True).stdout == "mine\n"
        assert root(guest, "stat -c '%F %U %a' /run/manila-dhss").stdout == "directory root 700\n"

        # A directory that is not root's alone is refused, before anything is done.
        for tamper, refusal in (
            ("chmod 1777 /run/manila-dhss", "must belong to root and be writable by root only"),
            ("mv /run/manila-dhss /run/manila-dhss.aside && ln -s /tmp /run/manila-dhss",
             "is not a directory but a symlink or a file"),
        ):  # fmt: skip
            root(guest, tamper)
            try:
                result = shares.ensure(replace(share, clients=()), ok=False)
            finally:
                root(guest, RESTORE_RUN_DIR)
            assert result.returncode == 1, output(result)
            assert refusal in result.stderr, output(result)
            assert share_state(guest, share).exported == [f"{HOST} rw"]  # untouched
    finally:
        root(guest, f"rm -f {planted} /home/manila/victim")


# --- many at once ---------------------------------------------------------------------------


def test_ten_shares_at_once_lose_nothing(guest: Guest, shares: Shares) -> None:
    nfs = [
        shares.params(f"many-{i}", shares.volume(), "NFS", (rw(f"10.0.3.{i + 1}"),))
        for i in range(10)
    ]
    cifs = [
        shares.params(f"many-cifs-{i}", shares.volume(), "CIFS", (rw(f"10.0.4.{i + 1}"),))
        for i in range(3)
    ]
    everything = nfs + cifs
    for share in everything:
        shares.made[share.name] = share

    with ThreadPoolExecutor(len(everything)) as pool:
        created = list(pool.map(lambda s: guest.ssh(ensure_command(s)), everything))
    assert all(r.returncode == 0 for r in created), [output(r) for r in created if r.returncode]

    view = look(guest)
    for i, share in enumerate(nfs):
        path = f"/shares/{share.name}"
        assert path in view.mounts
        assert [e.split("(")[0] for e in view.exports_of(path)] == [f"10.0.3.{i + 1}"]
        assert f"{share.name}.exports" in view.exports_files
        assert len([line for line in view.fstab if f" {path} " in line]) == 1
    for i, share in enumerate(cifs):
        assert view.samba_shares[share.name]["hosts allow"] == f"10.0.4.{i + 1}"
        assert f"/shares/{share.name}" in view.mounts
    uuids = {view.mounts[f"/shares/{share.name}"][1] for share in everything}
    assert len(uuids) == len(everything)  # each on its own volume

    with ThreadPoolExecutor(len(everything)) as pool:
        deleted = list(pool.map(lambda s: guest.ssh(delete_command(s)), everything))
    assert all(r.returncode == 0 for r in deleted), [output(r) for r in deleted if r.returncode]
    shares.made.clear()

    view = look(guest)
    assert not [m for m in view.mounts if m.startswith("/shares/many-")]
    assert not [line for line in view.fstab if "/shares/many-" in line]
    assert not [p for p, _ in view.exportfs if p.startswith("/shares/many-")]
    assert not [f for f in view.exports_files if f.startswith("many-")]
    assert not [s for s in view.samba_shares if s.startswith("many-")]
    assert not [d for d in view.directories if d.startswith("many-")]


# --- reboot (last: it takes the longest) ------------------------------------------------------


def test_shares_come_back_after_a_reboot(guest: Guest, shares: Shares) -> None:
    nfs = shares.params("boot-nfs", shares.volume(), "NFS", (rw(HOST),))
    cifs = shares.params("boot-cifs", shares.volume(), "CIFS", (rw(HOST),))
    shares.ensure(nfs)
    shares.ensure(cifs)
    assert nfs_write(guest, "/shares/boot-nfs/data.txt", "nfs data\n").returncode == 0
    assert smb_write(guest, "boot-cifs", "data.txt", "cifs data\n").returncode == 0
    # Two more, cut short by the reboot: one made up to its mkfs, one deleted up to its unexport.
    half_made = shares.params("boot-half-made", shares.volume(), "NFS", (rw(HOST),))
    shares.ensure(half_made, stop_at="formatted")
    half_gone = shares.params("boot-half-gone", shares.volume(), "CIFS", (rw(HOST),))
    shares.ensure(half_gone)
    sha256 = put_data(guest, half_gone)
    shares.delete(half_gone, stop_at="unexported")
    before = look(guest)

    guest.reboot(timeout=900)

    # fstab mounted both volumes again (by UUID), with the data on them.
    after = look(guest)
    assert after.mounts["/shares/boot-nfs"][1] == before.mounts["/shares/boot-nfs"][1]
    assert after.mounts["/shares/boot-cifs"][1] == before.mounts["/shares/boot-cifs"][1]
    assert root(guest, "cat /shares/boot-nfs/data.txt").stdout == "nfs data\n"
    assert root(guest, "cat /shares/boot-cifs/data.txt").stdout == "cifs data\n"
    # ensure after the reboot: nothing to make, and both are served.
    for share in (nfs, cifs):
        result = shares.ensure(share)
        assert "not formatted" in result.stderr
        assert "already mounted" in result.stderr
    assert nfs_read(guest, "/shares/boot-nfs/data.txt").stdout == "nfs data\n"
    got, text = smb_read(guest, "boot-cifs", "data.txt")
    assert text == "cifs data\n", output(got)
    assert "data.txt" in nfs_list(guest, "/shares/boot-nfs").stdout
    # The two cut short: nothing points at what is not mounted, and the same commands finish.
    for share in (half_made, half_gone):
        share_state(guest, share).assert_nothing_points_at_an_unmounted_filesystem("rebooted")
    shares.ensure(half_made)
    state = share_state(guest, half_made)
    assert state.root_mode == "777", state  # the first-mount chmod, noted before the reboot
    assert state.exported == [f"{HOST} rw"], state
    shares.delete(half_gone)
    state = share_state(guest, half_gone)
    assert (state.mounted, state.samba, state.fstab) == ("", {}, []), state
    assert state.data_sha256 == sha256
