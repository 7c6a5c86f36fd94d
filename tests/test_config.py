"""Every bad input gets its own clear error, naming the key and the fix, and nothing is declared."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pulumi
import pytest

from dhss_components.config import InvalidStackConfig, parse_stack_config
from dhss_components.simulated_cloud import SimulatedCloud
from tests.stack_run import run_stack


def problems(config: dict[str, Any]) -> list[str]:
    with pytest.raises(InvalidStackConfig) as caught:
        parse_stack_config(config.get("backend"), config.get("shareNetwork"), config.get("shares"))
    return [str(p) for p in caught.value.problems]


def only_problem(config: dict[str, Any]) -> str:
    found = problems(config)
    assert len(found) == 1, found
    return found[0]


def test_the_base_config_is_valid(config: dict[str, Any]) -> None:
    spec = parse_stack_config(config["backend"], config["shareNetwork"], config["shares"])
    assert spec.backend.service_network_division_mask == 28  # Manila's default
    assert spec.backend.share_mount_path == "/shares"
    assert spec.public_key is not None
    assert spec.public_key.startswith("ssh-ed25519 ")


def test_dhss_false_is_refused(config: dict[str, Any]) -> None:
    config["backend"]["driver_handles_share_servers"] = False
    message = only_problem(config)
    assert message.startswith("dhss:backend.driver_handles_share_servers: must be true")
    assert "set it to true" in message


def test_a_string_true_is_not_a_boolean(config: dict[str, Any]) -> None:
    config["backend"]["driver_handles_share_servers"] = "True"
    assert "dhss:backend.driver_handles_share_servers: 'True'" in only_problem(config)


def test_another_driver_is_refused(config: dict[str, Any]) -> None:
    config["backend"]["share_driver"] = "manila.share.drivers.lvm.LVMShareDriver"
    message = only_problem(config)
    assert message.startswith(
        "dhss:backend.share_driver: 'manila.share.drivers.lvm.LVMShareDriver'"
    )
    assert "GenericShareDriver" in message


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ("shareNetwork", "neutron_net_id"),
        ("shareNetwork", "neutron_subnet_id"),
        ("backend", "admin_network_id"),
        ("backend", "service_network_id"),
    ],
)
def test_an_id_that_is_not_a_uuid(config: dict[str, Any], section: str, key: str) -> None:
    config[section][key] = "private-subnet"
    if key == "admin_network_id":
        config["backend"]["admin_subnet_id"] = "2c745913-7766-45b3-abfc-33a527e5185b"
    message = only_problem(config)
    assert message.startswith(f"dhss:{section}.{key}: 'private-subnet' is not an OpenStack id")
    assert "openstack" in message  # says where to copy the id from


def test_a_bad_service_network_cidr(config: dict[str, Any]) -> None:
    config["backend"]["service_network_cidr"] = "10.254.0.0/33"
    message = only_problem(config)
    assert message.startswith(
        "dhss:backend.service_network_cidr: '10.254.0.0/33' is not an IPv4 address or network"
    )


def test_a_cidr_with_host_bits_is_refused(config: dict[str, Any]) -> None:
    config["backend"]["service_network_cidr"] = "10.254.0.1/16"
    assert "dhss:backend.service_network_cidr: '10.254.0.1/16'" in only_problem(config)


@pytest.mark.parametrize("mask", [8, 30])
def test_a_division_mask_that_does_not_fit(config: dict[str, Any], mask: int) -> None:
    config["backend"]["service_network_division_mask"] = mask
    message = only_problem(config)
    assert message.startswith(
        f"dhss:backend.service_network_division_mask: {mask} does not fit service_network_cidr"
    )
    assert "between 16 and 29" in message


def test_a_pinned_service_subnet_outside_the_pool(config: dict[str, Any]) -> None:
    config["shareNetwork"]["service_subnet_cidr"] = "192.168.0.0/28"
    assert only_problem(config).startswith(
        "dhss:shareNetwork.service_subnet_cidr: 192.168.0.0/28 is not a /28 inside"
    )


def test_a_missing_public_key_file(config: dict[str, Any], tmp_path: Path) -> None:
    config["backend"]["path_to_public_key"] = str(tmp_path / "nope.pub")
    message = only_problem(config)
    assert message.startswith("dhss:backend.path_to_public_key: ")
    assert "no such file" in message


def test_an_unreadable_key_file(config: dict[str, Any], tmp_path: Path) -> None:
    config["backend"]["path_to_private_key"] = str(tmp_path)  # a directory
    message = only_problem(config)
    assert message.startswith("dhss:backend.path_to_private_key: ")
    assert "cannot be read" in message


def test_a_private_key_given_as_the_public_key(config: dict[str, Any]) -> None:
    config["backend"]["path_to_public_key"] = config["backend"]["path_to_private_key"]
    message = only_problem(config)
    assert "is not an SSH public key" in message
    assert "point it at the .pub file" in message


def test_a_public_key_whose_body_lies(config: dict[str, Any], tmp_path: Path) -> None:
    key = Path(config["backend"]["path_to_public_key"]).read_text().split()
    fake = tmp_path / "fake.pub"
    fake.write_text(f"ssh-rsa {key[1]}\n")
    config["backend"]["path_to_public_key"] = str(fake)
    assert "it says ssh-rsa but holds ssh-ed25519" in only_problem(config)


def test_neither_key_nor_password(config: dict[str, Any]) -> None:
    del config["backend"]["path_to_private_key"]
    message = only_problem(config)
    assert "the service instance cannot be reached" in message
    assert "service_instance_password" in message


def test_a_password_alone_is_enough(config: dict[str, Any]) -> None:
    del config["backend"]["path_to_private_key"]
    config["backend"]["service_instance_password"] = "manila"
    spec = parse_stack_config(config["backend"], config["shareNetwork"], config["shares"])
    assert spec.private_key is None
    assert spec.public_key is None


def test_service_instance_user_is_required(config: dict[str, Any]) -> None:
    del config["backend"]["service_instance_user"]
    assert only_problem(config).startswith("dhss:backend.service_instance_user: required")


@pytest.mark.parametrize("given", ["admin_network_id", "admin_subnet_id"])
def test_admin_network_and_subnet_go_together(config: dict[str, Any], given: str) -> None:
    config["backend"][given] = "2c745913-7766-45b3-abfc-33a527e5185b"
    missing = "admin_subnet_id" if given == "admin_network_id" else "admin_network_id"
    message = only_problem(config)
    assert message.startswith(f"dhss:backend.{missing}: admin_network_id and admin_subnet_id go")


def test_duplicate_share_names(config: dict[str, Any]) -> None:
    config["shares"].append(copy.deepcopy(config["shares"][0]))
    assert only_problem(config) == (
        "dhss:shares[1].name: 'projects' is used by another share; names are unique"
    )


@pytest.mark.parametrize("name", ["Projects", "-x", "a b", "x" * 64, "../etc", ""])
def test_malformed_share_names(config: dict[str, Any], name: str) -> None:
    config["shares"][0]["name"] = name
    message = only_problem(config)
    assert message.startswith(f"dhss:shares[0].name: {name!r} is not a share name")


@pytest.mark.parametrize("size", [0, -1, 1.5, "10"])
def test_size_must_be_a_positive_integer(config: dict[str, Any], size: Any) -> None:
    config["shares"][0]["size"] = size
    assert only_problem(config).startswith("dhss:shares[0].size: ")


def test_an_unknown_protocol(config: dict[str, Any]) -> None:
    config["shares"][0]["share_proto"] = "CEPHFS"
    assert only_problem(config) == (
        "dhss:shares[0].share_proto: 'CEPHFS' is not a protocol this driver serves: use NFS or CIFS"
    )


def test_protocol_case_is_forgiven(config: dict[str, Any]) -> None:
    config["shares"][0]["share_proto"] = "nfs"
    spec = parse_stack_config(config["backend"], config["shareNetwork"], config["shares"])
    assert spec.shares[0].share_proto == "NFS"


@pytest.mark.parametrize(
    ("rule", "key", "text"),
    [
        (
            {"access_type": "user", "access_to": "10.0.0.5"},
            "access_type",
            "'user': the generic driver grants ip rules only",
        ),
        ({"access_type": "ip", "access_to": "10.0.0.300"}, "access_to", "not an IPv4 address"),
        ({"access_type": "ip", "access_to": "10.0.0.5/24"}, "access_to", "host bits set"),
        (
            {"access_type": "ip", "access_to": "10.0.0.5", "access_level": "rx"},
            "access_level",
            "'rx': use rw or ro",
        ),
    ],
)
def test_malformed_access_rules(
    config: dict[str, Any], rule: dict[str, str], key: str, text: str
) -> None:
    config["shares"][0]["access_rules"] = [rule]
    message = only_problem(config)
    assert message.startswith(f"dhss:shares[0].access_rules[0].{key}: ")
    assert text in message


def test_duplicate_access_rules(config: dict[str, Any]) -> None:
    config["shares"][0]["access_rules"] = [
        {"access_type": "ip", "access_to": "10.0.0.5"},
        {"access_type": "ip", "access_to": "10.0.0.5/32", "access_level": "ro"},
    ]
    message = only_problem(config)
    assert message.startswith("dhss:shares[0].access_rules[1].access_to: 10.0.0.5/32 is already")


def test_cifs_cannot_mix_rw_and_ro(config: dict[str, Any]) -> None:
    config["shares"][0]["share_proto"] = "CIFS"
    config["shares"][0]["access_rules"] = [
        {"access_type": "ip", "access_to": "10.0.0.5", "access_level": "rw"},
        {"access_type": "ip", "access_to": "10.0.0.6", "access_level": "ro"},
    ]
    message = only_problem(config)
    assert message.startswith("dhss:shares[0].access_rules: a CIFS share cannot mix rw and ro")


def test_a_read_only_cifs_share_is_allowed(config: dict[str, Any]) -> None:
    config["shares"][0]["share_proto"] = "CIFS"
    config["shares"][0]["access_rules"] = [
        {"access_type": "ip", "access_to": "10.0.0.5", "access_level": "ro"}
    ]
    parse_stack_config(config["backend"], config["shareNetwork"], config["shares"])


def test_an_unknown_key_suggests_the_nearest(config: dict[str, Any]) -> None:
    config["backend"]["service_image"] = "x"
    assert only_problem(config) == (
        "dhss:backend.service_image: unknown key; did you mean service_image_name?"
    )


def test_devstacks_service_password_points_at_manilas_name(config: dict[str, Any]) -> None:
    # DevStack's [generic1] writes service_password; Manila's option is service_instance_password.
    config["backend"]["service_password"] = "manila"
    message = only_problem(config)
    assert message == (
        "dhss:backend.service_password: unknown key; did you mean service_instance_password?"
    )
    assert "manila'" not in message  # the value itself is never repeated


def test_an_unknown_key_in_an_access_rule(config: dict[str, Any]) -> None:
    config["shares"][0]["access_rules"][0]["acess_level"] = "ro"
    assert only_problem(config) == (
        "dhss:shares[0].access_rules[0].acess_level: unknown key; did you mean access_level?"
    )


def test_a_supported_later_manila_option(config: dict[str, Any]) -> None:
    config["backend"]["service_instance_boot_from_volume"] = True
    assert only_problem(config) == (
        "dhss:backend.service_instance_boot_from_volume: Manila's option "
        "service_instance_boot_from_volume is not supported yet (boot from volume is not "
        "implemented yet); remove the key"
    )


def test_the_ovs_driver_needs_the_host(config: dict[str, Any]) -> None:
    del config["backend"]["service_network_host"]
    assert only_problem(config).startswith("dhss:backend.service_network_host: required with the")


def test_noop_driver_needs_the_ssh_source(config: dict[str, Any]) -> None:
    config["backend"]["interface_driver"] = "manila.network.linux.interface.NoopInterfaceDriver"
    assert only_problem(config).startswith(
        "dhss:backend.ssh_source_cidrs: required: there is no host port with NoopInterfaceDriver"
    )


def test_all_problems_are_reported_at_once(config: dict[str, Any]) -> None:
    config["backend"]["driver_handles_share_servers"] = False
    config["backend"]["service_image"] = "x"
    config["shareNetwork"]["neutron_subnet_id"] = "nope"
    config["shares"][0]["size"] = 0
    config["shares"][0]["share_proto"] = "GLUSTER"
    keys = [p.split(":", 2)[0] + ":" + p.split(":", 2)[1] for p in problems(config)]
    assert keys == [
        "dhss:backend.service_image",
        "dhss:backend.driver_handles_share_servers",
        "dhss:shareNetwork.neutron_subnet_id",
        "dhss:shares[0].size",
        "dhss:shares[0].share_proto",
    ]


def test_missing_sections(config: dict[str, Any]) -> None:
    found = problems({"backend": config["backend"]})
    assert found == ["dhss:shareNetwork: required; set it (see the README's config reference)"]


def test_the_program_declares_nothing_and_prints_no_traceback(
    cloud: SimulatedCloud, config: dict[str, Any]
) -> None:
    config["backend"]["driver_handles_share_servers"] = False
    config["shares"][0]["size"] = -5
    with pytest.raises(pulumi.RunError) as caught:
        run_stack(cloud, config)
    # RunError is how a Pulumi program reports a user error without a stack trace.
    assert type(caught.value) is pulumi.RunError
    assert str(caught.value).startswith("the stack config has 2 problems; nothing was declared:")
    assert "  - dhss:shares[0].size: -5 is not a positive number of GiB" in str(caught.value)
    assert cloud.resources == {}
    assert cloud.invokes == []  # not even a lookup
