"""What keeps users' data and secrets safe, as the engine would see the program."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

from dhss_components.share_script import (
    AccessClient,
    ShareScriptParams,
    render_delete_command,
    render_ensure_command,
)
from dhss_components.simulated_cloud import SECRET_SIG, SimulatedCloud
from tests.clouds import devstack_cloud
from tests.stack_run import run_stack

COMMAND = "command:remote:Command"
VOLUME = "openstack:blockstorage/volume:Volume"
ATTACH = "openstack:compute/volumeAttach:VolumeAttach"


def plain_occurrences(value: Any, needle: str, *, inside_secret: bool = False) -> int:
    """How often `needle` appears in serialized inputs outside a secret wrapper."""
    if isinstance(value, dict):
        secret = value.get("4dabf18193072939515e22adb298388d") == SECRET_SIG
        return sum(
            plain_occurrences(v, needle, inside_secret=inside_secret or secret)
            for v in value.values()
        )
    if isinstance(value, list):
        return sum(plain_occurrences(v, needle, inside_secret=inside_secret) for v in value)
    return int(isinstance(value, str) and needle in value and not inside_secret)


def test_the_private_key_and_password_are_secret_everywhere(
    cloud: SimulatedCloud, config: dict[str, Any]
) -> None:
    config["backend"]["service_instance_password"] = "s3cr3t-manila"
    run = run_stack(cloud, config, secret_keys=("backend",))
    key_body = Path(config["backend"]["path_to_private_key"]).read_text().splitlines()[1]
    found_in_connection = 0
    for registration in run.monitor.registrations.values():
        for secret in (key_body, "s3cr3t-manila"):
            assert plain_occurrences(registration.raw_inputs, secret) == 0, registration.name
        if registration.type == COMMAND:
            connection = registration.raw_inputs["connection"]
            assert connection["4dabf18193072939515e22adb298388d"] == SECRET_SIG
            found_in_connection += key_body in json.dumps(connection)
    assert found_in_connection == 1  # the key does reach the connection, wrapped
    outputs = json.dumps(run.outputs)
    assert key_body not in outputs
    assert "s3cr3t-manila" not in outputs
    # Nothing secret travels in the command text, whose failure messages the provider logs.
    command = run.inputs(COMMAND)
    assert key_body not in command["create"]
    assert "s3cr3t" not in command["create"]


def test_unexport_and_unmount_run_before_the_detach(
    cloud: SimulatedCloud, config: dict[str, Any]
) -> None:
    run = run_stack(cloud, config)
    command = run.monitor.named("share-server-share-projects-export")
    attachment = run.monitor.named("share-server-share-projects-attachment")
    # Pulumi deletes dependents first: the command's delete (unexport, umount) runs, then
    # Nova detaches the volume.
    assert attachment.urn in command.dependencies
    delete = run.inputs(COMMAND)["delete"]
    assert " -- delete " in delete.splitlines()[0]
    # Replacing the command never runs the old delete after the new create.
    assert command.delete_before_replace


def test_ssh_stays_open_until_the_commands_have_cleaned_up(
    cloud: SimulatedCloud, config: dict[str, Any]
) -> None:
    run = run_stack(cloud, config)
    command = run.monitor.named("share-server-share-projects-export")
    # On destroy Pulumi removes dependents first: the SSH rule, the group, the server and
    # the host plug all outlive the command's delete (unexport, unmount), which needs them.
    for needed in (
        "share-server-instance-tcp-22-10.254.0.14-32",
        "share-server-instance-security-group",
        "share-server-instance-server",
        "share-server-host-service-plug",
    ):
        assert run.monitor.named(needed).urn in command.dependencies, needed
    # The server itself does not wait for the host plug: they proceed in parallel.
    server = run.monitor.named("share-server-instance-server")
    assert run.monitor.named("share-server-host-service-plug").urn not in server.dependencies


def test_the_command_is_the_rendered_script_byte_for_byte(
    cloud: SimulatedCloud, config: dict[str, Any]
) -> None:
    run = run_stack(cloud, config)
    share = run.outputs["shares"]["projects"]
    params = ShareScriptParams(
        name="projects",
        protocol="NFS",
        size_gib=10,
        clients=(AccessClient("rw", ipaddress.IPv4Network("10.0.0.0/26")),),
        mount_root="/shares",
        fstype="ext4",
        device_timeout=120,
    )
    command = run.inputs(COMMAND)
    ensure = render_ensure_command(params, share["volume_id"])
    assert command["create"] == command["update"] == ensure
    assert command["delete"] == render_delete_command(params)


def test_the_command_never_needs_accept_env(cloud: SimulatedCloud, config: dict[str, Any]) -> None:
    command = run_stack(cloud, config).inputs(COMMAND)
    assert "environment" not in command
    assert command["addPreviousOutputInEnv"] is False  # else the provider calls Setenv
    assert command["create"].startswith("sudo -n ")  # no tty over SSH: sudo must not prompt


def test_ssh_dials_for_as_long_as_a_boot_takes(
    cloud: SimulatedCloud, config: dict[str, Any]
) -> None:
    run = run_stack(cloud, config)
    connection = run.monitor.named("share-server-share-projects-export").raw_inputs["connection"]
    value = connection["value"]
    # The provider's default of 10 dials gives up after ~8 s; Manila waits 300 s for SSH.
    assert value["dialErrorLimit"] == 60
    assert value["user"] == "manila"
    assert value["host"] == run.outputs["share_server"]["ssh_address"]
    timeouts = run.monitor.named("share-server-share-projects-export").custom_timeouts
    assert timeouts == {"create": "17m", "update": "17m", "delete": "17m"}


def test_volumes_are_protected_unless_the_operator_says_so(
    cloud: SimulatedCloud, config: dict[str, Any]
) -> None:
    run = run_stack(cloud, config)
    assert run.monitor.named("share-server-share-projects-volume").protect
    config["backend"]["protect_volumes"] = False
    run = run_stack(devstack_cloud(), config)
    assert not run.monitor.named("share-server-share-projects-volume").protect


def test_a_new_image_under_the_same_name_never_rebuilds(
    cloud: SimulatedCloud, config: dict[str, Any]
) -> None:
    run = run_stack(cloud, config)
    server = run.monitor.named("share-server-instance-server")
    # (and no new host key in its user data: docs in the README's Safety section)
    assert set(server.ignore_changes) == {"imageId", "imageName", "userData"}


def _export_inputs(cloud: SimulatedCloud) -> dict[str, Any]:
    return dict(cloud.one(COMMAND).inputs)


def test_a_rule_change_is_an_update_in_place(cloud: SimulatedCloud, config: dict[str, Any]) -> None:
    run_stack(cloud, config)
    before = _export_inputs(cloud)
    volume_before = dict(cloud.one(VOLUME).inputs)
    attach_before = dict(cloud.one(ATTACH).inputs)

    config["shares"][0]["access_rules"] = [
        {"access_type": "ip", "access_to": "10.0.0.9", "access_level": "ro"}
    ]
    run_stack(cloud, config)
    after = _export_inputs(cloud)

    # Only the script's arguments changed: the provider runs `update` (the same idempotent
    # script) on the same share. Replacement comes only from `triggers`, which did not move.
    assert after["triggers"] == before["triggers"]
    assert after["create"] != before["create"]
    assert "--client ro:10.0.0.9" in after["update"]
    assert "--client rw:10.0.0.0/26" not in after["update"]
    assert cloud.one(VOLUME).inputs == volume_before
    assert cloud.one(ATTACH).inputs == attach_before


def test_a_new_protocol_replaces_the_export_not_the_volume(
    cloud: SimulatedCloud, config: dict[str, Any]
) -> None:
    run_stack(cloud, config)
    before = _export_inputs(cloud)
    volume_before = dict(cloud.one(VOLUME).inputs)
    config["shares"][0]["share_proto"] = "CIFS"
    run = run_stack(cloud, config)
    after = _export_inputs(cloud)
    # `triggers` moved: the old command's delete (unexport NFS, unmount) runs first, then the
    # new create mounts the same volume and serves it over CIFS.
    assert after["triggers"] != before["triggers"]
    assert after["triggers"][0] == before["triggers"][0]  # the same attachment
    assert run.monitor.named("share-server-share-projects-export").delete_before_replace
    assert "--protocol nfs" in before["delete"]
    assert "--protocol cifs" in after["create"]
    assert cloud.one(VOLUME).inputs == volume_before


def test_growing_a_share_extends_the_volume_online(
    cloud: SimulatedCloud, config: dict[str, Any]
) -> None:
    run_stack(cloud, config)
    before = dict(cloud.one(VOLUME).inputs)
    triggers = _export_inputs(cloud)["triggers"]
    config["shares"][0]["size"] = 20
    run_stack(cloud, config)
    after = dict(cloud.one(VOLUME).inputs)
    assert {k for k in after if after[k] != before.get(k)} == {"size"}
    assert after["enableOnlineResize"] is True  # Cinder extends the attached volume
    command = _export_inputs(cloud)
    assert command["triggers"] == triggers
    assert "--size-gib 20" in command["update"]  # the script grows the filesystem


def test_names_never_collide_between_tenants(cloud: SimulatedCloud, config: dict[str, Any]) -> None:
    # A second tenant on the same cloud and service network, behind its own router.
    net_b = cloud.add_network("tenant-b")
    subnet_b = cloud.add_subnet(net_b, "10.0.0.0/26")  # the same CIDR: tenants overlap freely
    cloud.add_router(subnet_b)
    a = run_stack(cloud, config, stack="tenant-a")
    config["shareNetwork"] = {"neutron_net_id": net_b, "neutron_subnet_id": subnet_b}
    b = run_stack(cloud, config, stack="tenant-b")

    def names(stack: str, typ: str) -> set[str]:
        return {
            r.inputs["name"] for (s, t, _), r in cloud.resources.items() if s == stack and t == typ
        }

    for typ in (
        "openstack:compute/keypair:Keypair",
        "openstack:networking/secGroup:SecGroup",
        "openstack:compute/instance:Instance",
        "openstack:networking/subnet:Subnet",
        VOLUME,
    ):
        assert names("tenant-a", typ).isdisjoint(names("tenant-b", typ)), typ
    server_a, server_b = a.outputs["share_server"], b.outputs["share_server"]
    assert server_a["share_server_id"] != server_b["share_server_id"]
    # Sequential runs on one service network never overlap either.
    assert (server_a["service_subnet_cidr"], server_b["service_subnet_cidr"]) == (
        "10.254.0.0/28",
        "10.254.0.16/28",
    )


def test_a_replaced_server_or_keypair_frees_what_it_holds_first(
    cloud: SimulatedCloud, config: dict[str, Any]
) -> None:
    # The server's ports outlive it (Nova refuses a port another server holds), and a new
    # keypair takes the old one's name (Nova refuses a second): both go before their successor.
    run = run_stack(cloud, config)
    assert run.monitor.named("share-server-instance-server").delete_before_replace
    assert run.monitor.named("share-server-instance-keypair").delete_before_replace
