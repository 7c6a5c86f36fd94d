"""The commands the program declares are the commands that work on a real guest, byte for byte.

The program runs under the simulated cloud; each share's `remote.Command` create and delete
strings are taken from what it registered and sent to the guest unchanged, with a volume
whose virtio serial is the volume id the program put in the command.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from tests.clouds import devstack_cloud
from tests.guest.harness import HOST_ADDRESS_SEEN_BY_GUEST, Guest
from tests.stack_run import base_config, run_stack, write_key_pair


def declared_commands() -> dict[str, dict[str, str]]:
    """Per share: volume id, create, update and delete, exactly as the program declares them."""
    config = base_config(write_key_pair(Path(tempfile.mkdtemp())))
    config["shares"] = [
        {
            "name": "declared-nfs",
            "size": 1,
            "share_proto": "NFS",
            "access_rules": [{"access_type": "ip", "access_to": HOST_ADDRESS_SEEN_BY_GUEST}],
        },
        {
            "name": "declared-cifs",
            "size": 1,
            "share_proto": "CIFS",
            "access_rules": [{"access_type": "ip", "access_to": HOST_ADDRESS_SEEN_BY_GUEST}],
        },
    ]
    config["backend"]["max_time_to_attach"] = 30
    cloud = devstack_cloud()
    run = run_stack(cloud, config)  # on the test's own event loop (tests/conftest.py)
    commands = {}
    for share_name, share in run.outputs["shares"].items():
        command = cloud.one("command:remote:Command", f"share-{share_name}-export").inputs
        commands[share_name] = {"volume_id": share["volume_id"], **command}
    return commands


def test_the_declared_commands_export_and_unexport_on_the_guest(guest: Guest) -> None:
    commands = declared_commands()
    for name, command in commands.items():
        assert command["create"] == command["update"]
        guest.attach_volume(command["volume_id"], "1G")
        created = guest.ssh(command["create"])
        assert created.returncode == 0, created.stderr
        assert f"share {name}" in created.stderr  # each step logged with the share's name
        # Run again: the same bytes converge without change (what `update` does).
        again = guest.ssh(command["update"])
        assert again.returncode == 0, again.stderr

    exports = guest.ssh("sudo -n exportfs -v", check=True).stdout
    assert "/shares/declared-nfs" in exports
    assert HOST_ADDRESS_SEEN_BY_GUEST in exports
    cifs = guest.ssh("sudo -n net conf showshare declared-cifs", check=True).stdout
    assert "path = /shares/declared-cifs" in cifs
    assert f"hosts allow = {HOST_ADDRESS_SEEN_BY_GUEST}" in cifs

    for command in commands.values():
        deleted = guest.ssh(command["delete"])
        assert deleted.returncode == 0, deleted.stderr
        guest.detach_volume(command["volume_id"])
    assert "/shares/declared-nfs" not in guest.ssh("sudo -n exportfs -v", check=True).stdout
    gone = guest.ssh("sudo -n net conf showshare declared-cifs")
    assert gone.returncode != 0
    # (net's own word that the registry has no such share, not any failure of net.)
    assert "SBC_ERR_NO_SUCH_SERVICE" in gone.stdout + gone.stderr, gone
    mounts = guest.ssh("findmnt -rn -o TARGET", check=True).stdout
    assert "/shares/declared" not in mounts
