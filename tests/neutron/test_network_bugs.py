"""What a real Neutron refuses, or what it shows the stack opened too widely: the errors the
simulated cloud let through (issue 13), and the guards for their fixes."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest

from .client import NeutronClient, NeutronError
from .clouds import Builder, Cloud, NetworkMode, devstack_cloud, stack_config
from .conftest import make_deployment
from .engine import Deployment
from .held import Rule, ingress_rules, without_bookkeeping
from .mapping import SEC_GROUP


def _subnets_on_router(neutron: NeutronClient, router_id: str) -> dict[str, str]:
    """Subnet id -> CIDR of every subnet with an interface on the router."""
    ports = neutron.list("ports", device_id=router_id)
    ids = {ip["subnet_id"] for port in ports for ip in port["fixed_ips"]}
    return {subnet_id: neutron.show("subnets", subnet_id)["cidr"] for subnet_id in ids}


def _overlaps(cidr: str, others: dict[str, str], own_id: str) -> dict[str, str]:
    network = ipaddress.ip_network(cidr)
    return {
        subnet_id: other
        for subnet_id, other in others.items()
        if subnet_id != own_id and network.overlaps(ipaddress.ip_network(other))
    }


def _up_and_check_router(neutron: NeutronClient, cloud: Cloud, config: dict[str, Any]) -> None:
    deployment = make_deployment(neutron, cloud)
    # Neutron refuses the interface today: "Bad router request: Cidr 10.0.0.0/28 of subnet
    # ... overlaps with cidr 10.0.0.0/26 of subnet ...", after the subnet and ports exist.
    up = deployment.up(config)
    server = up.outputs["share_server"]
    on_router = _subnets_on_router(neutron, cloud.tenant_router)
    assert server["service_subnet_id"] in on_router
    clash = _overlaps(server["service_subnet_cidr"], on_router, server["service_subnet_id"])
    assert not clash, f"the service subnet overlaps subnets on the tenant's router: {clash}"


@pytest.mark.parametrize("mode", ["router", "router+admin"])
def test_the_service_subnet_never_overlaps_the_tenant_subnet_on_its_router(
    neutron: NeutronClient, prefix: str, keys: tuple[Path, Path], mode: NetworkMode
) -> None:
    # The case: service_network_cidr around the tenant's own 10.0.0.0/26.
    cloud = devstack_cloud(neutron, prefix)
    config = stack_config(cloud, keys, mode, "ovs")
    config["backend"]["service_network_cidr"] = "10.0.0.0/16"
    _up_and_check_router(neutron, cloud, config)


def test_the_service_subnet_avoids_every_subnet_on_the_tenant_router(
    neutron: NeutronClient, prefix: str, keys: tuple[Path, Path]
) -> None:
    # The tenant's router also joins another of its networks, inside service_network_cidr.
    cloud = devstack_cloud(neutron, prefix)
    build = Builder(neutron, prefix)
    tenant = build.project("tenant")
    db_net = build.network(tenant, "db")
    db_subnet = build.subnet(tenant, db_net, "10.254.0.0/24", "db-subnet")
    neutron.add_router_interface(cloud.tenant_router, {"subnet_id": db_subnet})
    _up_and_check_router(neutron, cloud, stack_config(cloud, keys, "router", "ovs"))


def _shares(*shares: tuple[str, str, str]) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "size": 1,
            "share_proto": proto,
            "access_rules": [{"access_type": "ip", "access_to": client, "access_level": "rw"}],
        }
        for name, proto, client in shares
    ]


def test_each_share_admits_only_its_own_clients_on_its_own_protocol(
    neutron: NeutronClient, busy: Cloud, deployment: Deployment, keys: tuple[Path, Path]
) -> None:
    config = stack_config(busy, keys, "router", "ovs")
    config["shares"] = _shares(
        ("projects", "NFS", "198.51.100.0/24"), ("windows", "CIFS", "203.0.113.0/24")
    )
    deployment.up(config)
    rules = ingress_rules(neutron, deployment.one(SEC_GROUP).id)
    assert Rule("tcp", 2049, "198.51.100.0/24") in rules
    assert Rule("tcp", 445, "203.0.113.0/24") in rules
    assert Rule("tcp", 445, "198.51.100.0/24") not in rules, (
        "CIFS (445) is open to the NFS share's clients"
    )
    assert Rule("tcp", 2049, "203.0.113.0/24") not in rules, (
        "NFS (2049) is open to the CIFS share's clients"
    )


def test_shares_with_the_same_clients_need_no_duplicate_rule(
    neutron: NeutronClient, busy: Cloud, deployment: Deployment, keys: tuple[Path, Path]
) -> None:
    # Neutron refuses an identical rule (409 SecurityGroupRuleExists): one rule serves both.
    config = stack_config(busy, keys, "router", "ovs")
    config["shares"] = _shares(
        ("projects", "NFS", "198.51.100.0/24"),
        ("home", "NFS", "198.51.100.0/24"),
        ("windows", "CIFS", "198.51.100.0/24"),
    )
    deployment.up(config)
    rules = ingress_rules(neutron, deployment.one(SEC_GROUP).id)
    assert Rule("tcp", 2049, "198.51.100.0/24") in rules
    assert Rule("tcp", 445, "198.51.100.0/24") in rules


def test_a_refused_up_then_destroy_leaves_neutron_as_it_was(
    neutron: NeutronClient, busy: Cloud, deployment: Deployment, keys: tuple[Path, Path]
) -> None:
    before = without_bookkeeping(neutron.dump(busy.projects))
    config = stack_config(busy, keys, "router", "ovs")
    # Pinned onto the tenant's own subnet: Neutron refuses the router interface, after the
    # service subnet, the group and the ports exist (or, once the program checks a pinned
    # block, nothing is made at all).
    config["backend"]["service_network_cidr"] = "10.0.0.0/16"
    config["shareNetwork"]["service_subnet_cidr"] = "10.0.0.0/28"
    with pytest.raises(Exception, match="overlaps") as refused:
        deployment.up(config)
    made = [r for r in deployment.state.values() if r.custom]
    assert isinstance(refused.value, NeutronError) == bool(made)
    deployment.destroy()
    assert without_bookkeeping(neutron.dump(busy.projects)) == before
