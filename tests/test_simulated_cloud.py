"""The simulated cloud refuses what Neutron, Nova and Cinder refuse, with their messages, and
answers a changed input with an update or a replacement, as the provider and Pulumi would."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi
import pytest
from pulumi.runtime import MockResourceArgs

from dhss_components.simulated_cloud import CloudError, Options, SimulatedCloud
from tests.clouds import DEVSTACK_SERVICE_NET, DEVSTACK_TENANT_NET, DEVSTACK_TENANT_SUBNET
from tests.stack_run import run_stack, write_key_pair

RULE = "openstack:networking/secGroupRule:SecGroupRule"
GROUP = "openstack:networking/secGroup:SecGroup"
VOLUME = "openstack:blockstorage/volume:Volume"
ATTACH = "openstack:compute/volumeAttach:VolumeAttach"
SUBNET = "openstack:networking/subnet:Subnet"
INTERFACE = "openstack:networking/routerInterface:RouterInterface"
COMMAND = "command:remote:Command"
ROUTER = "4c9e2a10-6b7d-4f3e-9a8c-1d2e3f4a5b61"  # router1 of tests.clouds


@pytest.fixture
def declare(cloud: SimulatedCloud) -> Any:
    """Declare one resource the way the engine asks the cloud for it."""
    pulumi.runtime.set_mocks(cloud, project="manila-dhss", stack="t")

    def declare(typ: str, name: str, inputs: dict[str, Any], **options: Any) -> str:
        cloud.next_options = Options(**options)
        resource_id, _ = cloud.new_resource(
            MockResourceArgs(typ=typ, name=name, inputs=inputs, custom=True)
        )
        assert resource_id is not None
        return resource_id

    return declare


# --- Neutron --------------------------------------------------------------------------------


@pytest.mark.parametrize("address", ["10.0.0.0", "10.0.0.63", "10.0.1.5"])
def test_no_fixed_ip_outside_the_subnets_hosts(cloud: SimulatedCloud, address: str) -> None:
    # 10.0.0.0/26: its network address, its broadcast address, and one outside it.
    with pytest.raises(CloudError, match=f"^IP address {address} is not a valid IP for the spec"):
        cloud.add_port(DEVSTACK_TENANT_NET, [(DEVSTACK_TENANT_SUBNET, address)])
    assert cloud.add_port(DEVSTACK_TENANT_NET, [(DEVSTACK_TENANT_SUBNET, "10.0.0.62")])


def test_an_address_another_port_holds_is_refused(cloud: SimulatedCloud) -> None:
    cloud.add_port(DEVSTACK_TENANT_NET, [(DEVSTACK_TENANT_SUBNET, "10.0.0.9")])
    with pytest.raises(CloudError) as caught:
        cloud.add_port(DEVSTACK_TENANT_NET, [(DEVSTACK_TENANT_SUBNET, "10.0.0.9")])
    assert str(caught.value) == (
        f"IP address 10.0.0.9 already allocated in subnet {DEVSTACK_TENANT_SUBNET}"
    )


def test_an_identical_security_group_rule_is_refused(declare: Any) -> None:
    group = declare(GROUP, "group", {"name": "g"})
    rule = {
        "securityGroupId": group,
        "direction": "ingress",
        "ethertype": "IPv4",
        "protocol": "tcp",
        "portRangeMin": 2049,
        "portRangeMax": 2049,
        "remoteIpPrefix": "10.0.0.0/26",
    }
    first = declare(RULE, "nfs", {**rule, "description": "NFS clients"})
    with pytest.raises(CloudError) as caught:  # Neutron: 409 SecurityGroupRuleExists
        declare(RULE, "nfs-again", {**rule, "description": "another description"})
    assert str(caught.value) == f"Security group rule already exists. Rule id is {first}."
    declare(RULE, "nfs-other-clients", {**rule, "remoteIpPrefix": "10.0.1.0/24"})


def test_a_router_interface_overlapping_a_subnet_on_the_router_is_refused(
    declare: Any,
) -> None:
    subnet = declare(SUBNET, "s", {"networkId": DEVSTACK_SERVICE_NET, "cidr": "10.0.0.16/28"})
    with pytest.raises(CloudError) as caught:
        declare(INTERFACE, "i", {"routerId": ROUTER, "subnetId": subnet})
    assert str(caught.value) == (
        f"Bad router request: Cidr 10.0.0.16/28 of subnet {subnet} overlaps with cidr "
        f"10.0.0.0/26 of subnet {DEVSTACK_TENANT_SUBNET}."
    )
    clear = declare(SUBNET, "c", {"networkId": DEVSTACK_SERVICE_NET, "cidr": "10.254.0.0/28"})
    declare(INTERFACE, "j", {"routerId": ROUTER, "subnetId": clear})


# --- Cinder and Nova -----------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, -1, 0.5])
def test_a_volume_smaller_than_one_gib_is_refused(declare: Any, size: float) -> None:
    with pytest.raises(CloudError, match=f"^Invalid input for field/attribute size. Value: {size}"):
        declare(VOLUME, "v", {"size": size})


def test_a_volume_never_shrinks(declare: Any) -> None:
    declare(VOLUME, "v", {"size": 10})
    with pytest.raises(CloudError, match="New size for extend must be greater than current size"):
        declare(VOLUME, "v", {"size": 5})


def test_an_attachment_needs_its_instance_and_its_volume(declare: Any) -> None:
    volume = declare(VOLUME, "v", {"size": 1})
    with pytest.raises(CloudError) as caught:
        declare(ATTACH, "a", {"instanceId": "no-such-server", "volumeId": volume})
    assert str(caught.value) == "Instance no-such-server could not be found."  # Nova's 404
    server = declare("openstack:compute/instance:Instance", "s", {"name": "s", "networks": []})
    with pytest.raises(CloudError, match=r"^Volume no-such-volume could not be found\.$"):
        declare(ATTACH, "b", {"instanceId": server, "volumeId": "no-such-volume"})
    declare(ATTACH, "c", {"instanceId": server, "volumeId": volume})


# --- a re-run with changed inputs: update or replace -------------------------------------


def label(typ: str, name: str) -> str:
    return f"{typ}::{name}"


def test_a_forcenew_input_replaces_and_another_updates(declare: Any, cloud: SimulatedCloud) -> None:
    first = declare(VOLUME, "v", {"size": 1, "name": "a"})
    assert declare(VOLUME, "v", {"size": 2, "name": "b"}) == first  # extend, rename: in place
    assert cloud.updated == [label(VOLUME, "v")]
    second = declare(VOLUME, "v", {"size": 2, "name": "b", "availabilityZone": "nova-2"})
    assert second != first  # a volume cannot move zones: a new volume
    assert cloud.replaced == [label(VOLUME, "v")]
    assert cloud.volumes == {second: 2}  # the old one is gone


def test_a_protected_resource_is_never_replaced(declare: Any, cloud: SimulatedCloud) -> None:
    first = declare(VOLUME, "v", {"size": 1}, protect=True)
    with pytest.raises(CloudError, match=r"^unable to replace resource .*\nas it is currently"):
        declare(VOLUME, "v", {"size": 1, "availabilityZone": "nova-2"}, protect=True)
    assert cloud.volumes == {first: 1}
    assert declare(VOLUME, "v", {"size": 3}, protect=True) == first  # an extend is fine


def test_a_replacement_is_made_before_the_old_one_goes(declare: Any) -> None:
    # A port pinned to an address: its replacement cannot take the address the old port
    # still holds, unless the old one is deleted first (delete_before_replace).
    fixed = {"fixedIps": [{"subnetId": DEVSTACK_TENANT_SUBNET, "ipAddress": "10.0.0.30"}]}
    port = "openstack:networking/port:Port"
    declare(port, "p", {"networkId": DEVSTACK_TENANT_NET, "deviceId": "a", **fixed})
    with pytest.raises(CloudError, match=r"IP address 10\.0\.0\.30 already allocated"):
        declare(port, "p", {"networkId": DEVSTACK_TENANT_NET, "deviceId": "b", **fixed})
    declare(
        port,
        "p",
        {"networkId": DEVSTACK_TENANT_NET, "deviceId": "b", **fixed},
        delete_before_replace=True,
    )


def test_the_program_grows_a_share_in_place_and_never_replaces_its_volume(
    cloud: SimulatedCloud, config: dict[str, Any]
) -> None:
    run_stack(cloud, config)
    volume = cloud.one(VOLUME).id
    config["shares"][0]["size"] = 20
    config["shares"][0]["access_rules"][0]["access_level"] = "ro"
    run_stack(cloud, config)
    assert cloud.one(VOLUME).id == volume
    assert label(VOLUME, "share-server-share-projects-volume") in cloud.updated
    assert label(COMMAND, "share-server-share-projects-export") in cloud.updated
    assert cloud.replaced == []
    assert cloud.volumes[volume] == 20


def test_the_program_cannot_move_a_protected_volume(
    cloud: SimulatedCloud, config: dict[str, Any]
) -> None:
    cloud.zones.add("nova-2")
    run_stack(cloud, config)
    volume = cloud.one(VOLUME).id
    config["backend"]["storage_availability_zone"] = "nova-2"
    with pytest.raises(CloudError, match="unable to replace resource"):
        run_stack(cloud, config)
    assert cloud.volumes[volume] == 10  # the data is still there


def test_a_new_image_never_touches_the_server(
    cloud: SimulatedCloud, config: dict[str, Any]
) -> None:
    run_stack(cloud, config)
    server = cloud.one("openstack:compute/instance:Instance")
    cloud.images[0].status = "deactivated"
    cloud.add_image("manila-service-image-master")
    run_stack(cloud, config)
    after = cloud.one("openstack:compute/instance:Instance")
    assert (after.id, after.inputs["imageId"]) == (server.id, server.inputs["imageId"])
    assert not [r for r in cloud.updated + cloud.replaced if "instance-server" in r]


def test_a_share_removed_from_the_config_keeps_its_protected_volume(
    cloud: SimulatedCloud, config: dict[str, Any]
) -> None:
    run_stack(cloud, config)
    volume = cloud.one(VOLUME).id
    config["shares"] = []
    # The engine refuses to delete a protected resource the program no longer declares (the
    # program cannot unprotect it any more: `pulumi state unprotect` can).
    with pytest.raises(CloudError, match=r"^unable to delete resource .*volume"):
        run_stack(cloud, config)
    assert cloud.volumes == {volume: 10}


def test_a_key_pair_name_is_taken_once(declare: Any) -> None:
    declare("openstack:compute/keypair:Keypair", "k", {"name": "manila-service-x"})
    with pytest.raises(CloudError, match=r"^Key pair .manila-service-x. already exists\.$"):
        declare("openstack:compute/keypair:Keypair", "other", {"name": "manila-service-x"})


def test_a_new_public_key_replaces_the_key_pair(
    cloud: SimulatedCloud, config: dict[str, Any], tmp_path: Path
) -> None:
    run_stack(cloud, config)
    (tmp_path / "new").mkdir()
    public, private = write_key_pair(tmp_path / "new")  # a new pair: both halves change
    config["backend"]["path_to_public_key"] = str(public)
    config["backend"]["path_to_private_key"] = str(private)
    run_stack(cloud, config)
    assert label("openstack:compute/keypair:Keypair", "share-server-instance-keypair") in (
        cloud.replaced
    )
