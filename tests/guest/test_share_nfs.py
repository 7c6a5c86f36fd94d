"""NFS shares on a real guest: the access rules are what a client on the host meets.

The host reaches the guest from HOST (10.0.2.2), so a rule for HOST admits the host's NFS
client (libnfs, NFSv4) and any other rule must shut it out.
"""

from __future__ import annotations

from tests.guest.harness import Guest
from tests.guest.test_share_helpers import (
    HOST,
    NOT_THE_HOST,
    Shares,
    assert_nfs_read_only,
    assert_nfs_refused,
    look,
    nfs_list,
    nfs_read,
    nfs_write,
    output,
    ro,
    root,
    rw,
)

MANILA_OPTIONS = ("no_subtree_check", "no_root_squash")


def test_a_rule_for_the_host_lets_it_write_and_read(guest: Guest, shares: Shares) -> None:
    share = shares.params("nfs-rw", shares.volume(), "NFS", (rw(HOST),))
    shares.ensure(share)

    written = nfs_write(guest, "/shares/nfs-rw/from-host.txt", "written over NFS\n")
    assert written.returncode == 0, output(written)
    listing = nfs_list(guest, "/shares/nfs-rw")
    assert "from-host.txt" in listing.stdout, output(listing)
    read = nfs_read(guest, "/shares/nfs-rw/from-host.txt")
    assert read.stdout == "written over NFS\n", output(read)
    # ... and it is on the volume, not anywhere else.
    assert root(guest, "cat /shares/nfs-rw/from-host.txt").stdout == "written over NFS\n"

    entries = look(guest).exports_of("/shares/nfs-rw")
    assert len(entries) == 1, entries
    client, options = entries[0].rstrip(")").split("(")
    assert client == HOST
    assert {"rw", *MANILA_OPTIONS} <= set(options.split(",")), entries


def test_the_host_is_refused_when_no_rule_admits_it(guest: Guest, shares: Shares) -> None:
    rules = (rw(NOT_THE_HOST), ro("192.168.0.0/16"), rw("172.16.0.0/12"))
    share = shares.params("nfs-others", shares.volume(), "NFS", rules)
    shares.ensure(share)

    assert_nfs_refused(nfs_list(guest, "/shares/nfs-others"), "/shares/nfs-others")
    refused = nfs_write(guest, "/shares/nfs-others/x.txt", "no")
    assert_nfs_refused(refused, "/shares/nfs-others")
    assert root(guest, "ls -A /shares/nfs-others").stdout.split() == ["lost+found"]

    view = look(guest)
    clients = sorted(entry.split("(")[0] for entry in view.exports_of("/shares/nfs-others"))
    assert clients == sorted([NOT_THE_HOST, "192.168.0.0/16", "172.16.0.0/12"])
    assert view.exports_files["nfs-others.exports"].count("/shares/nfs-others ") == 3

    # The same client, the same requests, once a rule admits it: the refusal was the rules'.
    shares.update(share, clients=(*rules, rw(HOST)))
    assert nfs_list(guest, "/shares/nfs-others").returncode == 0
    written = nfs_write(guest, "/shares/nfs-others/x.txt", "yes")
    assert written.returncode == 0, output(written)
    assert root(guest, "cat /shares/nfs-others/x.txt").stdout == "yes"


def test_an_ro_rule_is_read_only(guest: Guest, shares: Shares) -> None:
    share = shares.params("nfs-ro", shares.volume(), "NFS", (ro("10.0.2.0/24"),))
    shares.ensure(share)
    root(guest, "echo 'made in the guest' > /shares/nfs-ro/inside.txt")

    read = nfs_read(guest, "/shares/nfs-ro/inside.txt")
    assert read.stdout == "made in the guest\n", output(read)
    assert_nfs_read_only(nfs_write(guest, "/shares/nfs-ro/from-host.txt", "must not land"))
    assert root(guest, "ls -A /shares/nfs-ro").stdout.split() == ["inside.txt", "lost+found"]


def test_no_rules_means_not_exported(guest: Guest, shares: Shares) -> None:
    share = shares.params("nfs-none", shares.volume(), "NFS", ())
    shares.ensure(share)

    view = look(guest)
    assert view.exports_of("/shares/nfs-none") == []
    assert "/shares/nfs-none" in view.mounts
    assert_nfs_refused(nfs_list(guest, "/shares/nfs-none"), "/shares/nfs-none")
    # A rule for the host is all it takes.
    shares.update(share, clients=(rw(HOST),))
    listed = nfs_list(guest, "/shares/nfs-none")
    assert listed.returncode == 0, output(listed)


def test_the_exports_are_exactly_the_rules_after_each_change(guest: Guest, shares: Shares) -> None:
    share = shares.params("nfs-rules", shares.volume(), "NFS", (rw(HOST),))
    shares.ensure(share)
    assert nfs_write(guest, "/shares/nfs-rules/kept.txt", "kept\n").returncode == 0
    volume_uuid = look(guest).mounts["/shares/nfs-rules"][1]

    # rw -> ro for the host: it still reads, no longer writes.
    share = shares.update(share, clients=(ro(HOST),))
    assert nfs_read(guest, "/shares/nfs-rules/kept.txt").stdout == "kept\n"
    assert_nfs_read_only(nfs_write(guest, "/shares/nfs-rules/late.txt", "no"))
    assert "late.txt" not in root(guest, "ls -A /shares/nfs-rules").stdout

    # The host's rule removed, another added: the host is out, the removed rule is gone.
    share = shares.update(share, clients=(rw(NOT_THE_HOST),))
    assert_nfs_refused(nfs_list(guest, "/shares/nfs-rules"), "/shares/nfs-rules")
    view = look(guest)
    assert [e.split("(")[0] for e in view.exports_of("/shares/nfs-rules")] == [NOT_THE_HOST]

    # Back in: the data was never touched, the filesystem is the same one.
    share = shares.update(share, clients=(rw(HOST),))
    assert nfs_read(guest, "/shares/nfs-rules/kept.txt").stdout == "kept\n"
    view = look(guest)
    assert view.mounts["/shares/nfs-rules"][1] == volume_uuid
    assert [e.split("(")[0] for e in view.exports_of("/shares/nfs-rules")] == [HOST]
