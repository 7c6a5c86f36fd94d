"""The program declares what Manila's driver builds in each of its four network modes."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from dhss_components.naming import service_subnet_name
from dhss_components.simulated_cloud import SimulatedCloud
from tests.clouds import (
    DEVSTACK_ADMIN_NET,
    DEVSTACK_SERVICE_NET,
    DEVSTACK_TENANT_NET,
    DEVSTACK_TENANT_SUBNET,
)
from tests.stack_run import StackRun, run_stack, with_admin

PORT = "openstack:networking/port:Port"
SUBNET = "openstack:networking/subnet:Subnet"
ROUTER_INTERFACE = "openstack:networking/routerInterface:RouterInterface"
INSTANCE = "openstack:compute/instance:Instance"
NOOP = "manila.network.linux.interface.NoopInterfaceDriver"


def instance_nics(run: StackRun) -> list[str]:
    """The instance's NICs in order, as the network each port sits on."""
    ports = {r.id: r for r in run.cloud.created(PORT)}
    server = run.inputs(INSTANCE)
    names = {DEVSTACK_TENANT_NET: "tenant", DEVSTACK_SERVICE_NET: "service"}
    names[DEVSTACK_ADMIN_NET] = "admin"
    return [names[ports[nic["port"]].inputs["networkId"]] for nic in server["networks"]]


def test_mode_a_router(cloud: SimulatedCloud, config: dict[str, Any]) -> None:
    run = run_stack(cloud, config)
    server = run.outputs["share_server"]
    assert server["network_mode"] == "router"
    assert instance_nics(run) == ["service"]

    subnet = run.inputs(SUBNET)
    assert subnet["name"] == service_subnet_name(DEVSTACK_TENANT_SUBNET)
    assert subnet["cidr"] == "10.254.0.0/28"  # Manila's first /28 of 10.254.0.0/16
    assert subnet["networkId"] == DEVSTACK_SERVICE_NET
    assert subnet["noGateway"] is False

    # The router was found through the tenant subnet's gateway port, and joined.
    interface = run.inputs(ROUTER_INTERFACE)
    assert interface["routerId"] == server["router_id"] == "4c9e2a10-6b7d-4f3e-9a8c-1d2e3f4a5b61"
    assert interface["subnetId"] == server["service_subnet_id"]

    # Clients reach the service IP through the tenant router; SSH goes there too.
    assert ipaddress.ip_address(server["service_ip"]) in ipaddress.ip_network("10.254.0.0/28")
    assert server["public_address"] == server["ssh_address"] == server["service_ip"]
    assert server["tenant_ip"] is None
    assert server["admin_ip"] is None


def test_mode_b_direct(cloud: SimulatedCloud, config: dict[str, Any]) -> None:
    config["backend"]["connect_share_server_to_tenant_network"] = True
    run = run_stack(cloud, config)
    server = run.outputs["share_server"]
    assert server["network_mode"] == "direct"
    assert instance_nics(run) == ["tenant", "service"]  # Manila's order: public, service
    assert cloud.created(ROUTER_INTERFACE) == []
    assert run.inputs(SUBNET)["noGateway"] is True  # bug 1983819: no default route via service
    tenant_port = run.inputs(PORT, "instance-tenant-port")
    assert tenant_port["fixedIps"] == [{"subnetId": DEVSTACK_TENANT_SUBNET}]
    assert tenant_port["deviceOwner"] == "manila"
    # Clients mount the tenant address; commands still come over the service network.
    assert ipaddress.ip_address(server["public_address"]) in ipaddress.ip_network("10.0.0.0/26")
    assert server["ssh_address"] == server["service_ip"]
    paths = run.outputs["shares"]["projects"]["export_locations"]
    assert paths[0] == {
        "path": f"{server['tenant_ip']}:/shares/projects",
        "is_admin_only": False,
        "preferred": True,
    }
    assert paths[1]["path"] == f"{server['service_ip']}:/shares/projects"


def test_mode_c_direct_with_admin(cloud: SimulatedCloud, config: dict[str, Any]) -> None:
    config["backend"]["connect_share_server_to_tenant_network"] = True
    run = run_stack(cloud, with_admin(config))
    server = run.outputs["share_server"]
    assert server["network_mode"] == "direct+admin"
    assert instance_nics(run) == ["tenant", "admin"]
    assert cloud.created(SUBNET) == []  # no service subnet at all, like Manila
    assert cloud.created(ROUTER_INTERFACE) == []
    assert server["service_subnet_cidr"] is None
    assert ipaddress.ip_address(server["ssh_address"]) in ipaddress.ip_network("10.2.5.0/24")
    assert server["ssh_address"] == server["admin_ip"]
    paths = run.outputs["shares"]["projects"]["export_locations"]
    assert [p["is_admin_only"] for p in paths] == [False, True]
    assert paths[1]["path"] == f"{server['admin_ip']}:/shares/projects"
    # The host is plugged into the admin network only, and SSH comes from the admin subnet.
    host_ports = [
        p.inputs for p in cloud.created(PORT) if p.inputs.get("deviceOwner") == "manila:share"
    ]
    assert [kind(p["deviceId"]) for p in host_ports] == ["manila-dhss-admin-share"]
    ssh_rules = [
        r.inputs["remoteIpPrefix"]
        for r in cloud.created("openstack:networking/secGroupRule:SecGroupRule")
        if r.inputs.get("portRangeMin") == 22
    ]
    assert ssh_rules == ["10.2.5.0/24"]


def test_mode_d_router_with_admin(cloud: SimulatedCloud, config: dict[str, Any]) -> None:
    run = run_stack(cloud, with_admin(config))
    server = run.outputs["share_server"]
    assert server["network_mode"] == "router+admin"
    assert instance_nics(run) == ["service", "admin"]
    assert len(cloud.created(ROUTER_INTERFACE)) == 1
    assert server["ssh_address"] == server["service_ip"]  # Manila: ip = service port
    paths = run.outputs["shares"]["projects"]["export_locations"]
    assert paths[0]["path"] == f"{server['service_ip']}:/shares/projects"
    assert paths[1]["path"] == f"{server['admin_ip']}:/shares/projects"
    host_ports = sorted(
        p.inputs["deviceId"]
        for p in cloud.created(PORT)
        if p.inputs.get("deviceOwner") == "manila:share"
    )
    assert [kind(p) for p in host_ports] == ["manila-dhss-admin-share", "manila-dhss-share"]


def test_the_host_port_is_manilas(cloud: SimulatedCloud, config: dict[str, Any]) -> None:
    run = run_stack(cloud, config)
    port = run.inputs(PORT, "host-service-port")
    server_id = run.outputs["share_server"]["share_server_id"]
    # Manila's manila-share, made this server's own: Manila finds its own port by that name.
    assert port["deviceId"] == f"manila-dhss-share-{server_id}"
    assert port["deviceOwner"] == "manila:share"
    assert port["binding"] == {"hostId": "devstack"}
    assert port["portSecurityEnabled"] is False
    # Pinned to the last address of the service subnet, outside the DHCP pool.
    assert port["fixedIps"][0]["ipAddress"] == "10.254.0.14"
    assert run.inputs(SUBNET)["allocationPools"] == [{"start": "10.254.0.2", "end": "10.254.0.13"}]
    plug = run.inputs("command:local:Command", "host-service-plug")
    assert "--driver ovs" in plug["create"]
    assert "--cidr 10.254.0.14/28" in plug["create"]
    assert "unplug" in plug["delete"]


def test_the_noop_driver_plugs_nothing(cloud: SimulatedCloud, config: dict[str, Any]) -> None:
    config["backend"]["interface_driver"] = NOOP
    config["backend"]["ssh_source_cidrs"] = ["192.0.2.10/32"]
    run = run_stack(cloud, config)
    local = [r.name for r in cloud.created("command:local:Command")]
    assert local == ["share-server-ssh-ready"]  # no plug; only the wait for sshd
    assert not [p for p in cloud.created(PORT) if p.inputs.get("deviceOwner") == "manila:share"]
    ssh = run.inputs("openstack:networking/secGroupRule:SecGroupRule", "tcp-22-")
    assert ssh["remoteIpPrefix"] == "192.0.2.10/32"


def test_the_ports_carry_the_group_from_creation(
    cloud: SimulatedCloud, config: dict[str, Any]
) -> None:
    config["backend"]["connect_share_server_to_tenant_network"] = True
    run = run_stack(cloud, with_admin(config))
    group = cloud.one("openstack:networking/secGroup:SecGroup").id
    for role in ("tenant", "admin"):
        assert run.inputs(PORT, f"instance-{role}-port")["securityGroupIds"] == [group]
    assert "securityGroups" not in run.inputs(INSTANCE)  # never on the instance


@pytest.mark.parametrize("proto", ["NFS", "CIFS"])
def test_both_protocols(cloud: SimulatedCloud, config: dict[str, Any], proto: str) -> None:
    config["shares"][0]["share_proto"] = proto
    run = run_stack(cloud, config)
    ip = run.outputs["share_server"]["service_ip"]
    share = run.outputs["shares"]["projects"]
    assert share["share_proto"] == proto
    expected = f"{ip}:/shares/projects" if proto == "NFS" else f"\\\\{ip}\\projects"
    assert share["export_locations"][0]["path"] == expected
    command = run.inputs("command:remote:Command")
    assert f"--protocol {proto.lower()}" in command["create"]
    ports = {
        r.inputs.get("portRangeMin")
        for r in cloud.created("openstack:networking/secGroupRule:SecGroupRule")
    }
    assert ports == {22, None, 2049 if proto == "NFS" else 445}  # None: icmp


def test_several_shares(cloud: SimulatedCloud, config: dict[str, Any]) -> None:
    config["shares"] = [
        {
            "name": "projects",
            "size": 10,
            "share_proto": "NFS",
            "access_rules": [{"access_type": "ip", "access_to": "10.0.0.0/26"}],
        },
        {
            "name": "home",
            "size": 50,
            "share_proto": "NFS",
            "access_rules": [
                {"access_type": "ip", "access_to": "192.168.7.5", "access_level": "ro"}
            ],
        },
        {
            "name": "windows",
            "size": 5,
            "share_proto": "CIFS",
            "access_rules": [{"access_type": "ip", "access_to": "10.0.0.7"}],
        },
    ]
    run = run_stack(cloud, config)
    assert sorted(run.outputs["shares"]) == ["home", "projects", "windows"]
    volumes = {
        r.inputs["name"]: r.inputs for r in cloud.created("openstack:blockstorage/volume:Volume")
    }
    assert sorted(v["size"] for v in volumes.values()) == [5, 10, 50]
    for name, share in run.outputs["shares"].items():
        assert volumes[f"manila-share-{share['share_id']}"]["metadata"]["manila-dhss:share"] == name
    # One server, one attachment per share, each command on its own volume.
    assert len(cloud.created(INSTANCE)) == 1
    attachments = cloud.created("openstack:compute/volumeAttach:VolumeAttach")
    assert sorted(a.inputs["volumeId"] for a in attachments) == sorted(
        s["volume_id"] for s in run.outputs["shares"].values()
    )
    commands = {c.name: c.inputs["create"] for c in cloud.created("command:remote:Command")}
    home = commands["share-server-share-home-export"]
    assert f"--volume-id {run.outputs['shares']['home']['volume_id']}" in home
    assert "--client ro:192.168.7.5" in home
    # The group admits each protocol from the tenant subnet and every rule's network only.
    sources = {
        (r.inputs.get("portRangeMin"), r.inputs["remoteIpPrefix"])
        for r in cloud.created("openstack:networking/secGroupRule:SecGroupRule")
    }
    assert (2049, "192.168.7.5/32") in sources
    # 10.0.0.7 lies inside the tenant subnet: one rule covers it.
    assert (445, "10.0.0.0/26") in sources
    assert (445, "10.0.0.7/32") not in sources
    assert not any(prefix == "0.0.0.0/0" for _, prefix in sources)


def kind(device_id: str) -> str:
    """A host port's device id without the share server id it ends with."""
    return device_id.rsplit("-", 5)[0]
