"""``share.sh check`` on a real guest: what ``fleet verify`` reports to an operator.

Each test makes a share with the ensure command the Share component runs, changes the guest by
hand as an operator (or a failing disk) would, and runs the check command that verify renders
(``render_check_command``): every difference is one ``drift <share> <aspect>: <what>`` line
and exit 3; a guest as declared prints ``ok <share>`` and exits 0; a check that cannot tell
exits 1 with the reason on stderr. Around every check, the guest's mounts, fstab, exports,
mountd's table, Samba registry and lock files are read before and after, and must be the same
byte for byte: the check changes nothing. After each drift, ensure repairs it and the check
says ``ok`` again: ensure and check agree on what a share should be.
"""

from __future__ import annotations

import subprocess
from dataclasses import replace

from dhss_components.fleet.openssh import Completed
from dhss_components.fleet.verify import ShareState as VerifiedState
from dhss_components.fleet.verify import share_report
from dhss_components.share_script import render_check_command
from tests.guest.harness import Guest
from tests.guest.test_share_helpers import (
    HOST,
    GuestShare,
    Shares,
    output,
    ro,
    root,
    rw,
)

OTHER_CLIENT = "10.0.2.50"
NETWORK = "10.0.3.0/24"

# What an operator would compare by hand: everything ensure writes, and the locks it leaves.
GUEST_STATE = """
    echo @mounts; findmnt -rn -o TARGET,SOURCE,OPTIONS
    echo @fstab; cat /etc/fstab
    echo @exports.d; head -n 100 /etc/exports.d/* 2>/dev/null || true
    echo @etab; cat /var/lib/nfs/etab
    echo @exportfs; exportfs -v
    echo @samba; net conf list
    echo @locks; ls -la --time-style=full-iso /run/manila-dhss 2>/dev/null || true
"""


def guest_state(guest: Guest) -> str:
    return root(guest, GUEST_STATE).stdout


def check(guest: Guest, share: GuestShare) -> subprocess.CompletedProcess[str]:
    """Run the check command verify sends, and prove that it changed nothing. It runs from
    /, a directory full of names, so that any word the script let the shell expand shows."""
    before = guest_state(guest)
    result = guest.ssh("cd / && " + render_check_command(share, share.volume_id))
    after = guest_state(guest)
    assert after == before, f"the check changed the guest:\n{output(result)}"
    assert result.returncode in (0, 1, 3), output(result)
    return result


def assert_ok(guest: Guest, share: GuestShare) -> None:
    result = check(guest, share)
    assert (result.returncode, result.stdout) == (0, f"ok {share.name}\n"), output(result)


def assert_drift(guest: Guest, share: GuestShare, *expected: str) -> list[str]:
    """The check reports exactly these findings (each ``<aspect>: <start of what it saw>``,
    in any order) and exits 3. Returns its lines."""
    result = check(guest, share)
    assert result.returncode == 3, output(result)
    lines = result.stdout.splitlines()
    prefix = f"drift {share.name} "
    assert all(line.startswith(prefix) for line in lines), output(result)
    findings = [line.removeprefix(prefix) for line in lines]
    unmatched = list(findings)
    for finding in expected:
        match = [f for f in unmatched if f.startswith(finding)]
        assert match, f"no finding {finding!r} in:\n{output(result)}"
        unmatched.remove(match[0])
    assert not unmatched, f"unexpected findings {unmatched} in:\n{output(result)}"
    return lines


def test_a_share_as_declared_is_ok_and_checking_changes_nothing(
    guest: Guest, shares: Shares
) -> None:
    nfs = shares.params("chk-ok-nfs", shares.volume(), "NFS", (rw(HOST), ro(NETWORK)))
    cifs = shares.params("chk-ok-cifs", shares.volume(), "CIFS", (rw(HOST),))
    shares.ensure(nfs)
    shares.ensure(cifs)

    assert_ok(guest, nfs)
    assert_ok(guest, cifs)
    # A share that no ensure ever made: reported, and no lock or directory made for it.
    never = replace(nfs, name="chk-never")
    assert_drift(
        guest,
        never,
        "mount: /shares/chk-never is not mounted",
        "fstab: /etc/fstab has no line for /shares/chk-never",
        "exports-file: /etc/exports.d/chk-never.exports is missing",
        "export: /shares/chk-never is not exported over NFS",
    )
    assert "chk-never" not in root(guest, "ls -A /shares /run/manila-dhss").stdout


def test_nfs_drift_is_reported_by_aspect(guest: Guest, shares: Shares) -> None:
    share = shares.params("chk-nfs", shares.volume(), "NFS", (rw(HOST), ro(NETWORK)))
    shares.ensure(share)
    path = "/shares/chk-nfs"
    options = "no_subtree_check,no_root_squash,mp"

    # An export line removed from the share's file, and applied.
    root(guest, f"sed -i '\\#{NETWORK}#d' /etc/exports.d/chk-nfs.exports; exportfs -ra")
    assert_drift(
        guest,
        share,
        f"exports-file: /etc/exports.d/chk-nfs.exports is not what ensure writes: it lacks "
        f"'{path} {NETWORK}(ro,{options})'",
        f"client: {NETWORK} is declared ro but not exported to",
    )
    shares.ensure(share)
    assert_ok(guest, share)

    # A client unexported by hand (the file is untouched).
    root(guest, f"exportfs -u {HOST}:{path}")
    assert_drift(guest, share, f"client: {HOST} is declared rw but not exported to")
    shares.ensure(share)

    # A client added by hand, and a client's level changed from ro to rw.
    root(guest, f"exportfs -o rw,{options} {OTHER_CLIENT}:{path}")
    root(guest, f"exportfs -o rw,{options} {NETWORK}:{path}")
    assert_drift(
        guest,
        share,
        f"client: {OTHER_CLIENT} is exported rw but has no access rule",
        f"client: {NETWORK} is exported rw, declared ro",
    )
    shares.ensure(share)
    assert_ok(guest, share)


def test_mount_fstab_size_and_space_drift_is_reported(guest: Guest, shares: Shares) -> None:
    share = shares.params("chk-disk", shares.volume(), "NFS", (rw(HOST),))
    shares.ensure(share)
    path = "/shares/chk-disk"

    root(guest, f"umount {path}")
    assert_drift(guest, share, f"mount: {path} is not mounted")
    shares.ensure(share)

    root(guest, f"sed -i '\\# {path} #d' /etc/fstab")
    assert_drift(guest, share, f"fstab: /etc/fstab has no line for {path}")
    shares.ensure(share)

    root(guest, f"mount -o remount,ro {path}")
    assert_drift(guest, share, f"mount: {path} is mounted read-only")
    root(guest, f"mount -o remount,rw {path}")
    assert_ok(guest, share)

    # A directory of the volume bind-mounted over the share: the same device, not its root.
    root(guest, f"mkdir -p {path}/sub && mount --bind {path}/sub {path}")
    assert_drift(guest, share, f"mount: {path} mounts /sub of volume {share.volume_id}, not")
    root(guest, f"umount {path}")
    assert_ok(guest, share)

    # The disk filled (97% of what is free), then room made again.
    root(
        guest,
        f"free=$(df --output=avail -B1 {path} | tail -n 1); "
        f"fallocate -l $((free / 100 * 97)) {path}/filler; sync",
    )
    assert_drift(guest, share, f"space: {path} is ")
    root(guest, f"rm {path}/filler")
    assert_ok(guest, share)

    # Cinder extended the volume, ensure has not run yet: the filesystem is not grown.
    guest.resize_volume(share.volume_id, "2G")
    assert_drift(guest, share, "size: the filesystem is 1073741824 bytes on a volume of")
    # The share declared bigger than the volume this server sees: the extend did not arrive.
    assert_drift(
        guest,
        replace(share, size_gib=3),
        "size: the filesystem is 1073741824 bytes",
        f"size: volume {share.volume_id} is 2147483648 bytes here, less than the declared 3 GiB",
    )
    share = shares.update(share, size_gib=2)
    assert_ok(guest, share)


def test_cifs_drift_is_reported_by_aspect(guest: Guest, shares: Shares) -> None:
    share = shares.params("chk-cifs", shares.volume(), "CIFS", (ro(HOST),))
    shares.ensure(share)

    # A client added to hosts allow by hand.
    root(guest, f"net conf setparm chk-cifs 'hosts allow' '{HOST} {OTHER_CLIENT}'")
    assert_drift(
        guest, share, f"client: {OTHER_CLIENT} is in the Samba share's hosts allow but has no"
    )
    # A wildcard typed by hand is named as it is (never expanded to file names).
    root(guest, f"net conf setparm chk-cifs 'hosts allow' '{HOST} *'")
    assert_drift(guest, share, "client: * is in the Samba share's hosts allow but has no")
    # hosts allow replaced: the declared client is out, another is in.
    root(guest, f"net conf setparm chk-cifs 'hosts allow' '{OTHER_CLIENT}'")
    assert_drift(
        guest,
        share,
        f"client: {HOST} is declared but not in the Samba share's hosts allow",
        f"client: {OTHER_CLIENT} is in the Samba share's hosts allow but has no",
    )
    shares.ensure(share)
    assert_ok(guest, share)

    # The level changed from ro to rw, and a parameter ensure never sets.
    root(guest, "net conf setparm chk-cifs 'read only' no")
    root(guest, "net conf setparm chk-cifs 'write list' nobody")
    assert_drift(
        guest,
        share,
        "client: the Samba share has read only = no, but its clients are declared ro",
        "samba: the Samba share has 'write list = nobody', which ensure does not set",
    )
    shares.ensure(share)

    # The Samba share deleted.
    root(guest, "net conf delshare chk-cifs 2>/dev/null")
    assert_drift(guest, share, "samba: the Samba registry has no share chk-cifs")
    shares.ensure(share)
    assert_ok(guest, share)


def test_a_volume_not_attached_cannot_be_checked(guest: Guest, shares: Shares) -> None:
    volume_id = shares.volume()
    share = shares.params("chk-gone", volume_id, "NFS", (rw(HOST),))
    shares.ensure(share)
    shares.delete(share)
    guest.detach_volume(volume_id)

    result = check(guest, share)
    assert result.returncode == 1, output(result)
    assert result.stdout == "", output(result)
    assert f"volume {volume_id} is not attached to this server" in result.stderr, output(result)


def test_verify_reads_what_the_real_check_prints(guest: Guest, shares: Shares) -> None:
    """fleet verify's parser (share_report), fed the real script's output and exit status."""
    share = shares.params("chk-verify", shares.volume(), "NFS", (rw(HOST),))
    shares.ensure(share)

    def verified(params: GuestShare) -> tuple[VerifiedState, tuple[str, ...]]:
        result = check(guest, params)
        report = share_report(
            params.name, Completed(result.returncode, result.stdout, result.stderr)
        )
        assert report.share == params.name
        return report.state, report.findings

    assert verified(share) == (VerifiedState.OK, ())

    root(
        guest,
        "exportfs -u 10.0.2.2:/shares/chk-verify; sed -i '\\# /shares/chk-verify #d' /etc/fstab",
    )
    state, findings = verified(share)
    assert state is VerifiedState.DRIFT
    # (Its one client unexported, the path is not exported at all.)
    assert sorted(f.partition(":")[0] for f in findings) == ["export", "fstab"], findings
    shares.ensure(share)

    gone = replace(share, volume_id="0123456789abcdef0123-not-attached")
    state, findings = verified(gone)
    assert state is VerifiedState.UNKNOWN
    assert len(findings) == 1, findings
    assert "is not attached to this server" in findings[0], findings
