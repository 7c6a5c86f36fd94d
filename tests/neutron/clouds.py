"""Clouds the tests start from, made in the real Neutron: what an operator's cloud already holds
before the stack runs, each in projects of its own (ids starting with the test's prefix)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from dhss_components.naming import service_subnet_name
from tests.stack_run import base_config

from .client import Body, NeutronClient

SERVICE_IMAGE = "manila-service-image-master"
NOOP_DRIVER = "manila.network.linux.interface.NoopInterfaceDriver"
OVS_DRIVER = "manila.network.linux.interface.OVSInterfaceDriver"

NetworkMode = Literal["router", "direct", "direct+admin", "router+admin"]
Driver = Literal["ovs", "noop"]
PROJECTS = ("service", "tenant", "other")
"""Manila's service project (the stack deploys as it), the stack's tenant, other tenants."""
NETWORK_MODES: tuple[NetworkMode, ...] = ("router", "direct", "direct+admin", "router+admin")
DRIVERS: tuple[Driver, ...] = ("ovs", "noop")


@dataclass(frozen=True)
class Cloud:
    """The ids a stack's config names, and the projects the cloud is made of."""

    projects: tuple[str, ...]
    """Every project this cloud is made of (what a dump of it lists)."""
    service_project: str
    """Manila's service project: the stack deploys as this project."""
    tenant_net: str
    tenant_subnet: str
    tenant_router: str
    admin_net: str
    admin_subnet: str
    service_net: str


@dataclass
class Builder:
    neutron: NeutronClient
    prefix: str

    def project(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    def projects(self) -> tuple[str, ...]:
        return tuple(self.project(name) for name in PROJECTS)

    def network(self, project: str, name: str) -> str:
        return str(self.neutron.create("networks", {"tenant_id": project, "name": name})["id"])

    def subnet(self, project: str, network: str, cidr: str, name: str, **extra: Any) -> str:
        fields = {
            "tenant_id": project,
            "network_id": network,
            "cidr": cidr,
            "ip_version": 4,
            "name": name,
            **extra,
        }
        return str(self.neutron.create("subnets", fields)["id"])

    def router(self, project: str, name: str, *subnets: str) -> str:
        router = str(self.neutron.create("routers", {"tenant_id": project, "name": name})["id"])
        for subnet in subnets:
            self.neutron.add_router_interface(router, {"subnet_id": subnet})
        return router

    def port(self, project: str, network: str, subnet: str, **extra: Any) -> Body:
        fields = {
            "tenant_id": project,
            "network_id": network,
            "fixed_ips": [{"subnet_id": subnet, **extra.pop("fixed_ip", {})}],
            **extra,
        }
        return self.neutron.create("ports", fields)


def devstack_cloud(neutron: NeutronClient, prefix: str) -> Cloud:
    """DevStack's shape: a private tenant network behind router1, an admin network, and an
    empty manila_service_network (the same CIDRs as the simulated cloud's DevStack)."""
    build = Builder(neutron, prefix)
    service, tenant = build.project("service"), build.project("tenant")
    tenant_net = build.network(tenant, "private")
    tenant_subnet = build.subnet(tenant, tenant_net, "10.0.0.0/26", "private-subnet")
    router = build.router(tenant, "router1", tenant_subnet)
    admin_net = build.network(service, "admin_net")
    admin_subnet = build.subnet(service, admin_net, "10.2.5.0/24", "admin_subnet")
    service_net = build.network(service, "manila_service_network")
    return Cloud(
        build.projects(),
        service,
        tenant_net,
        tenant_subnet,
        router,
        admin_net,
        admin_subnet,
        service_net,
    )


def busy_cloud(neutron: NeutronClient, prefix: str) -> Cloud:
    """DevStack, plus what a cloud in use holds:

    - another tenant with the same private CIDR (10.0.0.0/26) behind its own router, with a
      lab subnet inside service_network_cidr (10.254.2.0/24) on it: other routers' subnets,
      which are no concern of this tenant's router;
    - on the service network, Manila's own service subnets: the first /28 (10.254.0.0/28)
      for the other tenant, joined to its router, with the manila-share host port and a
      share server's port; and one made with an older division mask (10.254.1.0/24, direct
      mode: no gateway, no router) for a tenant subnet deleted since.
    """
    cloud = devstack_cloud(neutron, prefix)
    build = Builder(neutron, prefix)
    other = build.project("other")
    other_net = build.network(other, "private")
    other_subnet = build.subnet(other, other_net, "10.0.0.0/26", "private-subnet")
    lab_net = build.network(other, "lab")
    lab_subnet = build.subnet(other, lab_net, "10.254.2.0/24", "lab-subnet")
    other_router = build.router(other, "router1", other_subnet, lab_subnet)

    service = cloud.service_project
    manila_subnet = build.subnet(
        service,
        cloud.service_net,
        "10.254.0.0/28",
        service_subnet_name(other_subnet),
        allocation_pools=[{"start": "10.254.0.2", "end": "10.254.0.13"}],
    )
    neutron.add_router_interface(other_router, {"subnet_id": manila_subnet})
    build.port(
        service,
        cloud.service_net,
        manila_subnet,
        fixed_ip={"ip_address": "10.254.0.14"},
        device_id="manila-share",
        device_owner="manila:share",
        port_security_enabled=False,
        **{"binding:host_id": "devstack"},
    )
    build.port(service, cloud.service_net, manila_subnet, device_owner="manila")
    build.subnet(
        service,
        cloud.service_net,
        "10.254.1.0/24",
        service_subnet_name("9d0e4f7a-52c1-4b8e-9a37-0c1d2e3f4a5b"),
        gateway_ip=None,
    )
    return cloud


def stack_config(
    cloud: Cloud, keys: tuple[Path, Path], mode: NetworkMode, driver: Driver
) -> dict[str, Any]:
    """The dev stack's config (one NFS share) on `cloud`, in `mode` with `driver`."""
    config = copy.deepcopy(base_config(keys))
    backend = config["backend"]
    backend["service_network_id"] = cloud.service_net
    # Nothing here may be lost on destroy in a test: volumes are simulated.
    backend["protect_volumes"] = False
    config["shareNetwork"] = {
        "neutron_net_id": cloud.tenant_net,
        "neutron_subnet_id": cloud.tenant_subnet,
    }
    if mode.startswith("direct"):
        backend["connect_share_server_to_tenant_network"] = True
    if mode.endswith("+admin"):
        backend["admin_network_id"] = cloud.admin_net
        backend["admin_subnet_id"] = cloud.admin_subnet
    if driver == "noop":
        backend["interface_driver"] = NOOP_DRIVER
        # With no host port the program cannot know where the commands come from.
        backend["ssh_source_cidrs"] = ["192.0.2.10/32"]
    return config
