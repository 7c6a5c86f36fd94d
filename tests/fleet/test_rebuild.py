"""A lost service instance: ``fleet rebuild`` brings every share back on a new server, and
``fleet destroy`` of a stack whose server is gone never dials it.

The stand-in's Nova (``standin/nova.py``) is what makes these tests able to fail: a server made
again gets a new id, an attachment's id carries its server's, a server deleted out of band
(``deleted_servers``) or one that never answers (``silent_servers``) answers no SSH, and every
share command the engine runs dials its connection's host, where the stack's server holding
that address answers it, or nothing does and the command costs its dial bound and fails.
"""

from __future__ import annotations

from typing import Any

import yaml

from dhss_components.fleet.results import EXIT_FAILED, EXIT_OK
from tests.fleet.fleet_env import Bed, write_yaml

INSTANCE = "openstack:compute/instance:Instance"
VOLUME = "openstack:blockstorage/volume:Volume"
ATTACHMENT = "openstack:compute/volumeAttach:VolumeAttach"
PORT = "openstack:networking/port:Port"
COMMAND = "command:remote:Command"
SHARES = ("share0", "scratch")
BOUND = 300
"""max_time_to_build_instance's default: how long a command redials a silent address."""


def one_tenant_two_shares(bed: Bed) -> str:
    path = bed.tenants([1])
    document = yaml.safe_load(path.read_text())
    document["tenants"]["tenant-01"]["shares"].append(
        {"name": "scratch", "size": 5, "share_proto": "NFS"}
    )
    return str(write_yaml(path, document))


def of_type(resources: list[dict[str, Any]], typ: str) -> list[dict[str, Any]]:
    return [r for r in resources if r["type"] == typ]


def by_name(resources: list[dict[str, Any]], typ: str) -> dict[str, str]:
    return {r["urn"].split("::")[-1]: r["id"] for r in of_type(resources, typ)}


def built(bed: Bed) -> tuple[str, dict[str, Any]]:
    tenants = one_tenant_two_shares(bed)
    up = bed.fleet("up", tenants)
    assert up.code == EXIT_OK, up.stdout + up.stderr
    (server,) = of_type(bed.resources("tenant-01"), INSTANCE)
    return tenants, server


def test_a_lost_server_is_rebuilt_on_its_ports_with_every_share_back_on_it(bed: Bed) -> None:
    tenants, old = built(bed)
    before = bed.resources("tenant-01")
    exports = bed.fleet("status", tenants).rows()["tenant-01"][-1]
    # Out of band: openstack server delete (Nova detaches the volumes as it goes).
    bed.settings(deleted_servers=[old["id"]])
    calls, ran = len(bed.calls()), len(bed.ssh_runs())

    rebuilt = bed.fleet("rebuild", tenants)

    assert rebuilt.code == EXIT_OK, rebuilt.stdout + rebuilt.stderr
    row = rebuilt.rows()["tenant-01"]
    assert row[1:3] == ["rebuild", "ok"]
    assert row[-1] == exports  # the same ports, so the same export locations
    after = bed.resources("tenant-01")
    (new,) = of_type(after, INSTANCE)
    assert new["id"] != old["id"]
    assert f"new server {new['id']} in place of {old['id']}, on the same ports" in rebuilt.stdout
    # The same ports (and addresses), the same volumes: only the server and what hangs on it
    # are new.
    assert new["inputs"]["networks"] == old["inputs"]["networks"]
    assert by_name(after, PORT) == by_name(before, PORT)
    volumes = by_name(after, VOLUME)
    assert volumes == by_name(before, VOLUME)
    attached = {
        a["inputs"]["volumeId"]: a["inputs"]["instanceId"] for a in of_type(after, ATTACHMENT)
    }
    assert attached == {volume: new["id"] for volume in volumes.values()}
    # Every share's command ran again, on the new server: the old delete (nothing left to
    # undo there), then ensure. No command dialled an address nobody answers.
    runs = bed.ssh_runs()[ran:]
    for share in SHARES:
        steps = [(r["step"], r["action"], r["server"]) for r in runs if r["share"] == share]
        assert steps == [("delete", "delete", new["id"]), ("create", "ensure", new["id"])]
    assert [r["dial_seconds"] for r in runs] == [0] * 4
    assert not [r for r in runs if r["error"]]
    # What it sent: the stack's config, a refresh, then an up.
    sent = [c.command[0] for c in bed.calls()[calls:] if c.stack == "tenant-01"]
    assert sent.index("refresh") < sent.index("up")

    # The new server is there: a second rebuild is refused, and nothing runs.
    ran = len(bed.ssh_runs())
    again = bed.fleet("rebuild", tenants)
    assert again.code == EXIT_FAILED
    assert again.rows()["tenant-01"][2] == "refused"
    assert len(bed.ssh_runs()) == ran


def test_rebuild_refuses_while_nova_still_has_the_server(bed: Bed) -> None:
    tenants, server = built(bed)
    calls, ran = len(bed.calls()), len(bed.ssh_runs())

    refused = bed.fleet("rebuild", tenants)

    assert refused.code == EXIT_FAILED
    assert refused.rows()["tenant-01"][2] == "refused"
    assert f"server {server['id']} still exists in Nova" in refused.stdout
    assert f"openstack server delete {server['id']}; then run rebuild again" in refused.stdout
    assert "up" not in [c.command[0] for c in bed.calls()[calls:]]
    assert len(bed.ssh_runs()) == ran
    assert of_type(bed.resources("tenant-01"), INSTANCE) == [server]


def test_rebuild_refuses_when_a_share_volume_is_gone_too(bed: Bed) -> None:
    tenants, server = built(bed)
    bed.settings(
        deleted_servers=[server["id"]],
        cloud_changes={"tenant-01": {"share-server-share-scratch-volume": "deleted"}},
    )
    calls = len(bed.calls())

    refused = bed.fleet("rebuild", tenants)

    assert refused.code == EXIT_FAILED
    assert refused.rows()["tenant-01"][2] == "refused"
    assert "share-server-share-scratch-volume: gone from Cinder too" in refused.stdout
    assert "up" not in [c.command[0] for c in bed.calls()[calls:]]


def test_destroy_of_a_stack_whose_server_is_gone_dials_nothing(bed: Bed) -> None:
    tenants, server = built(bed)
    commands = sorted(r["urn"] for r in of_type(bed.resources("tenant-01"), COMMAND))
    bed.settings(deleted_servers=[server["id"]])
    calls, ran = len(bed.calls()), len(bed.ssh_runs())

    destroyed = bed.fleet("destroy", tenants)

    assert destroyed.code == EXIT_OK, destroyed.stdout
    assert (
        "tenant-01: the server was gone: its 2 share commands left the state without dialling "
        "it (the guest's mounts and exports went with it); kept 2 protected resources"
    ) in destroyed.stdout
    assert bed.ssh_runs()[ran:] == []
    # Only the server was read from the cloud; the commands left the state unrun.
    mine = [c for c in bed.calls()[calls:] if c.stack == "tenant-01"]
    (refresh,) = [c for c in mine if c.command == ["refresh"]]
    assert refresh.argv[refresh.argv.index("--target") + 1] == server["urn"]
    (removed,) = [c for c in mine if c.command == ["state", "remove"]]
    assert sorted(removed.argv[removed.argv.index("--") + 1 :]) == commands
    left = bed.resources("tenant-01")
    assert of_type(left, COMMAND) == []
    assert len(of_type(left, VOLUME)) == len(SHARES)


def test_destroy_of_a_server_that_never_answers_is_bounded_and_says_what_to_do(
    bed: Bed,
) -> None:
    tenants, server = built(bed)
    # Nova still has it, but its host died: nothing answers at its address.
    bed.settings(silent_servers=[server["id"]])
    ran = len(bed.ssh_runs())

    stuck = bed.fleet("destroy", tenants)

    assert stuck.code == EXIT_FAILED
    assert f"server {server['id']} does not answer" in stuck.stdout
    assert f"openstack server delete {server['id']}; then run destroy again" in stuck.stdout
    # The first command's delete redialled for max_time_to_build_instance, then gave up.
    (dial,) = bed.ssh_runs()[ran:]
    assert (dial["step"], dial["server"], dial["dial_seconds"]) == ("delete", None, BOUND)

    # The operator deletes it, as told: the destroy then dials nothing.
    bed.settings(silent_servers=[], deleted_servers=[server["id"]])
    ran = len(bed.ssh_runs())
    done = bed.fleet("destroy", tenants)
    assert done.code == EXIT_OK, done.stdout
    assert bed.ssh_runs()[ran:] == []
