"""Table 4's pure parts: the bare sequence follows share.sh, the goal rows say met or not."""

from __future__ import annotations

import pytest

from benchmarks.share_script import (
    Sample,
    ScriptShapeError,
    WrittenByScript,
    bare_sequence,
    goal_rows,
    mkfs_arguments,
)
from dhss_components.share_script import share_script

NFS_WRITTEN = WrittenByScript(
    mount_path="/shares/warm-nfs",
    name="warm-nfs",
    fstab_options="defaults,nofail 0 2",
    exports_lines=("/shares/warm-nfs 10.0.2.2(rw,no_subtree_check,no_root_squash,mp)",),
    samba_section="",
)
CIFS_WRITTEN = WrittenByScript(
    mount_path="/shares/warm-cifs",
    name="warm-cifs",
    fstab_options="defaults,nofail 0 2",
    exports_lines=(),
    samba_section="[warm-cifs]\n\tpath = /shares/warm-cifs\n\troot preexec = mountpoint -q "
    "/shares/warm-cifs",
)
VOLUME = "4f1c7e0a-9b7d-4d8e-8f6a-0123456789ab"


def test_the_bare_mkfs_has_exactly_the_options_of_share_sh() -> None:
    script = share_script()
    line = next(s.strip() for s in script.splitlines() if s.strip().startswith('"mkfs.$FSTYPE"'))
    options = line.removeprefix('"mkfs.$FSTYPE"').removesuffix("\\").strip()
    bare = bare_sequence(script, NFS_WRITTEN, "NFS", VOLUME, "bare-a")
    mkfs = next(s for s in bare.splitlines() if s.startswith("mkfs."))
    assert mkfs.startswith("mkfs.ext4 " + options.replace('"$FS_UUID"', '"$u"'))


def test_a_changed_option_in_share_sh_changes_the_bare_sequence() -> None:
    script = share_script().replace("-m 0 -E", "-m 0 -O ^has_journal -E", 1)
    assert "^has_journal" in mkfs_arguments(script)
    assert "-O '^has_journal'" in bare_sequence(script, NFS_WRITTEN, "NFS", VOLUME, "b")


def test_a_script_whose_mkfs_cannot_be_read_is_refused() -> None:
    with pytest.raises(ScriptShapeError):
        mkfs_arguments(share_script().replace('"mkfs.$FSTYPE"', "mkfs_somehow"))
    with pytest.raises(ScriptShapeError):
        mkfs_arguments(share_script().replace("-m 0 -E", '-m "$RESERVED" -E', 1))


def test_the_bare_sequence_writes_what_share_sh_wrote_for_its_own_path() -> None:
    nfs = bare_sequence(share_script(), NFS_WRITTEN, "NFS", VOLUME, "bare-a")
    assert "/dev/disk/by-id/virtio-4f1c7e0a-9b7d-4d8e-8" in nfs
    assert '"UUID=$u /shares/bare-a ext4 defaults,nofail 0 2" >>/etc/fstab' in nfs
    assert "/shares/bare-a 10.0.2.2(rw,no_subtree_check,no_root_squash,mp)" in nfs
    assert "exportfs -ra" in nfs
    assert "warm" not in nfs
    cifs = bare_sequence(share_script(), CIFS_WRITTEN, "CIFS", VOLUME, "bare-b")
    assert "[bare-b]" in cifs
    assert "mountpoint -q /shares/bare-b" in cifs
    assert "net conf import /run/bare-b.conf bare-b" in cifs
    assert "warm" not in cifs


def test_goal_rows_bold_the_ratio_when_its_median_meets_the_goal() -> None:
    samples = [
        # re-run / login: 1.5, 1.9, 2.5 (median 1.9: met); first / bare: 1.2, 1.6, 1.7 (no)
        Sample("NFS", 1, first=12, bare=10, rerun=3, login=2),
        Sample("NFS", 1, first=16, bare=10, rerun=3.8, login=2),
        Sample("NFS", 1, first=17, bare=10, rerun=5, login=2),
    ]
    rerun, first = goal_rows(samples)
    assert rerun[2:5] == ["≤ 2", "**1.90 (1.50-2.50)**", "yes"]
    assert first[2:5] == ["≤ 1.5", "1.60 (1.20-1.70)", "**no**"]
    assert rerun[5] == "3.8 (3.0-5.0)"
