"""Every step of the share script can be cut, and the same command run again finishes the job.

share.sh names the boundaries between the steps that change the guest (``checkpoint NAME``).
The tests here kill the script with SIGKILL at every boundary of an action, as a crash, a
reboot or a lost ssh session would stop it. After each kill they check what the guest holds:
the step got exactly that far, nothing points at a filesystem that is not mounted there (no
fstab line, export or Samba share), a removed client is already out. Then the same command
runs again, and is killed at the next boundary, and so on: each run takes over from the one
cut short before it. The last run goes to the end, and the end state is the one asked for,
with the data on the volume intact. (The test hook, DHSS_SHARE_STOP_AT, only stops the script
where it stands; the steps are the production code.)
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.guest.harness import Guest
from tests.guest.test_share_helpers import (
    COPY,
    CREATE,
    DELETE,
    HOST,
    UPDATE,
    WITHDRAW,
    Shares,
    ShareState,
    assert_host_refused_by_the_rules,
    assert_host_served,
    checkpoints,
    put_data,
    rw,
    share_state,
)

PROTOCOLS = ["NFS", "CIFS"]


def test_every_boundary_of_the_script_is_killed_in_some_test() -> None:
    assert checkpoints() == {*CREATE, *UPDATE, *DELETE, *WITHDRAW, *COPY}


def _served(state: ShareState, protocol: str) -> bool:
    return bool(state.exported if protocol == "NFS" else state.samba)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_create_killed_at_every_step_finishes_when_run_again(
    guest: Guest, shares: Shares, protocol: str
) -> None:
    name = f"made-{protocol.lower()}"
    share = shares.params(name, shares.volume(), protocol, (rw(HOST),))
    made_uuid = ""
    for step in CREATE:
        when = f"create killed at ensure:{step}"
        result = shares.ensure(share, stop_at=step)
        state = share_state(guest, share)
        state.assert_nothing_points_at_an_unmounted_filesystem(when)
        if step == "marked":  # the UUID is noted, the volume still blank
            assert (state.volume_uuid, state.mounted) == ("", ""), f"{when}: {state}"
        elif step == "formatted":
            assert state.volume_uuid, f"{when}: {state}"
            assert not state.mounted, f"{when}: {state}"
            made_uuid = state.volume_uuid
        else:  # made once: every run after it uses that filesystem
            assert "not formatted" in result.stderr, f"{when}: {result.stderr}"
            assert state.volume_uuid == made_uuid, f"{when}: {state}"
        reached = CREATE.index(step)
        assert (state.mounted == "volume") == (reached >= CREATE.index("mounted")), when
        assert bool(state.fstab) == (reached >= CREATE.index("in-fstab")), when
        assert (state.root_mode == "777") == (reached >= CREATE.index("opened")), when
        written = reached >= CREATE.index("rules-written")
        if protocol == "NFS":  # the exports file first, then exportfs
            assert bool(state.exports_file) == written, f"{when}: {state}"
            written = reached >= CREATE.index("exported")
        assert _served(state, protocol) == written, f"{when}: {state}"

    shares.ensure(share)

    state = share_state(guest, share)
    assert state.volume_uuid == made_uuid
    assert state.mounted == "volume", state
    assert state.root_mode == "777", state  # Manila's chmod, never missed
    assert state.fstab == [f"UUID={made_uuid} /shares/{name} ext4 defaults,nofail 0 2"]
    if protocol == "NFS":
        assert state.exported == [f"{HOST} rw"], state
    else:
        assert state.samba["hosts allow"] == HOST, state
    assert_host_served(guest, share, put_data(guest, share), "after the create")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_update_killed_at_every_step_finishes_when_run_again(
    guest: Guest, shares: Shares, protocol: str
) -> None:
    # One update removes the host's rule, adds two others and grows the volume.
    volume = shares.volume("1G")
    before = shares.params(f"changed-{protocol.lower()}", volume, protocol, (rw(HOST),))
    shares.ensure(before)
    sha256 = put_data(guest, before)
    guest.resize_volume(volume, "2G")  # Cinder's extend, before the command's update
    after = replace(before, clients=(rw("10.0.3.1"), rw("10.0.3.2")), size_gib=2)
    for step in UPDATE:
        when = f"update killed at ensure:{step}"
        shares.ensure(after, stop_at=step)
        state = share_state(guest, after)
        state.assert_nothing_points_at_an_unmounted_filesystem(when)
        # Access is cut first: from the first boundary on, the removed client is out.
        assert_host_refused_by_the_rules(guest, after, state, when)
        assert state.size_mib < 1100, f"{when}: grown before the rules: {state}"
        assert state.data_sha256 == sha256, when

    shares.ensure(after)

    state = share_state(guest, after)
    if protocol == "NFS":
        assert state.exported == ["10.0.3.1 rw", "10.0.3.2 rw"], state
    else:
        assert state.samba["hosts allow"] == "10.0.3.1 10.0.3.2", state
    assert state.size_mib > 1900, f"not grown: {state}"  # (2 GiB less the metadata)
    assert state.data_sha256 == sha256
    assert_host_refused_by_the_rules(guest, after, state, "after the update")
    back = replace(after, clients=(rw(HOST),))
    shares.ensure(back)
    assert_host_served(guest, back, sha256, "after the update")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_delete_killed_at_every_step_finishes_when_run_again(
    guest: Guest, shares: Shares, protocol: str
) -> None:
    share = shares.params(f"gone-{protocol.lower()}", shares.volume(), protocol, (rw(HOST),))
    shares.ensure(share)
    sha256 = put_data(guest, share)
    for step in DELETE:
        when = f"delete killed at delete:{step}"
        shares.delete(share, stop_at=step)
        state = share_state(guest, share)
        state.assert_nothing_points_at_an_unmounted_filesystem(when)
        # Access is cut first: the share is not served from the first boundary on.
        assert not state.samba, f"{when}: {state}"
        assert state.exports_file is None, f"{when}: {state}"
        # (NFS: the file is gone, its exports go next.)
        assert _served(state, protocol) == (step == "rules-removed" and protocol == "NFS"), when
        assert (state.mounted == "volume") == (step != "unmounted"), f"{when}: {state}"
        assert bool(state.fstab) == (DELETE.index(step) < DELETE.index("out-of-fstab")), when

    shares.delete(share)

    state = share_state(guest, share)
    assert (state.mounted, state.fstab, state.exported, state.samba) == ("", [], [], {}), state
    assert state.exports_file is None, state
    assert state.root_mode == "", f"the mount point is left: {state}"
    assert state.data_sha256 == sha256, "the data on the volume changed"
    # The share made again serves the same data.
    again = shares.ensure(share)
    assert "not formatted" in again.stderr
    assert_host_served(guest, share, sha256, "after the delete, made again")
