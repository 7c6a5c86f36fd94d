"""ServiceNetwork: the service network, this tenant's service subnet, and its router link."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_openstack as openstack

from .service_subnet import allocation_pool


@dataclass
class ServiceNetworkArgs:
    service_network_id: str | None
    """An existing service network (never deleted by this stack); None: the stack makes one."""
    service_network_name: str
    """Name of the network the stack makes when service_network_id is None (Manila's option)."""
    service_subnet_name: str
    """Manila's name: service_subnet_for_handling_of_share_server_for_tenant_subnet_<id>."""
    service_subnet_cidr: str
    """Chosen by discovery: free by overlap, and the same on every run."""
    router_id: str | None
    """The tenant subnet's router (Manila's modes A and D); None in the direct modes."""


class ServiceNetwork(pulumi.ComponentResource):
    network_id: pulumi.Output[str]
    """The service network the service subnet lives in."""
    subnet_id: pulumi.Output[str]
    """This tenant's service subnet."""
    subnet_cidr: str
    """Its CIDR (known before anything is created)."""
    router_interface_id: pulumi.Output[str] | None
    """The router port joining the service subnet to the tenant's router, in router modes."""

    def __init__(
        self, name: str, args: ServiceNetworkArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("manila-dhss:index:ServiceNetwork", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        if args.service_network_id is None:
            network = openstack.networking.Network(
                f"{name}-network",
                name=args.service_network_name,
                admin_state_up=True,
                opts=child,
            )
            self.network_id = network.id
        else:
            self.network_id = pulumi.Output.from_input(args.service_network_id)

        with_gateway = args.router_id is not None
        start, end = allocation_pool(args.service_subnet_cidr, with_gateway=with_gateway)
        subnet = openstack.networking.Subnet(
            f"{name}-subnet",
            name=args.service_subnet_name,
            network_id=self.network_id,
            cidr=args.service_subnet_cidr,
            ip_version=4,
            enable_dhcp=True,
            # Manila's direct mode: no gateway, or the instance would route via the service
            # network instead of the tenant port (bug 1983819).
            no_gateway=not with_gateway,
            # The pool leaves the last address for the host port, pinned so the security
            # group can admit SSH from exactly it.
            allocation_pools=[openstack.networking.SubnetAllocationPoolArgs(start=start, end=end)],
            opts=child,
        )
        self.subnet_id = subnet.id
        self.subnet_cidr = args.service_subnet_cidr

        self.router_interface_id = None
        if args.router_id is not None:
            interface = openstack.networking.RouterInterface(
                f"{name}-router-interface",
                router_id=args.router_id,
                subnet_id=subnet.id,
                opts=child,
            )
            self.router_interface_id = interface.id

        self.register_outputs(
            {
                "network_id": self.network_id,
                "subnet_id": self.subnet_id,
                "subnet_cidr": self.subnet_cidr,
                "router_interface_id": self.router_interface_id,
            }
        )
