"""What a later step would refuse is refused by the config, with the key and the fix."""

from __future__ import annotations

import shlex
from typing import Any

import pytest

from dhss_components.config import parse_stack_config
from tests.stack_run import run_stack, with_admin
from tests.test_config import only_problem, problems

NOOP = "manila.network.linux.interface.NoopInterfaceDriver"


def rule(access_to: str, level: str = "rw") -> dict[str, str]:
    return {"access_type": "ip", "access_to": access_to, "access_level": level}


# --- access rules: everyone works end to end, IPv6 is refused ------------------------------


@pytest.mark.parametrize(("protocol", "client"), [("NFS", "rw:*"), ("CIFS", "rw:0.0.0.0/0")])
def test_a_rule_for_everyone_is_served(
    cloud: Any, config: dict[str, Any], protocol: str, client: str
) -> None:
    config["shares"][0]["share_proto"] = protocol
    config["shares"][0]["access_rules"] = [rule("0.0.0.0/0")]
    run = run_stack(cloud, config)
    command = run.inputs("command:remote:Command")["create"]
    arguments = shlex.split(command.split("<<", 1)[0])
    assert arguments[arguments.index("--client") + 1] == client
    port = 2049 if protocol == "NFS" else 445
    opened = [
        r.inputs["remoteIpPrefix"]
        for r in run.cloud.created("openstack:networking/secGroupRule:SecGroupRule")
        if r.inputs.get("portRangeMin") == port
    ]
    assert opened == ["0.0.0.0/0"]  # one rule: the tenant subnet is inside it


@pytest.mark.parametrize("address", ["2001:db8::5", "2001:db8::/64", "::/0", "fe80::1%eth0"])
def test_an_ipv6_client_is_refused_with_the_reason(config: dict[str, Any], address: str) -> None:
    config["shares"][0]["access_rules"] = [rule(address)]
    message = only_problem(config)
    assert message.startswith("dhss:shares[0].access_rules[0].access_to: ")
    assert "is IPv6; the service instance has IPv4 addresses only" in message


@pytest.mark.parametrize("value", [42, None, ["10.0.0.0/24"]])
def test_an_access_to_that_is_not_text_is_refused(config: dict[str, Any], value: Any) -> None:
    config["shares"][0]["access_rules"] = [{"access_type": "ip", "access_to": value}]
    assert only_problem(config).startswith("dhss:shares[0].access_rules[0].access_to: ")


# --- names the host, Nova and Cinder would refuse --------------------------------------------


@pytest.mark.parametrize("bridge", ["br-integration-1", "br/int", "br int", ".", "..", "", "br:0"])
def test_a_bridge_name_linux_refuses(config: dict[str, Any], bridge: str) -> None:
    config["backend"]["ovs_integration_bridge"] = bridge
    message = only_problem(config)
    assert message.startswith("dhss:backend.ovs_integration_bridge: ")
    assert "not a Linux interface name" in message


def test_the_longest_bridge_name_linux_takes(config: dict[str, Any]) -> None:
    config["backend"]["ovs_integration_bridge"] = "br-integration1"  # 15 characters
    parse_stack_config(config["backend"], config["shareNetwork"], config["shares"])


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("/", "/ cannot hold shares"),
        ("/etc", "a system directory"),
        ("/var/lib", "a system directory"),
        ("/usr/local/shares", "a system directory"),
        ("/home", "a system directory"),
        ("shares", "not a normalised absolute path"),
        ("/shares/../etc", "not a normalised absolute path"),
        ("/shares//x", "not a normalised absolute path"),
        ("/shares/./x", "not a normalised absolute path"),
        ("/sh ares", "not a normalised absolute path"),
        ("//", "/ cannot hold shares"),
    ],
)
def test_a_mount_path_that_would_hide_the_system_or_escape(
    config: dict[str, Any], path: str, why: str
) -> None:
    config["backend"]["share_mount_path"] = path
    message = only_problem(config)
    assert message.startswith("dhss:backend.share_mount_path: ")
    assert why in message


@pytest.mark.parametrize(
    ("path", "kept"),
    [("/shares/", "/shares"), ("/srv/shares", "/srv/shares"), ("/mnt/x", "/mnt/x")],
)
def test_a_mount_path_of_its_own_is_kept_normalised(
    config: dict[str, Any], path: str, kept: str
) -> None:
    config["backend"]["share_mount_path"] = path
    spec = parse_stack_config(config["backend"], config["shareNetwork"], config["shares"])
    assert spec.backend.share_mount_path == kept


@pytest.mark.parametrize("name", ["global", "globals", "homes", "printers"])
def test_samba_special_sections_are_not_cifs_share_names(config: dict[str, Any], name: str) -> None:
    config["shares"][0].update(name=name, share_proto="CIFS")
    message = only_problem(config)
    assert message.startswith("dhss:shares[0].name: ")
    assert "[global] (or [globals]), [homes] and [printers]" in message
    config["shares"][0]["share_proto"] = "NFS"  # an NFS share may have the name
    parse_stack_config(config["backend"], config["shareNetwork"], config["shares"])


@pytest.mark.parametrize(("fstype", "size"), [("ext3", 16 * 1024 + 1), ("ext4", 1024 * 1024 + 1)])
def test_a_share_bigger_than_its_filesystem_takes(
    config: dict[str, Any], fstype: str, size: int
) -> None:
    config["backend"]["share_volume_fstype"] = fstype
    config["shares"][0]["size"] = size
    assert only_problem(config).startswith("dhss:shares[0].size: ")
    config["shares"][0]["size"] = size - 1
    parse_stack_config(config["backend"], config["shareNetwork"], config["shares"])


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("volume_name_template", "x" * 230 + "-%s"),
        ("service_instance_name_template", "%s" + "y" * 230),
        ("service_instance_security_group", "g" * 230),
    ],
)
def test_names_longer_than_openstack_takes(config: dict[str, Any], key: str, value: str) -> None:
    config["backend"][key] = value
    message = only_problem(config)
    assert message.startswith(f"dhss:backend.{key}: makes names of ")
    assert "up to 255" in message


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("manila_service_keypair_name", "manila/service"),
        ("service_instance_user", "Manila User"),
        ("max_time_to_attach", 86401),
        ("max_time_to_build_instance", 0),
        ("service_image_name", ""),
        ("service_instance_password", ""),
    ],
)
def test_values_the_cloud_or_the_guest_would_refuse(
    config: dict[str, Any], key: str, value: Any
) -> None:
    config["backend"][key] = value
    assert only_problem(config).startswith(f"dhss:backend.{key}: ")


def test_a_password_is_taken_exactly_as_given(config: dict[str, Any]) -> None:
    config["backend"]["service_instance_password"] = "  spaced out\t"
    spec = parse_stack_config(config["backend"], config["shareNetwork"], config["shares"])
    assert spec.backend.service_instance_password == "  spaced out\t"


def test_a_pinned_service_subnet_in_a_mode_without_one(config: dict[str, Any]) -> None:
    with_admin(config)
    config["backend"]["connect_share_server_to_tenant_network"] = True
    config["shareNetwork"]["service_subnet_cidr"] = "10.254.0.16/28"
    message = only_problem(config)
    assert message == (
        "dhss:shareNetwork.service_subnet_cidr: the direct+admin mode has no service subnet; "
        "remove the key"
    )


# --- SSH is never open to the world by accident ---------------------------------------------


@pytest.mark.parametrize("source", ["0.0.0.0/0", "0.0.0.0/1", "128.0.0.0/7"])
def test_world_open_ssh_needs_the_explicit_key(config: dict[str, Any], source: str) -> None:
    config["backend"].update(interface_driver=NOOP, ssh_source_cidrs=[source])
    message = only_problem(config)
    assert message.startswith("dhss:backend.ssh_source_cidrs: ")
    assert "ssh_open_to_world: true" in message
    config["backend"]["ssh_open_to_world"] = True
    parse_stack_config(config["backend"], config["shareNetwork"], config["shares"])


def test_a_bastions_world_open_source_needs_it_too(config: dict[str, Any]) -> None:
    config["backend"]["ssh_proxy"] = {
        "host": "bastion.example.org",
        "user": "ops",
        "source_cidrs": ["0.0.0.0/0"],
        "host_key": "unverified",
    }
    assert only_problem(config).startswith("dhss:backend.ssh_proxy.source_cidrs: ")


def test_a_private_slash_8_is_not_the_world(config: dict[str, Any]) -> None:
    config["backend"].update(interface_driver=NOOP, ssh_source_cidrs=["10.0.0.0/8"])
    parse_stack_config(config["backend"], config["shareNetwork"], config["shares"])


@pytest.mark.parametrize("host", ["bastion .example.org", "-bastion", "fe80::1%eth0x", ""])
def test_a_bastion_host_that_is_no_host(config: dict[str, Any], host: str) -> None:
    config["backend"]["ssh_proxy"] = {
        "host": host,
        "user": "ops",
        "source_cidrs": ["192.0.2.10/32"],
    }
    assert any(p.startswith("dhss:backend.ssh_proxy.host: ") for p in problems(config))


def test_an_error_quotes_a_long_value_only_in_part(config: dict[str, Any]) -> None:
    config["backend"]["share_mount_path"] = "/" + "x" * 100_000
    config["backend"]["protect_volumes"] = "y" * 100_000
    for message in problems(config):
        assert len(message) < 400, message[:100]


@pytest.mark.parametrize(
    "pool", ["224.0.0.0/4", "127.0.0.0/24", "0.0.0.0/8", "169.254.0.0/16", "240.0.0.0/4"]
)
def test_a_service_pool_neutron_would_refuse(config: dict[str, Any], pool: str) -> None:
    config["backend"]["service_network_cidr"] = pool
    message = only_problem(config)
    assert message.startswith("dhss:backend.service_network_cidr: ")
    assert "not a range hosts can be given addresses from" in message


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("service_network_name", "n" * 256),
        ("share_backend_name", "GOLD\n"),
        ("service_instance_name_template", " %s "),
        ("service_image_name", "image\t"),
    ],
)
def test_names_openstack_refuses(config: dict[str, Any], key: str, value: str) -> None:
    config["backend"][key] = value
    message = only_problem(config)
    assert message.startswith(f"dhss:backend.{key}: ")
    assert "not a name OpenStack takes" in message


def test_an_unquoted_flavor_id_is_an_id(config: dict[str, Any]) -> None:
    config["backend"]["service_instance_flavor_id"] = 100
    spec = parse_stack_config(config["backend"], config["shareNetwork"], config["shares"])
    assert spec.backend.service_instance_flavor_id == "100"
