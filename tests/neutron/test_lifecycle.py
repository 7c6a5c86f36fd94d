"""A stack's whole life on a real Neutron that already holds other tenants' networks, other
routers' subnets and Manila's own service subnets: in each of Manila's four network modes,
with the OVS/Linux-bridge host port and with the Noop driver (no host port)."""

from __future__ import annotations

import copy
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .client import NeutronClient
from .clouds import DRIVERS, NETWORK_MODES, Cloud, Driver, NetworkMode, stack_config
from .engine import Deployment, UpResult
from .held import INSTANCE, Rule, declared_mismatches, ingress_rules, without_bookkeeping
from .mapping import PORT, RESOURCES, ROUTER_INTERFACE, SEC_GROUP, SEC_GROUP_RULE, SUBNET

COMBINATIONS = [(mode, driver) for mode in NETWORK_MODES for driver in DRIVERS]
IDS = [f"{mode}-{driver}" for mode, driver in COMBINATIONS]


@dataclass(frozen=True)
class Shape:
    """What Manila's generic driver builds in a network mode (README, blueprint.py)."""

    nics: tuple[str, ...]
    """The server's NICs, in Manila's order, by the network they sit on."""
    service_subnet: bool
    router_interface: bool
    host_ports: tuple[str, ...]
    """device_id of the host ports the OVS/bridge driver plugs (none with Noop)."""


SHAPES: dict[NetworkMode, Shape] = {
    "router": Shape(("service",), True, True, ("manila-dhss-share",)),
    "direct": Shape(("tenant", "service"), True, False, ("manila-dhss-share",)),
    "direct+admin": Shape(("tenant", "admin"), False, False, ("manila-dhss-admin-share",)),
    "router+admin": Shape(
        ("service", "admin"), True, True, ("manila-dhss-share", "manila-dhss-admin-share")
    ),
}


def _neutron_changes(up: UpResult) -> list[tuple[str, str]]:
    return [(step.op, step.type) for step in up.changes() if step.type in RESOURCES]


def _all_but_rules(neutron: NeutronClient, cloud: Cloud) -> dict[str, Any]:
    """Everything but the security group rules: bookkeeping included, but for the groups,
    whose revision follows their rules."""
    dump = neutron.dump(cloud.projects)
    del dump["security-group-rules"]
    dump["security-groups"] = without_bookkeeping(dump)["security-groups"]
    return dump


def _check_shape(
    deployment: Deployment, neutron: NeutronClient, cloud: Cloud, mode: NetworkMode, driver: Driver
) -> None:
    shape = SHAPES[mode]
    networks = {cloud.tenant_net: "tenant", cloud.service_net: "service", cloud.admin_net: "admin"}
    group = deployment.one(SEC_GROUP).id
    server = deployment.one(INSTANCE)
    nics = [neutron.show("ports", nic["port"]) for nic in server.inputs["networks"]]
    assert [networks[port["network_id"]] for port in nics] == list(shape.nics)
    for port in nics:
        # The group is on every server port, port security on, and Nova owns the port.
        assert port["security_groups"] == [group]
        assert port["port_security_enabled"] is True
        assert (port["device_id"], port["device_owner"]) == (server.id, "compute:nova")

    subnets = deployment.resources(SUBNET)
    assert len(subnets) == int(shape.service_subnet)
    interfaces = deployment.resources(ROUTER_INTERFACE)
    assert len(interfaces) == int(shape.router_interface)
    if subnets:
        subnet = neutron.show("subnets", subnets[0].id)
        assert subnet["network_id"] == cloud.service_net
        if interfaces:
            # The tenant's router holds the service subnet's gateway address.
            router_port = neutron.show("ports", interfaces[0].id)
            assert router_port["device_id"] == cloud.tenant_router
            assert router_port["fixed_ips"][0]["ip_address"] == subnet["gateway_ip"]
        else:
            assert subnet["gateway_ip"] is None  # direct mode: no route via the service net

    host_ports = [
        neutron.show("ports", r.id)
        for r in deployment.resources(PORT)
        if r.inputs.get("deviceOwner") == "manila:share"
    ]
    expected = shape.host_ports if driver == "ovs" else ()
    assert sorted(p["device_id"].rsplit("-", 5)[0] for p in host_ports) == sorted(expected)
    for port in host_ports:
        assert port["binding:host_id"] == "devstack"
        assert port["port_security_enabled"] is False
        assert port["security_groups"] == []
        if port["device_id"].startswith("manila-dhss-share-"):
            # Pinned to the service subnet's last usable address, outside the pool.
            cidr = ipaddress.ip_network(neutron.show("subnets", subnets[0].id)["cidr"])
            assert port["fixed_ips"][0]["ip_address"] == str(cidr.broadcast_address - 1)


@pytest.mark.parametrize("combination", COMBINATIONS, ids=IDS)
def test_up_on_a_cloud_in_use_then_an_unchanged_run_then_destroy(
    neutron: NeutronClient,
    busy: Cloud,
    deployment: Deployment,
    keys: tuple[Path, Path],
    combination: tuple[NetworkMode, Driver],
) -> None:
    mode, driver = combination
    before = neutron.dump(busy.projects)
    config = stack_config(busy, keys, mode, driver)

    up = deployment.up(config)
    assert up.outputs["share_server"]["network_mode"] == mode
    assert declared_mismatches(deployment, neutron) == []
    _check_shape(deployment, neutron, busy, mode, driver)
    # What the cloud held before is all still there, unchanged (the service network lists
    # one subnet more in router and direct modes).
    held = without_bookkeeping(neutron.dump(busy.projects))
    ours = {r.id for r in deployment.resources(SUBNET)}
    for collection, objects in without_bookkeeping(before).items():
        for object_id, found in objects.items():
            now = dict(held[collection][object_id])
            if collection == "networks" and object_id == busy.service_net:
                assert set(now["subnets"]) == set(found["subnets"]) | ours
                now["subnets"] = found["subnets"]
            assert now == found, f"{collection} {object_id} changed"

    # The same config again: Neutron is not written to at all.
    dump = neutron.dump(busy.projects)
    writes = deployment.cloud.neutron_writes
    again = deployment.up(config)
    assert again.changes() == []
    assert deployment.cloud.neutron_writes == writes
    assert neutron.dump(busy.projects) == dump
    assert again.outputs == up.outputs

    deployment.destroy()
    assert deployment.state == {}
    assert without_bookkeeping(neutron.dump(busy.projects)) == without_bookkeeping(before)


@pytest.mark.parametrize("combination", COMBINATIONS, ids=IDS)
def test_a_rule_change_a_new_share_and_a_removed_share(
    neutron: NeutronClient,
    busy: Cloud,
    deployment: Deployment,
    keys: tuple[Path, Path],
    combination: tuple[NetworkMode, Driver],
) -> None:
    mode, driver = combination
    config = stack_config(busy, keys, mode, driver)
    deployment.up(config)
    group = deployment.one(SEC_GROUP).id
    network = _all_but_rules(neutron, busy)
    nfs_client = Rule("tcp", 2049, "198.51.100.0/24")

    # An access rule more: its network is admitted to NFS, and nothing else moves.
    config["shares"][0]["access_rules"].append(
        {"access_type": "ip", "access_to": "198.51.100.0/24", "access_level": "ro"}
    )
    up = deployment.up(config)
    assert nfs_client in ingress_rules(neutron, group), "rule change: NFS client not admitted"
    assert set(_neutron_changes(up)) == {("create", SEC_GROUP_RULE)}, "rule change"
    assert _all_but_rules(neutron, busy) == network, "rule change touched more than rules"

    # And removed again: the rule goes from Neutron.
    config["shares"][0]["access_rules"].pop()
    up = deployment.up(config)
    assert not {r for r in ingress_rules(neutron, group) if r.remote_ip_prefix == "198.51.100.0/24"}
    assert set(_neutron_changes(up)) == {("delete", SEC_GROUP_RULE)}, "rule removal"

    # A new CIFS share: CIFS is admitted from its clients; nothing else in Neutron moves.
    windows = {
        "name": "windows",
        "size": 5,
        "share_proto": "CIFS",
        "access_rules": [{"access_type": "ip", "access_to": "203.0.113.0/24"}],
    }
    config["shares"].append(copy.deepcopy(windows))
    up = deployment.up(config)
    assert Rule("tcp", 445, "203.0.113.0/24") in ingress_rules(neutron, group), "new share"
    assert set(_neutron_changes(up)) == {("create", SEC_GROUP_RULE)}, "new share"
    assert _all_but_rules(neutron, busy) == network, "new share touched more than rules"
    assert "windows" in up.outputs["shares"]

    # The share removed: its protocol and its clients are no longer admitted.
    config["shares"].pop()
    up = deployment.up(config)
    rules = ingress_rules(neutron, group)
    assert not {r for r in rules if r.port == 445}, "removed share: CIFS still admitted"
    assert not {r for r in rules if r.remote_ip_prefix == "203.0.113.0/24"}, "removed share"
    assert set(_neutron_changes(up)) == {("delete", SEC_GROUP_RULE)}, "removed share"
    assert _all_but_rules(neutron, busy) == network, "removed share touched more than rules"
    assert "windows" not in up.outputs["shares"]
    assert declared_mismatches(deployment, neutron) == []
