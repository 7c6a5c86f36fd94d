"""Blocks a tenant's own stack refuses, and pools of blocks shared through a host.

Discovery refuses a service subnet that overlaps the tenant's subnet, its admin subnet or any
subnet on its router, as well as the service network's subnets. The fleet reads the same
(per tenant, with discovery's own lookups) before it gives a block, so no tenant is given a
block its stack then refuses at every preview. Tenants without ``service_network_id`` make
networks of their own, but their host ports are plugged on one ``service_network_host``: their
blocks come from one pool per host.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import yaml

from dhss_components.fleet.results import EXIT_OK
from tests.fleet.fleet_env import (
    Bed,
    cloud_settings,
    pairwise_disjoint,
    programs,
    registered,
    tenant_network,
    write_yaml,
)

SUBNET = "openstack:networking/subnet:Subnet"
ON_THE_ROUTER = "10.254.0.0/24"  # inside the pool, 10.254.0.0/16


def with_a_router_subnet(bed: Bed, cidr: str) -> None:
    """tenant-01's router also joins a subnet of ``cidr`` (on a network of its own)."""
    networks: list[dict[str, Any]] = cloud_settings([1, 2])["cloud"]["tenant_networks"]
    networks[0]["router_subnets"] = [
        {
            "net": "7e57a11c-0000-4000-8000-000000000001",
            "subnet": "7e57a11c-0000-4000-8000-000000000002",
            "cidr": cidr,
        }
    ]
    bed.settings(cloud={"tenant_networks": networks})


def overlaps(cidr: str, other: str) -> bool:
    return ipaddress.ip_network(cidr).overlaps(ipaddress.ip_network(other))


def test_a_block_on_the_tenants_own_router_is_never_given_to_it(bed: Bed) -> None:
    tenants = str(bed.tenants([1, 2]))
    with_a_router_subnet(bed, ON_THE_ROUTER)

    run = bed.fleet("up", tenants)

    assert run.code == EXIT_OK, run.stdout + run.stderr
    given = bed.ledger()
    assert not overlaps(given["tenant-01"], ON_THE_ROUTER)
    assert given["tenant-02"] == "10.254.0.0/28"  # its router is not tenant-01's
    assert pairwise_disjoint(given.values())


def test_a_block_given_before_the_router_took_it_is_given_again(bed: Bed) -> None:
    tenants = str(bed.tenants([1, 2]))
    assert bed.fleet("preview", tenants).code == EXIT_OK
    assert bed.ledger()["tenant-01"] == "10.254.0.0/28"  # given, never made
    with_a_router_subnet(bed, ON_THE_ROUTER)  # then the tenant joined a subnet on it

    run = bed.fleet("preview", tenants)

    # Without a new block, tenant-01's discovery would refuse the pinned one at every run.
    assert run.code == EXIT_OK, run.stdout + run.stderr
    assert not overlaps(bed.ledger()["tenant-01"], ON_THE_ROUTER)
    assert bed.ledger()["tenant-02"] == "10.254.0.16/28"  # never moved


def test_tenants_with_networks_of_their_own_on_one_host_get_disjoint_blocks(bed: Bed) -> None:
    path = bed.tenants([1, 2])
    document = yaml.safe_load(path.read_text())
    del document["backend"]["service_network_id"]  # each stack makes its own network
    tenants = str(write_yaml(path, document))

    run = bed.fleet("up", tenants)

    assert run.code == EXIT_OK, run.stdout + run.stderr
    ledger = json.loads((bed.work / "service-subnets.json").read_text())["service_networks"]
    given = ledger["service_network_host:devstack"]
    assert set(given) == {"tenant-01", "tenant-02"}
    made = [
        subnet["inputs"]["cidr"]
        for tenant in given
        for subnet in registered(programs(bed.cli, tenant, "up")[-1], SUBNET)
    ]
    # Both host ports are plugged on devstack: two interfaces on one range would break it.
    assert sorted(made) == sorted(given.values())
    assert pairwise_disjoint(made)


def test_the_tenant_subnet_read_is_the_tenants_own(bed: Bed) -> None:
    # A tenant subnet inside the pool (10.254.1.0/24 here) is never a service subnet's block.
    networks = cloud_settings([1])["cloud"]["tenant_networks"]
    path = bed.tenants([1])
    networks[0]["cidr"] = "10.254.0.0/24"
    bed.settings(cloud={"tenant_networks": networks})
    assert tenant_network(1)["subnet"] == networks[0]["subnet"]

    run = bed.fleet("preview", str(path))

    assert run.code == EXIT_OK, run.stdout + run.stderr
    assert not overlaps(bed.ledger()["tenant-01"], "10.254.0.0/24")
