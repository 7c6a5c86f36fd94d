"""The share's path: what share.sh takes for the share's mount is what its clients reach.

What the script reads of the share's mount must be what a client of the share reaches: the
mount the kernel finds at the share's path now, not a line of mountinfo for that path that
something mounted over the mount root hides, nor one that mount propagation slid beneath the
share's volume. And a share_mount_path below a symlink is refused on the first run, before a
volume is formatted or mounted, not only once it exists.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from dhss_components.share_script import render_check_command
from tests.guest.harness import Guest
from tests.guest.test_share_helpers import (
    HOST,
    GuestShare,
    Shares,
    by_id,
    delete_command,
    look,
    output,
    root,
    rw,
    share_state,
    smb,
    smb_read,
    smb_write,
)


def check(guest: Guest, share: GuestShare) -> tuple[int, str]:
    result = guest.ssh(render_check_command(share, share.volume_id))
    return result.returncode, output(result)


# --- a share_mount_path below a symlink ----------------------------------------------------


def test_a_mount_root_reached_through_a_symlink_is_refused_before_anything_changes(
    guest: Guest, shares: Shares
) -> None:
    # share_mount_path is a symlink on this image. The kernel and NFS know a mount by the
    # resolved path: an NFS share there could never be exported as declared, and the share's
    # own mount would look to delete like another mount of its volume. Refused up front.
    root(guest, "mkdir -p /srv/dhss-real && ln -sfn /srv/dhss-real /srv/dhss-link")
    try:
        before = look(guest, "/srv/dhss-real")
        for name, protocol in (("linked", "NFS"), ("linkedc", "CIFS")):
            share = shares.params(
                name, shares.volume(), protocol, (rw(HOST),), mount_root="/srv/dhss-link"
            )
            refused = shares.ensure(share, ok=False)

            assert refused.returncode == 1, output(refused)
            assert (
                "/srv/dhss-link is reached through a symlink: it is /srv/dhss-real"
                in refused.stderr
            )
            assert "Set share_mount_path to /srv/dhss-real" in refused.stderr
            assert look(guest, "/srv/dhss-real") == before
            assert root(guest, "ls -A /srv/dhss-real /etc/exports.d").stdout.split() == [
                "/etc/exports.d:",
                "/srv/dhss-real:",
            ]
            blank = root(guest, f"blkid -p {by_id(share.volume_id)} || echo blank").stdout
            assert blank.strip() == "blank"  # not formatted
        # The same shares on the resolved path are made as usual.
        made = shares.params(
            "linked", shares.volume(), "NFS", (rw(HOST),), mount_root="/srv/dhss-real"
        )
        shares.ensure(made)
        assert share_state(guest, made).exported == [f"{HOST} rw"]
    finally:
        shares.cleanup()
        shares.made.clear()
        root(guest, "rm -f /srv/dhss-link; rmdir /srv/dhss-real/* /srv/dhss-real || true")


LINKED = "/attack-linked"  # a symlink to REAL, as /srv -> /data on a server laid out so
REAL = "/attack-real"


@pytest.fixture
def linked_directory(guest: Guest, shares: Shares) -> Iterator[None]:
    """LINKED, a symlink to the directory REAL; after the test, any share made there is undone."""
    root(guest, f"mkdir -p {REAL} && ln -sfn {REAL} {LINKED}")
    yield
    # (A share that got made below the symlink can only be deleted by its real path.)
    for name, made in list(shares.made.items()):
        if made.mount_root.startswith((LINKED, REAL)):
            guest.ssh(
                delete_command(replace(made, mount_root=made.mount_root.replace(LINKED, REAL)))
            )
            shares.made.pop(name)
    root(
        guest,
        f"sed -i '\\#{LINKED}/#d' /etc/fstab; rm -f {LINKED}; rm -rf --one-file-system {REAL}",
    )


def test_a_mount_root_below_a_symlink_is_refused_before_the_first_share_is_made(
    guest: Guest, shares: Shares, linked_directory: None
) -> None:
    # share_mount_path /attack-linked/shares does not exist yet: the first ensure makes it,
    # in /attack-real, where the kernel then records the share's mount.
    share = shares.params(
        "below-link", shares.volume(), "CIFS", (rw(HOST),), mount_root=f"{LINKED}/shares"
    )

    first = shares.ensure(share, ok=False)

    assert first.returncode == 1, output(first)
    assert f"share_mount_path {LINKED}/shares is reached through a symlink" in first.stderr
    assert "making" not in first.stderr, output(first)  # the volume was not formatted
    state = share_state(guest, share)
    assert (state.volume_uuid, state.mounted, state.fstab, state.samba) == ("", "", [], {})
    assert root(guest, f"ls -A {REAL}").stdout == ""  # not even the directory was made


# --- something mounted over the mount root -------------------------------------------------


def _uncover(guest: Guest, name: str) -> None:
    root(
        guest,
        f"smbcontrol smbd close-share {name} || true; exportfs -f; "
        "while grep -q ' /shares rw.* - tmpfs attack-cover ' /proc/self/mountinfo; do "
        "umount /shares; done",
    )


def test_a_tmpfs_over_the_mount_root_is_never_served_as_the_share(
    guest: Guest, shares: Shares
) -> None:
    share = shares.params("covered", shares.volume(), "CIFS", (rw(HOST),))
    shares.ensure(share)
    assert smb_write(guest, "covered", "on-volume", "kept\n").returncode == 0
    # Something mounts a tmpfs over /shares (a unit, a hand-made mount) and makes a directory
    # by the share's name in it: the path no longer leads to the volume, which stays mounted
    # beneath, with its line in mountinfo.
    root(
        guest,
        "mount -t tmpfs -o mode=755 attack-cover /shares && mkdir -m 777 /shares/covered && "
        "echo cover > /shares/covered/on-cover && chmod 666 /shares/covered/on-cover",
    )
    try:
        status, text = check(guest, share)
        assert status == 3, text
        assert "drift covered mount: /shares/covered is not mounted" in text

        ensure = shares.ensure(share, ok=False)
        assert ensure.returncode == 1, output(ensure)
        assert "ready" not in ensure.stderr

        # Samba does not hand the cover's directory to clients as the share.
        with tempfile.TemporaryDirectory() as tmp:
            listing = smb(guest, "covered", "ls", Path(tmp))
        assert "on-cover" not in listing.stdout, output(listing)
        assert smb_write(guest, "covered", "lost", "lost\n").returncode != 0
    finally:
        _uncover(guest, "covered")

    shares.ensure(share)
    assert smb_read(guest, "covered", "on-volume")[1] == "kept\n"
    status, text = check(guest, share)
    assert status == 0, text


def test_a_tmpfs_over_the_mount_root_without_the_share_directory_is_drift(
    guest: Guest, shares: Shares
) -> None:
    share = shares.params("covered-nfs", shares.volume(), "NFS", (rw(HOST),))
    shares.ensure(share)
    root(guest, "mount -t tmpfs -o mode=755 attack-cover /shares")
    try:
        status, text = check(guest, share)
        assert status == 3, text  # drift, which it is; not 1, "cannot tell"
        assert "drift covered-nfs mount: /shares/covered-nfs is not mounted" in text

        ensure = shares.ensure(share, ok=False)
        assert ensure.returncode == 1, output(ensure)
        assert "is already mounted on /shares/covered-nfs" not in ensure.stderr, output(ensure)
        assert "hidden" in ensure.stderr, output(ensure)  # says why, not a riddle
    finally:
        _uncover(guest, "covered-nfs")
    shares.ensure(share)
    status, text = check(guest, share)
    assert status == 0, text


# --- a mount slid beneath the share's volume by propagation -------------------------------


def test_a_mount_propagated_beneath_the_volume_leaves_the_share_alone(
    guest: Guest, shares: Shares
) -> None:
    share = shares.params("beneath", shares.volume(), "NFS", (rw(HOST),))
    shares.ensure(share)
    before = look(guest)
    # A bind of the root filesystem (a backup tool's, say) is a peer of /, which systemd
    # makes shared: a tmpfs mounted on the share's path through it propagates to
    # /shares/beneath and, the volume being there already, is put beneath it (Linux 4.11+).
    # The path still leads to the volume; mountinfo lists the tmpfs after it.
    root(
        guest,
        "mkdir -p /mnt/attack-root && mount --bind / /mnt/attack-root && "
        "mount -t tmpfs attack-beneath /mnt/attack-root/shares/beneath",
    )
    try:
        device = f"/dev/disk/by-id/virtio-{share.volume_id[:20]}"
        seen = root(guest, f"stat -c %Hd:%Ld /shares/beneath; stat -L -c %Hr:%Lr {device}")
        path_device, volume_device = seen.stdout.split()
        assert path_device == volume_device  # what a client reaches is the volume
        status, text = check(guest, share)
        assert status == 0, text
        again = shares.ensure(share, ok=False)
        assert again.returncode == 0, output(again)
        assert "removed" not in again.stderr, output(again)
        view = look(guest)
        assert (view.fstab, view.exportfs) == (before.fstab, before.exportfs)
    finally:
        root(
            guest,
            "umount /mnt/attack-root/shares/beneath; umount /mnt/attack-root; "
            "rmdir /mnt/attack-root",
            check=False,
        )


def test_delete_never_reports_a_share_gone_while_its_volume_is_mounted_under_a_cover(
    guest: Guest, shares: Shares
) -> None:
    share = shares.params("covered-delete", shares.volume(), "NFS", (rw(HOST),))
    shares.ensure(share)
    root(guest, "mount -t tmpfs -o mode=755 attack-cover /shares")
    try:
        # Pulumi detaches the volume (Nova) once delete succeeds: with the filesystem still
        # mounted beneath the cover, that pulls the disk from under it.
        deleted = shares.delete(share, ok=False)
        assert deleted.returncode == 1, output(deleted)
        assert "hidden" in deleted.stderr, output(deleted)
        mounted = root(guest, "grep ' /shares/covered-delete ' /proc/self/mountinfo", check=False)
        assert mounted.stdout, "the volume is still mounted, so delete must not say deleted"

        root(guest, "mkdir /shares/covered-delete")  # a directory by its name on the cover
        again = shares.delete(share, ok=False)
        assert again.returncode == 1, output(again)
        assert "hidden" in again.stderr, output(again)
    finally:
        _uncover(guest, "covered-delete")
    shares.delete(share)
    assert not root(guest, "grep ' /shares/covered-delete ' /proc/self/mountinfo || true").stdout


def test_a_share_moved_to_the_resolved_mount_root_keeps_one_fstab_line(
    guest: Guest, shares: Shares, linked_directory: None
) -> None:
    # A share made under a symlinked share_mount_path by the previous script: mounted where
    # the symlink leads, its fstab line spelled through the symlink.
    share = shares.params("moved", shares.volume(), "CIFS", (rw(HOST),), mount_root=f"{REAL}")
    shares.ensure(share)
    root(guest, f"sed -i 's# {REAL}/moved # {LINKED}/moved #' /etc/fstab")
    linked = replace(share, mount_root=LINKED)
    refused = shares.ensure(linked, ok=False)
    assert f"Set share_mount_path to {REAL}" in refused.stderr, output(refused)
    shares.made.pop("moved")

    shares.ensure(share)  # as the refusal says

    uuid = share_state(guest, share).volume_uuid
    lines = root(guest, f"grep -F 'UUID={uuid}' /etc/fstab || true").stdout.splitlines()
    assert lines == [f"UUID={uuid} {REAL}/moved ext4 defaults,nofail 0 2"]
