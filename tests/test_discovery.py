"""Lookups: Manila's router and image errors, and a service subnet CIDR that is free and stays."""

from __future__ import annotations

from typing import Any

import pulumi
import pytest

from dhss_components.discovery import DiscoveryError
from dhss_components.naming import service_subnet_name
from dhss_components.simulated_cloud import (
    DEVSTACK_SERVICE_NET,
    DEVSTACK_TENANT_NET,
    DEVSTACK_TENANT_SUBNET,
    SimulatedCloud,
    devstack_cloud,
)
from tests.stack_run import run_stack

SUBNET = "openstack:networking/subnet:Subnet"


def fails(cloud: SimulatedCloud, config: dict[str, Any]) -> str:
    with pytest.raises(DiscoveryError) as caught:
        run_stack(cloud, config)
    assert isinstance(caught.value, pulumi.RunError)  # printed without a traceback
    assert cloud.resources == {}, "a failed lookup must leave nothing declared"
    return str(caught.value)


def cloud_without_router(*, gateway: bool) -> SimulatedCloud:
    """The dev stack's tenant subnet, on no router (and with or without a gateway address)."""
    cloud = SimulatedCloud()
    cloud.add_network("private", DEVSTACK_TENANT_NET)
    cloud.add_subnet(
        DEVSTACK_TENANT_NET, "10.0.0.0/26", subnet_id=DEVSTACK_TENANT_SUBNET, gateway=gateway
    )
    cloud.add_network("svc", DEVSTACK_SERVICE_NET)
    cloud.add_image("manila-service-image-master")
    return cloud


def test_subnet_without_gateway(config: dict[str, Any]) -> None:
    message = fails(cloud_without_router(gateway=False), config)
    assert message.startswith("Subnet must have gateway.")  # Manila's words
    assert "connect_share_server_to_tenant_network" in message  # and the way out


def test_gateway_not_on_a_router(config: dict[str, Any]) -> None:
    message = fails(cloud_without_router(gateway=True), config)
    assert message.startswith("Subnet gateway is not attached to the router.")
    assert "openstack router add subnet" in message


def test_the_direct_mode_needs_no_router(config: dict[str, Any]) -> None:
    cloud = cloud_without_router(gateway=False)
    config["backend"]["connect_share_server_to_tenant_network"] = True
    assert run_stack(cloud, config).outputs["share_server"]["router_id"] is None


def test_subnet_and_network_must_match(cloud: SimulatedCloud, config: dict[str, Any]) -> None:
    config["shareNetwork"]["neutron_net_id"] = DEVSTACK_SERVICE_NET
    assert fails(cloud, config).startswith(
        f"dhss:shareNetwork.neutron_subnet_id: subnet {DEVSTACK_TENANT_SUBNET} belongs to network"
    )


def test_no_active_image(cloud: SimulatedCloud, config: dict[str, Any]) -> None:
    config["backend"]["service_image_name"] = "manila-service-image-2026"
    cloud.add_image("manila-service-image-2026", status="queued")  # uploading: not usable
    message = fails(cloud, config)
    assert message.startswith("service image: no active image named 'manila-service-image-2026'")
    assert "service_image_name" in message


def test_two_active_images(cloud: SimulatedCloud, config: dict[str, Any]) -> None:
    second = cloud.add_image("manila-service-image-master")
    message = fails(cloud, config)
    assert message.startswith("service image: 2 active images (")
    assert second in message
    assert "Manila needs exactly one" in message


def test_the_image_is_found_by_name(cloud: SimulatedCloud, config: dict[str, Any]) -> None:
    wanted = cloud.images[0].id
    run_stack(cloud, config)
    assert cloud.one("openstack:compute/instance:Instance").inputs["imageId"] == wanted


def test_a_free_cidr_by_overlap_not_by_string(
    cloud: SimulatedCloud, config: dict[str, Any]
) -> None:
    # Another tenant's subnet made with an older /27 mask: Manila's string compare would pick
    # 10.254.0.0/28 and Neutron would refuse it; the first truly free /28 is 10.254.0.32/28.
    cloud.add_subnet(DEVSTACK_SERVICE_NET, "10.254.0.0/27", name="service_subnet_for_other")
    cloud.add_subnet(DEVSTACK_SERVICE_NET, "10.254.0.48/28", name="")  # a released one
    run = run_stack(cloud, config)
    assert run.outputs["share_server"]["service_subnet_cidr"] == "10.254.0.32/28"
    assert cloud.one(SUBNET).inputs["cidr"] == "10.254.0.32/28"


def test_the_cidr_stays_on_every_run(cloud: SimulatedCloud, config: dict[str, Any]) -> None:
    cloud.add_subnet(
        DEVSTACK_SERVICE_NET, "10.254.0.0/28", subnet_id="0c0c0c0c-0000-4000-8000-000000000001"
    )
    first = run_stack(cloud, config)
    assert first.outputs["share_server"]["service_subnet_cidr"] == "10.254.0.16/28"
    inputs_before = {key: r.inputs for key, r in cloud.resources.items()}

    # The other tenant leaves: 10.254.0.0/28 is free again. Ours must not move.
    del cloud.subnets["0c0c0c0c-0000-4000-8000-000000000001"]
    second = run_stack(cloud, config)
    assert second.outputs["share_server"]["service_subnet_cidr"] == "10.254.0.16/28"
    # Found by Manila's subnet name, not chosen again.
    name_lookups = [i.args for i in cloud.invokes if i.token.endswith("getSubnetIdsV2")]
    assert name_lookups[-1] == {
        "networkId": DEVSTACK_SERVICE_NET,
        "name": service_subnet_name(DEVSTACK_TENANT_SUBNET),
    }
    # A re-run of an unchanged stack declares exactly the same inputs: no change to show.
    assert {key: r.inputs for key, r in cloud.resources.items()} == inputs_before
    assert second.outputs == first.outputs


def test_a_pinned_cidr_wins(cloud: SimulatedCloud, config: dict[str, Any]) -> None:
    config["shareNetwork"]["service_subnet_cidr"] = "10.254.1.0/28"
    run = run_stack(cloud, config)
    assert run.outputs["share_server"]["service_subnet_cidr"] == "10.254.1.0/28"
    assert not [i for i in cloud.invokes if "getSubnetIdsV2" in i.token]  # nothing to look up


def test_a_full_pool_is_a_clear_error(cloud: SimulatedCloud, config: dict[str, Any]) -> None:
    config["backend"]["service_network_cidr"] = "10.254.0.0/27"
    cloud.add_subnet(DEVSTACK_SERVICE_NET, "10.254.0.0/28")
    cloud.add_subnet(DEVSTACK_SERVICE_NET, "10.254.0.16/28")
    message = fails(cloud, config)
    assert message.startswith(
        "dhss:backend.service_network_cidr: no free /28 is left in service_network_cidr "
        "10.254.0.0/27"
    )


def test_a_stack_made_service_network(cloud: SimulatedCloud, config: dict[str, Any]) -> None:
    del config["backend"]["service_network_id"]
    run = run_stack(cloud, config)
    network = cloud.one("openstack:networking/network:Network")
    assert network.inputs["name"] == "manila_service_network"
    assert cloud.one(SUBNET).inputs["networkId"] == network.id
    assert run.outputs["share_server"]["service_subnet_cidr"] == "10.254.0.0/28"


def test_an_existing_service_network_is_never_declared(
    cloud: SimulatedCloud, config: dict[str, Any]
) -> None:
    run_stack(cloud, config)
    # Used by id, not declared: destroying the stack can never delete it.
    assert cloud.created("openstack:networking/network:Network") == []


def test_lookups_do_not_grow_with_shares(cloud: SimulatedCloud, config: dict[str, Any]) -> None:
    run_stack(cloud, config)
    one_share = [i.token for i in cloud.invokes]
    config["shares"] = [{**config["shares"][0], "name": f"share{i}"} for i in range(20)]
    twenty = devstack_cloud()
    run_stack(twenty, config)
    assert [i.token for i in twenty.invokes] == one_share
