"""CIFS shares on a real guest: Samba registry shares, reached with smbclient from the host.

The host reaches the guest from HOST (10.0.2.2): "hosts allow" with HOST admits the host's
smbclient, anything else shuts it out.
"""

from __future__ import annotations

from tests.guest.harness import Guest
from tests.guest.test_share_helpers import (
    HOST,
    NOT_THE_HOST,
    Shares,
    assert_smb_refused,
    look,
    output,
    ro,
    root,
    rw,
    smb_read,
    smb_write,
)


def test_a_rule_for_the_host_lets_it_put_and_get(guest: Guest, shares: Shares) -> None:
    share = shares.params("cifs-rw", shares.volume(), "CIFS", (rw(HOST), rw("10.0.3.0/24")))
    shares.ensure(share)

    put = smb_write(guest, "cifs-rw", "from-host.txt", "written over SMB\n")
    assert put.returncode == 0, output(put)
    got, text = smb_read(guest, "cifs-rw", "from-host.txt")
    assert text == "written over SMB\n", output(got)
    assert root(guest, "cat /shares/cifs-rw/from-host.txt").stdout == "written over SMB\n"

    # Manila's parameters (CIFSHelperIPAccess), hosts allow = exactly the rules.
    assert look(guest).samba_shares["cifs-rw"] == {
        "path": "/shares/cifs-rw",
        "guest ok": "yes",
        "read only": "no",
        "browseable": "yes",
        "create mask": "0755",
        "hosts deny": "0.0.0.0/0",
        "hosts allow": f"{HOST} 10.0.3.0/24",
        "root preexec": "/usr/bin/mountpoint -q /shares/cifs-rw",
        "root preexec close": "yes",
    }


def test_the_host_is_refused_when_no_rule_admits_it(guest: Guest, shares: Shares) -> None:
    share = shares.params("cifs-others", shares.volume(), "CIFS", (rw(NOT_THE_HOST),))
    shares.ensure(share)

    assert_smb_refused(smb_write(guest, "cifs-others", "x.txt", "no"))
    assert root(guest, "ls -A /shares/cifs-others").stdout.split() == ["lost+found"]

    # The same client, the same put, once a rule admits it: the refusal was the rules'.
    share = shares.update(share, clients=(rw(NOT_THE_HOST), rw(HOST)))
    put = smb_write(guest, "cifs-others", "x.txt", "yes")
    assert put.returncode == 0, output(put)
    assert root(guest, "cat /shares/cifs-others/x.txt").stdout == "yes"


def test_no_rules_admit_nobody_outside(guest: Guest, shares: Shares) -> None:
    share = shares.params("cifs-none", shares.volume(), "CIFS", ())
    shares.ensure(share)

    assert look(guest).samba_shares["cifs-none"]["hosts allow"] == "127.0.0.1"  # Manila's
    root(guest, "echo there > /shares/cifs-none/anything")
    got, text = smb_read(guest, "cifs-none", "anything")
    assert_smb_refused(got)
    assert text == ""
    shares.update(share, clients=(ro(HOST),))
    got, text = smb_read(guest, "cifs-none", "anything")
    assert text == "there\n", output(got)


def test_an_ro_share_refuses_put(guest: Guest, shares: Shares) -> None:
    share = shares.params("cifs-ro", shares.volume(), "CIFS", (ro(HOST),))
    shares.ensure(share)
    root(guest, "echo 'made in the guest' > /shares/cifs-ro/inside.txt")

    got, text = smb_read(guest, "cifs-ro", "inside.txt")
    assert text == "made in the guest\n", output(got)
    assert_smb_refused(smb_write(guest, "cifs-ro", "from-host.txt", "must not land"))
    assert root(guest, "ls -A /shares/cifs-ro").stdout.split() == ["inside.txt", "lost+found"]
    assert look(guest).samba_shares["cifs-ro"]["read only"] == "yes"


def test_mixed_rw_and_ro_rules_are_refused_before_anything_is_made(
    guest: Guest, shares: Shares
) -> None:
    share = shares.params("cifs-mixed", shares.volume(), "CIFS", (rw(HOST), ro(NOT_THE_HOST)))
    result = shares.ensure(share, ok=False)

    assert result.returncode == 1, output(result)
    assert "CIFS share with both rw and ro access rules" in result.stderr
    view = look(guest)
    assert "cifs-mixed" not in view.samba_shares
    assert "/shares/cifs-mixed" not in view.mounts
    assert "cifs-mixed" not in view.directories
    shares.made.pop("cifs-mixed")  # nothing to delete


def test_a_removed_rule_is_gone_and_the_data_stays(guest: Guest, shares: Shares) -> None:
    share = shares.params("cifs-rules", shares.volume(), "CIFS", (rw(HOST),))
    shares.ensure(share)
    assert smb_write(guest, "cifs-rules", "kept.txt", "kept\n").returncode == 0

    share = shares.update(share, clients=(rw(NOT_THE_HOST),))
    got, text = smb_read(guest, "cifs-rules", "kept.txt")
    assert_smb_refused(got)
    assert text == ""
    assert look(guest).samba_shares["cifs-rules"]["hosts allow"] == NOT_THE_HOST

    share = shares.update(share, clients=(ro(HOST),))
    got, text = smb_read(guest, "cifs-rules", "kept.txt")
    assert text == "kept\n", output(got)
    assert_smb_refused(smb_write(guest, "cifs-rules", "late.txt", "no"))
    assert root(guest, "ls -A /shares/cifs-rules").stdout.split() == ["kept.txt", "lost+found"]
