"""The blueprint carries each option to the one field that declares it (no cloud, no Pulumi)."""

from __future__ import annotations

import ipaddress
from typing import Any

from dhss_components import naming
from dhss_components.blueprint import share_server_blueprint
from dhss_components.cloud_facts import CloudFacts
from dhss_components.config import parse_stack_config

FACTS = CloudFacts(
    tenant_subnet_cidr=ipaddress.IPv4Network("10.0.0.0/26"),
    router_id="4c9e2a10-6b7d-4f3e-9a8c-1d2e3f4a5b61",
    image_id="image-1",
    service_subnet_cidr=ipaddress.IPv4Network("10.254.0.16/28"),
    admin_subnet_cidr=None,
)


def blueprint(config: dict[str, Any], stack: str = "dev") -> Any:
    spec = parse_stack_config(config["backend"], config["shareNetwork"], config["shares"])
    return share_server_blueprint(spec, FACTS, project="manila-dhss", stack=stack)


def test_each_option_reaches_its_field(config: dict[str, Any]) -> None:
    config["backend"].update(
        service_instance_flavor_id="42",
        cinder_volume_type="ssd",
        storage_availability_zone="zone-b",
        max_time_to_build_instance=300,
        max_time_to_attach=61,
    )
    plan = blueprint(config)
    server_id = naming.share_server_id(
        "manila-dhss", "dev", config["shareNetwork"]["neutron_subnet_id"]
    )
    assert plan.share_server_id == server_id
    instance = plan.instance
    assert (instance.flavor_id, instance.availability_zone, instance.image_id) == (
        "42", "zone-b", "image-1",
    )  # fmt: skip
    assert instance.keypair_name == f"manila-service-{server_id}"
    assert instance.public_key is not None
    assert instance.public_key.startswith("ssh-ed25519 ")
    assert instance.name == f"GENERIC1_{server_id}"
    assert instance.security_group_name == f"manila-service-{server_id}"
    assert dict(instance.metadata) == {"manila-dhss:share-server-id": server_id}
    (share,) = plan.shares
    assert (share.volume_type, share.availability_zone) == ("ssd", "zone-b")
    assert share.volume_name == f"manila-share-{share.share_id}"
    # 300 s to boot + 61 s to attach = 361 s: 7 minutes, and the margin of 10.
    assert plan.ssh.command_timeout == "17m"
    assert plan.ssh.dial_error_limit == 60


def test_the_backend_name_defaults_to_generic(config: dict[str, Any]) -> None:
    del config["backend"]["share_backend_name"]
    plan = blueprint(config)
    assert plan.backend_name == "generic"
    assert plan.instance.name == f"generic_{plan.share_server_id}"


def test_the_backend_zone_wins_over_the_storage_zone(config: dict[str, Any]) -> None:
    config["backend"].update(backend_availability_zone="a", storage_availability_zone="b")
    plan = blueprint(config)
    assert plan.instance.availability_zone == plan.shares[0].availability_zone == "a"


def test_a_password_only_backend_has_no_key_pair(config: dict[str, Any]) -> None:
    del config["backend"]["path_to_private_key"]
    config["backend"]["service_instance_password"] = "pw"
    plan = blueprint(config)
    assert (plan.instance.keypair_name, plan.instance.public_key) == (None, None)


def test_the_host_port_and_the_bastion(config: dict[str, Any]) -> None:
    plan = blueprint(config)
    assert plan.host is not None
    (port,) = plan.host.ports
    assert (port.role, port.device_id, str(port.fixed_address)) == (
        "service", f"manila-dhss-share-{plan.share_server_id}", "10.254.0.30",
    )  # fmt: skip
    assert (port.nic.role, port.nic.network_id) == (
        "service", config["backend"]["service_network_id"],
    )  # fmt: skip
    # This machine dials the instance itself, so it waits for its sshd before the commands.
    assert plan.ssh.wait_until_ready
    config["backend"]["ssh_proxy"] = {
        "host": "bastion.example.org", "user": "jump", "port": 2222,
        "source_cidrs": ["192.0.2.10/32"], "host_key": "unverified",
    }  # fmt: skip
    ssh = blueprint(config).ssh
    assert (ssh.proxy.host, ssh.proxy.user, ssh.proxy.port) == ("bastion.example.org", "jump", 2222)
    # Only the bastion reaches the instance: the commands' dial limit is the wait.
    assert not ssh.wait_until_ready


def test_every_stack_and_tenant_subnet_has_its_own_server_id(config: dict[str, Any]) -> None:
    ids = {blueprint(config, stack).share_server_id for stack in ("dev", "prod")}
    config["shareNetwork"]["neutron_subnet_id"] = "7a0d7b9c-2b65-4f71-9d35-0e4c8f2b1a33"
    ids.add(blueprint(config).share_server_id)
    assert len(ids) == 3
