"""Lookups: Manila's router and image errors, and a service subnet CIDR that is free and stays."""

from __future__ import annotations

from typing import Any

import pulumi
import pytest

from dhss_components.discovery import DiscoveryError
from dhss_components.naming import service_subnet_name
from dhss_components.simulated_cloud import SimulatedCloud
from tests.clouds import (
    DEVSTACK_ADMIN_NET,
    DEVSTACK_ADMIN_SUBNET,
    DEVSTACK_SERVICE_NET,
    DEVSTACK_TENANT_NET,
    DEVSTACK_TENANT_SUBNET,
    devstack_cloud,
)
from tests.stack_run import run_stack, with_admin

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
    assert message.startswith(  # the key, then Manila's words
        "dhss:shareNetwork.neutron_subnet_id: Subnet must have gateway."
    )
    assert "connect_share_server_to_tenant_network" in message  # and the way out


def test_gateway_not_on_a_router(config: dict[str, Any]) -> None:
    message = fails(cloud_without_router(gateway=True), config)
    assert message.startswith(
        "dhss:shareNetwork.neutron_subnet_id: Subnet gateway is not attached to the router."
    )
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
    assert message.startswith(
        "dhss:backend.service_image_name: no active image named 'manila-service-image-2026'"
    )
    assert "service_image_name" in message


def test_two_active_images(cloud: SimulatedCloud, config: dict[str, Any]) -> None:
    second = cloud.add_image("manila-service-image-master")
    message = fails(cloud, config)
    assert message.startswith("dhss:backend.service_image_name: 2 active images (")
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
    # The service network is not scanned; only the router's subnets are read (to check the
    # pinned block against them).
    scans = [
        i
        for i in cloud.invokes
        if i.token.endswith("getSubnetIdsV2") and not {"name", "cidr"} & set(i.args)
    ]
    assert all(i.args["networkId"] != DEVSTACK_SERVICE_NET for i in scans)


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


# --- lookups that find nothing name what was looked up -------------------------------------


MISSING = "0b6a1f4e-9d1c-4c89-8a3b-2b0f4a6d7e10"


@pytest.mark.parametrize(
    ("key", "fix"),
    [
        ("shareNetwork.neutron_subnet_id", "openstack subnet list"),
        ("backend.admin_subnet_id", "openstack subnet list"),
        ("backend.service_network_id", "openstack network list"),
    ],
)
def test_a_missing_object_names_its_key_and_how_to_find_it(
    cloud: SimulatedCloud, config: dict[str, Any], key: str, fix: str
) -> None:
    if key == "backend.admin_subnet_id":
        with_admin(config)
    section, name = key.split(".")
    config[section][name] = MISSING
    message = fails(cloud, config)
    assert message.startswith(f"dhss:{key}: ")
    assert MISSING in message
    assert fix in message
    assert "Your query returned no results" in message  # what the provider said, once


def ipv6_cloud(*, admin: bool) -> SimulatedCloud:
    cloud = devstack_cloud()
    if admin:
        del cloud.subnets[DEVSTACK_ADMIN_SUBNET]
        cloud.add_subnet(DEVSTACK_ADMIN_NET, "2001:db8:5::/64", subnet_id=DEVSTACK_ADMIN_SUBNET)
    else:
        cloud.subnets[DEVSTACK_TENANT_SUBNET].cidr = "2001:db8::/64"
    return cloud


@pytest.mark.parametrize(
    ("admin", "key"), [(False, "shareNetwork.neutron_subnet_id"), (True, "backend.admin_subnet_id")]
)
def test_an_ipv6_subnet_is_refused_before_anything_exists(
    config: dict[str, Any], admin: bool, key: str
) -> None:
    if admin:
        with_admin(config)
    message = fails(ipv6_cloud(admin=admin), config)
    assert message.startswith(f"dhss:{key}: ")
    assert "IPv6" in message
    assert "IPv4 subnets only" in message


# --- the service subnet stays clear of the tenant's router --------------------------------


def test_the_service_subnet_avoids_every_subnet_on_the_router(
    cloud: SimulatedCloud, config: dict[str, Any]
) -> None:
    # The tenant's own 10.0.0.0/26 is on the router, and so is another tenant's 10.0.0.64/27.
    other_net = cloud.add_network("other")
    other = cloud.add_subnet(
        other_net, "10.0.0.64/27", subnet_id="7a0d7b9c-2b65-4f71-9d35-0e4c8f2b1a33"
    )
    router = cloud.ports[cloud_router_port(cloud)].device_id
    cloud.add_port(
        other_net, [(other, "10.0.0.65")], device_id=router, device_owner="network:router_interface"
    )
    config["backend"]["service_network_cidr"] = "10.0.0.0/16"

    run = run_stack(cloud, config)

    assert run.outputs["share_server"]["service_subnet_cidr"] == "10.0.0.96/28"


def cloud_router_port(cloud: SimulatedCloud) -> str:
    [port] = [p.id for p in cloud.ports.values() if p.device_owner == "network:router_interface"]
    return port


def test_a_pinned_block_on_the_routers_subnets_is_refused(
    cloud: SimulatedCloud, config: dict[str, Any]
) -> None:
    config["backend"]["service_network_cidr"] = "10.0.0.0/16"
    config["shareNetwork"]["service_subnet_cidr"] = "10.0.0.16/28"
    message = fails(cloud, config)
    assert message.startswith(
        "dhss:shareNetwork.service_subnet_cidr: 10.0.0.16/28 overlaps 10.0.0.0/26"
    )


def test_a_pin_that_would_move_an_existing_subnet_is_refused(
    cloud: SimulatedCloud, config: dict[str, Any]
) -> None:
    run_stack(cloud, config)  # makes 10.254.0.0/28
    config["shareNetwork"]["service_subnet_cidr"] = "10.254.7.0/28"
    with pytest.raises(DiscoveryError, match=r"differs from 10\.254\.0\.0/28") as caught:
        run_stack(cloud, config)
    assert str(caught.value).startswith("dhss:shareNetwork.service_subnet_cidr: ")


def test_a_pinned_block_another_subnet_holds_is_refused_in_one_lookup(
    cloud: SimulatedCloud, config: dict[str, Any]
) -> None:
    # Manila's own share server holds 10.254.0.16/28; the fleet's ledger does not know it.
    manila = cloud.add_subnet(DEVSTACK_SERVICE_NET, "10.254.0.16/28", name="manila-made")
    for i in range(30):  # however many others there are, the check costs one lookup
        cloud.add_subnet(DEVSTACK_SERVICE_NET, f"10.254.{i + 1}.0/28", name=f"other-{i}")
    config["shareNetwork"]["service_subnet_cidr"] = "10.254.0.16/28"
    message = fails(cloud, config)
    assert message.startswith(
        f"dhss:shareNetwork.service_subnet_cidr: 10.254.0.16/28 is already held by subnet {manila}"
    )
    subnet_reads = [i for i in cloud.invokes if i.token.endswith("getSubnet:getSubnet")]
    assert len(subnet_reads) == 1  # the tenant subnet only: no scan of the service network


# --- the service subnet is a range of its own -------------------------------------------


def test_in_direct_mode_the_service_subnet_avoids_the_tenant_subnet(
    config: dict[str, Any],
) -> None:
    # No router in direct mode: the tenant's own subnet must still be avoided, or the
    # instance's tenant and service NICs share a range (and the host port's SSH rule admits
    # a tenant machine holding its address).
    cloud = SimulatedCloud()
    cloud.add_network("private", DEVSTACK_TENANT_NET)
    cloud.add_subnet(DEVSTACK_TENANT_NET, "10.254.0.0/24", subnet_id=DEVSTACK_TENANT_SUBNET)
    cloud.add_network("svc", DEVSTACK_SERVICE_NET)
    cloud.add_image("manila-service-image-master")
    config["backend"]["connect_share_server_to_tenant_network"] = True
    run = run_stack(cloud, config)
    assert run.outputs["share_server"]["service_subnet_cidr"] == "10.254.1.0/28"


def test_the_service_subnet_avoids_the_admin_subnet(
    cloud: SimulatedCloud, config: dict[str, Any]
) -> None:
    with_admin(config)
    cloud.subnets[DEVSTACK_ADMIN_SUBNET].cidr = "10.254.0.0/24"
    run = run_stack(cloud, config)
    assert run.outputs["share_server"]["service_subnet_cidr"] == "10.254.1.0/28"


def test_a_pinned_block_inside_the_tenant_subnet_is_refused(config: dict[str, Any]) -> None:
    cloud = SimulatedCloud()
    cloud.add_network("private", DEVSTACK_TENANT_NET)
    cloud.add_subnet(DEVSTACK_TENANT_NET, "10.254.0.0/24", subnet_id=DEVSTACK_TENANT_SUBNET)
    cloud.add_network("svc", DEVSTACK_SERVICE_NET)
    cloud.add_image("manila-service-image-master")
    config["backend"]["connect_share_server_to_tenant_network"] = True
    config["shareNetwork"]["service_subnet_cidr"] = "10.254.0.16/28"
    message = fails(cloud, config)
    assert message.startswith(
        "dhss:shareNetwork.service_subnet_cidr: 10.254.0.16/28 overlaps 10.254.0.0/24, the "
        f"tenant subnet {DEVSTACK_TENANT_SUBNET}"
    )


def test_an_admin_subnet_over_the_tenant_subnet_is_refused(
    cloud: SimulatedCloud, config: dict[str, Any]
) -> None:
    with_admin(config)
    config["backend"]["connect_share_server_to_tenant_network"] = True
    cloud.subnets[DEVSTACK_ADMIN_SUBNET].cidr = "10.0.0.0/24"  # over the tenant's 10.0.0.0/26
    message = fails(cloud, config)
    assert message.startswith(
        "dhss:backend.admin_subnet_id: admin subnet 10.0.0.0/24 overlaps tenant subnet 10.0.0.0/26"
    )


def test_a_flavor_the_cloud_lacks_is_named(cloud: SimulatedCloud, config: dict[str, Any]) -> None:
    config["backend"]["service_instance_flavor_id"] = "m1.manila"
    message = fails(cloud, config)
    assert message.startswith("dhss:backend.service_instance_flavor_id: flavor m1.manila")
    assert "openstack flavor list" in message


def test_an_availability_zone_the_cloud_lacks_is_named(
    cloud: SimulatedCloud, config: dict[str, Any]
) -> None:
    config["backend"]["backend_availability_zone"] = "az-9"
    message = fails(cloud, config)
    assert message.startswith(
        "dhss:backend.backend_availability_zone: 'az-9' is not one of the cloud's compute"
    )
    config["backend"]["backend_availability_zone"] = "nova"
    run_stack(cloud, config)
