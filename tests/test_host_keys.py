"""Every share command pins the service instance's SSH host key, or says loudly it does not."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from dhss_components.host_keys import cloud_config
from dhss_components.simulated_cloud import SECRET_SIG, SimulatedCloud
from tests.stack_run import run_stack
from tests.test_config import only_problem

KEY = "tls:index/privateKey:PrivateKey"
SERVER = "share-server-instance-server"
GIVEN = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGJhc3Rpb24gaG9zdCBrZXkgYmFzdGlvbiBob3N0IGsh"


def connections(cloud: SimulatedCloud) -> list[dict[str, Any]]:
    """Each share command's SSH connection (a secret as a whole: it carries the key)."""
    return [
        r.inputs["connection"].get("value", r.inputs["connection"])
        for r in cloud.created("command:remote:Command")
    ]


def two_shares(config: dict[str, Any]) -> dict[str, Any]:
    config["shares"].append({**config["shares"][0], "name": "scratch", "share_proto": "CIFS"})
    return config


def test_a_generated_key_is_handed_over_at_boot_and_pinned_by_every_command(
    cloud: SimulatedCloud, config: dict[str, Any]
) -> None:
    run = run_stack(cloud, two_shares(config))

    key = cloud.one(KEY)
    assert key.inputs == {"algorithm": "ED25519"}
    public = key.state["publicKeyOpenssh"]
    assert [c["hostKey"] for c in connections(cloud)] == [public, public]
    assert run.outputs["share_server"]["host_key"] == public
    assert run.outputs["share_server"]["host_key_check"] is True

    user_data = cloud.one("openstack:compute/instance:Instance").inputs["userData"]["value"]
    document = yaml.safe_load(user_data)
    assert user_data.startswith("#cloud-config\n")
    assert document["ssh_keys"] == {
        "ed25519_private": key.state["privateKeyOpenssh"],
        "ed25519_public": public.strip(),
    }
    assert document["ssh_deletekeys"] is True
    assert document["ssh_genkeytypes"] == []  # the one host key sshd offers


def test_the_private_host_key_is_a_secret_to_the_engine(
    cloud: SimulatedCloud, config: dict[str, Any]
) -> None:
    run = run_stack(cloud, config)
    user_data = run.monitor.named(SERVER).raw_inputs["userData"]
    assert SECRET_SIG in json.dumps(user_data)  # encrypted in the state, never shown


def test_the_key_outlives_the_server(cloud: SimulatedCloud, config: dict[str, Any]) -> None:
    # Its own resource, waiting for nothing: a rebuilt server gets the same key, and the
    # commands that pinned it still recognise it.
    run = run_stack(cloud, config)
    key = run.monitor.named("share-server-instance-host-key")
    assert key.dependencies == []
    assert key.urn in run.monitor.named(SERVER).dependencies


def test_the_images_own_key_is_pinned_as_given(
    cloud: SimulatedCloud, config: dict[str, Any]
) -> None:
    config["backend"]["service_instance_host_key"] = GIVEN + " root@service-image"
    run = run_stack(cloud, config)
    assert cloud.created(KEY) == []
    assert "userData" not in cloud.one("openstack:compute/instance:Instance").inputs
    assert [c["hostKey"] for c in connections(cloud)] == [GIVEN]
    assert run.outputs["share_server"]["host_key"] == GIVEN


def test_unverified_is_an_explicit_choice_and_shows(
    cloud: SimulatedCloud, config: dict[str, Any]
) -> None:
    config["backend"]["service_instance_host_key"] = "unverified"
    run = run_stack(cloud, config)
    assert cloud.created(KEY) == []
    assert "hostKey" not in connections(cloud)[0]
    assert run.outputs["share_server"]["host_key_check"] is False


@pytest.mark.parametrize(
    "value", ["", "AAAAC3NzaC1lZDI1NTE5", "ssh-ed25519 not-base64!", "yes", "Generate"]
)
def test_a_host_key_that_is_no_key_is_refused(config: dict[str, Any], value: str) -> None:
    config["backend"]["service_instance_host_key"] = value
    message = only_problem(config)
    assert message.startswith("dhss:backend.service_instance_host_key: ")
    assert "generate" in message
    assert "unverified" in message


def test_a_bastion_key_cannot_be_generated(config: dict[str, Any]) -> None:
    config["backend"]["ssh_proxy"] = {
        "host": "bastion.example.org",
        "user": "jump",
        "source_cidrs": ["192.0.2.10/32"],
        "host_key": "generate",
    }
    message = only_problem(config)
    assert message.startswith("dhss:backend.ssh_proxy.host_key: the bastion is not made")
    assert "ssh-keyscan" in message


def test_a_key_pasted_from_ssh_keyscan_says_to_drop_the_host_name(
    config: dict[str, Any],
) -> None:
    config["backend"]["ssh_proxy"] = {
        "host": "bastion.example.org",
        "user": "jump",
        "source_cidrs": ["192.0.2.10/32"],
        "host_key": f"bastion.example.org {GIVEN}",
    }
    message = only_problem(config)
    assert message.startswith("dhss:backend.ssh_proxy.host_key: ")
    assert "starts with the host name 'bastion.example.org', as ssh-keyscan prints it" in message


def test_cloud_config_carries_the_key_exactly() -> None:
    private = "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\ndef\n-----END OPENSSH PRIVATE KEY-----\n"
    document = yaml.safe_load(cloud_config(private, GIVEN + "\n"))
    assert document == {
        "ssh_deletekeys": True,
        "ssh_genkeytypes": [],
        "ssh_keys": {"ed25519_private": private, "ed25519_public": GIVEN},
    }


def test_the_offline_plan_flags_unverified_connections(tmp_path: Path) -> None:
    from dhss_components.plan.__main__ import main

    source = Path(__file__).resolve().parent.parent / "Pulumi.dev.yaml"
    stack = yaml.safe_load(source.read_text())
    # The dev stack opts out (Manila's image has no cloud-init); so does this copy, explicitly.
    stack["config"]["dhss:backend"]["service_instance_host_key"] = "unverified"
    (tmp_path / "Pulumi.dev.yaml").write_text(yaml.safe_dump(stack))
    out = tmp_path / "plan.json"
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main(["--cwd", str(tmp_path), "--format", "json"]) == 0
    out.write_text(buffer.getvalue())
    plan = json.loads(out.read_text())
    assert any("SSH host keys are NOT verified" in notice for notice in plan["notices"])
    connections = [
        r["inputs"]["connection"]
        for r in plan["resources"]
        if r["type"] == "command:remote:Command"
    ]
    assert connections
    assert all(c["hostKey"].startswith("UNVERIFIED") for c in connections)
