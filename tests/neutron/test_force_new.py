"""The ForceNew table against Neutron: where the provider replaces, Neutron cannot update in
place; where it updates, Neutron takes the update. And the engine replaces as the table says."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dhss_components.discovery import DiscoveryError

from .client import NeutronClient, NeutronError
from .clouds import Builder, Cloud, stack_config
from .engine import Deployment
from .force_new import FORCE_NEW
from .mapping import PORT, RESOURCES, SEC_GROUP, SEC_GROUP_RULE, SUBNET
from .server import NeutronServer

ANOTHER_NETWORK = "<another network>"
ANOTHER_GROUP = "<another group>"


def _objects(neutron: NeutronClient, prefix: str) -> dict[str, str]:
    """One object of each type in the test's project, by type; and two more to point at."""
    build = Builder(neutron, prefix)
    project = build.project("service")
    network = build.network(project, "n")
    subnet = build.subnet(project, network, "10.254.0.0/28", "s")
    # No groups on the port: port security can then go off in place.
    port = build.port(project, network, subnet, security_groups=[])["id"]
    group = neutron.create("security-groups", {"tenant_id": project, "name": "g"})["id"]
    rule = neutron.create(
        "security-group-rules",
        {
            "tenant_id": project,
            "security_group_id": group,
            "direction": "ingress",
            "ethertype": "IPv4",
            "protocol": "tcp",
            "port_range_min": 2049,
            "port_range_max": 2049,
            "remote_ip_prefix": "10.0.0.0/26",
            "description": "NFS clients",
        },
    )["id"]
    return {
        SUBNET: subnet,
        PORT: port,
        SEC_GROUP: group,
        SEC_GROUP_RULE: rule,
        ANOTHER_NETWORK: build.network(project, "m"),
        ANOTHER_GROUP: neutron.create("security-groups", {"tenant_id": project, "name": "h"})["id"],
    }


# The ForceNew inputs the program declares, with a changed value for each.
REPLACING: list[tuple[str, str, Any]] = [
    (SUBNET, "cidr", "10.254.0.16/28"),
    (SUBNET, "networkId", ANOTHER_NETWORK),
    (SUBNET, "ipVersion", 6),
    (PORT, "networkId", ANOTHER_NETWORK),
    (SEC_GROUP_RULE, "portRangeMin", 445),
    (SEC_GROUP_RULE, "portRangeMax", 445),
    (SEC_GROUP_RULE, "protocol", "udp"),
    (SEC_GROUP_RULE, "remoteIpPrefix", "198.51.100.0/24"),
    (SEC_GROUP_RULE, "ethertype", "IPv6"),
    (SEC_GROUP_RULE, "direction", "egress"),
    (SEC_GROUP_RULE, "securityGroupId", ANOTHER_GROUP),
]

# The in-place inputs the program declares, with a changed value for each, applied in turn.
UPDATING: dict[str, list[tuple[str, Any]]] = {
    SUBNET: [
        ("name", "renamed"),
        ("enableDhcp", False),
        ("allocationPools", [{"start": "10.254.0.3", "end": "10.254.0.12"}]),
        ("noGateway", True),
    ],
    PORT: [
        ("fixedIps", [{"subnetId": SUBNET, "ipAddress": "10.254.0.9"}]),
        ("portSecurityEnabled", False),
        ("binding", {"hostId": "compute-2"}),
        ("portSecurityEnabled", True),
        ("securityGroupIds", [SEC_GROUP]),
    ],
    SEC_GROUP: [("name", "renamed"), ("description", "changed")],
}


def _with_ids(value: Any, made: dict[str, str]) -> Any:
    """The value with the test's own ids where it names one of the objects."""
    if isinstance(value, str):
        return made.get(value, value)
    if isinstance(value, list):
        return [_with_ids(item, made) for item in value]
    if isinstance(value, dict):
        return {key: _with_ids(item, made) for key, item in value.items()}
    return value


@pytest.fixture(scope="module")
def unchangeable(neutron_server: NeutronServer) -> dict[str, str]:
    """Objects the refused updates leave as they are: one set for the module."""
    return _objects(NeutronClient(neutron_server.endpoint, neutron_server.log), "force-new-refused")


@pytest.mark.parametrize(("type_", "name", "value"), REPLACING, ids=str)
def test_neutron_cannot_update_what_the_provider_replaces(
    neutron: NeutronClient, unchangeable: dict[str, str], type_: str, name: str, value: Any
) -> None:
    assert name in FORCE_NEW[type_]
    resource = RESOURCES[type_]
    assert resource.collection is not None
    before = neutron.show(resource.collection, unchangeable[type_])
    body = resource.update_request({name: _with_ids(value, unchangeable)}, {name})
    with pytest.raises(NeutronError) as refused:
        neutron.update(resource.collection, unchangeable[type_], body)
    assert refused.value.status == 400
    assert "Cannot update read-only attribute" in refused.value.message
    assert neutron.show(resource.collection, unchangeable[type_]) == before


@pytest.mark.parametrize("type_", sorted(UPDATING))
def test_neutron_updates_what_the_provider_updates_in_place(
    neutron: NeutronClient, prefix: str, type_: str
) -> None:
    made = _objects(neutron, prefix)
    resource = RESOURCES[type_]
    assert resource.collection is not None
    for name, value in UPDATING[type_]:
        assert name not in FORCE_NEW[type_]
        body = resource.update_request({name: _with_ids(value, made)}, {name})
        updated = neutron.update(resource.collection, made[type_], body)
        for field, sent in body.items():
            held = updated[field]
            if isinstance(sent, list) and sent and isinstance(sent[0], dict):
                held = [{k: h[k] for k in s} for s, h in zip(sent, held, strict=True)]
            assert held == sent, f"{name} -> {field}"


def test_a_moved_service_subnet_pin_is_refused_before_neutron_is_touched(
    neutron: NeutronClient, busy: Cloud, deployment: Deployment, keys: tuple[Path, Path]
) -> None:
    # The provider would replace the subnet and router interface and move the server's
    # ports in place (fixed_ips update): the running server's addresses and export locations
    # would change under it. The program refuses the new pin instead, before any write.
    config = stack_config(busy, keys, "router", "ovs")
    config["shareNetwork"]["service_subnet_cidr"] = "10.254.0.32/28"
    deployment.up(config)
    before = neutron.dump(busy.projects)

    config["shareNetwork"]["service_subnet_cidr"] = "10.254.0.48/28"
    with pytest.raises(DiscoveryError, match=r"differs from 10\.254\.0\.32/28"):
        deployment.up(config)

    assert neutron.dump(busy.projects) == before
    assert neutron.show("subnets", deployment.one(SUBNET).id)["cidr"] == "10.254.0.32/28"
