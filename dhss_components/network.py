"""ServiceNetwork: the service network, this tenant's service subnet, and its router link."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_openstack as openstack

from .blueprint import Nic, ServiceNetworkBlueprint
from .network_modes import NicRole


@dataclass(frozen=True)
class Placement:
    """Where a port goes, with the ids that only exist once the service network does."""

    role: NicRole
    network_id: pulumi.Input[str]
    subnet_id: pulumi.Input[str]


class ServiceNetwork(pulumi.ComponentResource):
    network_id: pulumi.Output[str]
    """The service network the service subnet lives in."""
    subnet_id: pulumi.Output[str]
    """This tenant's service subnet."""
    router_interface_id: pulumi.Output[str] | None
    """The router port joining the service subnet to the tenant's router, in router modes."""

    def __init__(
        self, name: str, args: ServiceNetworkBlueprint, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("manila-dhss:index:ServiceNetwork", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        if args.existing_network_id is None:
            network = openstack.networking.Network(
                f"{name}-network", name=args.network_name, admin_state_up=True, opts=child
            )
            self.network_id = network.id
        else:
            self.network_id = pulumi.Output.from_input(args.existing_network_id)

        start, end = args.allocation_pool
        subnet = openstack.networking.Subnet(
            f"{name}-subnet",
            name=args.subnet_name,
            network_id=self.network_id,
            cidr=str(args.subnet_cidr),
            ip_version=4,
            enable_dhcp=True,
            no_gateway=not args.gateway,
            allocation_pools=[
                openstack.networking.SubnetAllocationPoolArgs(start=str(start), end=str(end))
            ],
            opts=child,
        )
        self.subnet_id = subnet.id

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
                "router_interface_id": self.router_interface_id,
            }
        )

    def place(self, nic: Nic) -> Placement:
        return Placement(
            nic.role, nic.network_id or self.network_id, nic.subnet_id or self.subnet_id
        )


def place(nic: Nic, network: ServiceNetwork | None) -> Placement:
    """The port's network and subnet ids: the blueprint's, or the service network's outputs."""
    if network is not None:
        return network.place(nic)
    assert nic.network_id is not None
    assert nic.subnet_id is not None
    return Placement(nic.role, nic.network_id, nic.subnet_id)
