"""The mapping and the ForceNew table name only what the provider's schema has (no server)."""

from __future__ import annotations

import inspect
import re

import pytest

from .force_new import ARGS, FORCE_NEW, replaces
from .mapping import (
    LOOKUPS,
    PORT,
    RESOURCES,
    SEC_GROUP_RULE,
    SUBNET,
    NeutronResource,
    UnmappedInput,
    pulumi_names,
)


def _function_args(function: object) -> set[str]:
    """The provider's argument names of an invoke: the SDK's own table in its source."""
    source = inspect.getsource(function)  # type: ignore[arg-type]
    return set(re.findall(r"__args__\['(\w+)'\]", source))


@pytest.mark.parametrize("token", sorted(RESOURCES))
def test_every_mapped_input_is_an_input_of_the_provider(token: str) -> None:
    resource = RESOURCES[token]
    assert set(resource.inputs) <= pulumi_names(resource.args), (
        f"{token}: {sorted(set(resource.inputs) - pulumi_names(resource.args))} are not "
        f"inputs of {resource.args.__name__}"
    )
    for name, field in resource.inputs.items():
        if field.nested is not None:
            nested = field.nested
            assert set(nested.fields) <= pulumi_names(nested.args), (
                f"{token} {name}: {sorted(set(nested.fields) - pulumi_names(nested.args))} "
                f"are not fields of {nested.args.__name__}"
            )


@pytest.mark.parametrize("token", sorted(RESOURCES))
def test_every_output_read_back_is_an_output_of_the_provider(token: str) -> None:
    resource = RESOURCES[token]
    assert set(resource.outputs) <= pulumi_names(resource.resource)


@pytest.mark.parametrize("token", sorted(LOOKUPS))
def test_every_lookup_argument_is_an_argument_of_the_provider(token: str) -> None:
    lookup = LOOKUPS[token]
    assert set(lookup.args) <= _function_args(lookup.function)
    # The SDK's table was found at all (a changed SDK layout must not pass this vacuously).
    assert "networkId" in _function_args(lookup.function)


@pytest.mark.parametrize("token", sorted(FORCE_NEW))
def test_the_force_new_table_names_inputs_of_the_provider(token: str) -> None:
    assert FORCE_NEW[token] <= pulumi_names(ARGS[token])


def test_an_input_the_mapping_does_not_know_fails_loudly() -> None:
    subnet = RESOURCES[SUBNET]
    with pytest.raises(UnmappedInput, match="mtu"):
        subnet.create_request({"name": "s", "cidr": "10.0.0.0/28", "mtu": 1400})
    port = RESOURCES[PORT]
    with pytest.raises(UnmappedInput, match="vifType"):
        port.create_request({"binding": {"hostId": "h", "vifType": "ovs"}})
    with pytest.raises(UnmappedInput, match=r"fixedIps: input\(s\) subnet "):
        port.create_request({"fixedIps": [{"subnetId": "s", "subnet": "x"}]})


def test_the_requests_are_what_the_provider_sends() -> None:
    subnet: NeutronResource = RESOURCES[SUBNET]
    assert subnet.create_request(
        {
            "networkId": "n",
            "cidr": "10.254.0.0/28",
            "noGateway": True,
            "allocationPools": [{"start": "10.254.0.1", "end": "10.254.0.13"}],
        }
    ) == {
        "network_id": "n",
        "cidr": "10.254.0.0/28",
        "gateway_ip": None,
        "allocation_pools": [{"start": "10.254.0.1", "end": "10.254.0.13"}],
    }
    # no_gateway = false sends nothing: Neutron picks the first address.
    assert subnet.create_request({"noGateway": False}) == {}
    port = RESOURCES[PORT]
    assert port.create_request(
        {
            "binding": {"hostId": "devstack"},
            "portSecurityEnabled": False,
            "fixedIps": [{"subnetId": "s", "ipAddress": "10.254.0.14"}],
            "securityGroupIds": [],
        }
    ) == {
        "binding:host_id": "devstack",
        "port_security_enabled": False,
        "fixed_ips": [{"subnet_id": "s", "ip_address": "10.254.0.14"}],
    }
    # An update sends the changed inputs only, and an emptied group list as it is.
    assert port.update_request(
        {"securityGroupIds": [], "name": "p"}, changed={"securityGroupIds"}
    ) == {"security_groups": []}


@pytest.mark.parametrize(
    ("token", "changed", "replaced"),
    [
        (SUBNET, {"cidr"}, True),
        (SUBNET, {"allocationPools"}, False),
        (SUBNET, {"noGateway"}, False),
        (PORT, {"fixedIps", "securityGroupIds"}, False),
        (PORT, {"deviceOwner"}, True),
        (SEC_GROUP_RULE, {"description"}, True),
        ("openstack:compute/instance:Instance", {"networks"}, True),
        ("openstack:compute/instance:Instance", {"flavorId"}, False),
        ("openstack:blockstorage/volume:Volume", {"size"}, False),
    ],
)
def test_replacement_follows_the_table(token: str, changed: set[str], replaced: bool) -> None:
    assert replaces(token, changed, {}, []) is replaced


def test_commands_replace_on_triggers_or_without_an_update() -> None:
    remote = "command:remote:Command"
    assert replaces(remote, {"create"}, {"create": "a", "update": "a"}, ["triggers[*]"]) is False
    assert replaces(remote, {"triggers"}, {"create": "a", "update": "a"}, ["triggers[*]"]) is True
    assert replaces("command:local:Command", {"create"}, {"create": "a"}, ["triggers[*]"])
