"""HostConnectivity: the host's own ports on the service (and admin) network, plugged locally.

Manila's ``setup_connectivity_with_service_instances``: a Neutron port with
``device_id=manila-share``, owner ``manila:share``, bound to the host, port security off, and
the interface driver plugging it (an OVS internal port or a veth) with the port's MAC and
address. Here each tenant stack has its own host port, pinned to the last address of its
service subnet, and the plug is a local command whose delete unplugs.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pulumi
import pulumi_command as command
import pulumi_openstack as openstack

from .host_port_script import (
    HostPortParams,
    InterfaceDriver,
    render_plug_command,
    render_unplug_command,
)


@dataclass
class HostConnectivityArgs:
    driver: InterfaceDriver
    """ovs or bridge (noop needs no component)."""
    host: str
    """service_network_host: the Neutron agent host the ports are bound to."""
    bridge: str
    """ovs_integration_bridge."""
    service_network_id: pulumi.Input[str] | None = None
    service_subnet_id: pulumi.Input[str] | None = None
    service_subnet_cidr: str | None = None
    service_host_address: str | None = None
    """The host port's pinned address in the service subnet."""
    admin_network_id: str | None = None
    admin_subnet_id: str | None = None
    admin_subnet_cidr: str | None = None


class HostConnectivity(pulumi.ComponentResource):
    service_port_id: pulumi.Output[str] | None
    admin_port_id: pulumi.Output[str] | None
    admin_host_address: pulumi.Output[str] | None
    """The host's address on the admin network (Neutron picks it)."""

    def __init__(
        self, name: str, args: HostConnectivityArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("manila-dhss:index:HostConnectivity", name, None, opts)
        self._args = args
        self.service_port_id = None
        self.admin_port_id = None
        self.admin_host_address = None

        if args.service_subnet_id is not None:
            assert args.service_network_id is not None
            assert args.service_subnet_cidr
            port = self._host_port(
                f"{name}-service",
                device_id="manila-share",
                network_id=args.service_network_id,
                subnet_id=args.service_subnet_id,
                subnet_cidr=args.service_subnet_cidr,
                address=args.service_host_address,
                clear_cidrs=(),
            )
            self.service_port_id = port.id
        if args.admin_subnet_id is not None:
            assert args.admin_network_id
            assert args.admin_subnet_cidr
            port = self._host_port(
                f"{name}-admin",
                device_id="manila-admin-share",
                network_id=args.admin_network_id,
                subnet_id=args.admin_subnet_id,
                subnet_cidr=args.admin_subnet_cidr,
                address=None,
                # Manila clears routes to the admin subnet through other devices, so replies
                # leave through this port.
                clear_cidrs=(args.admin_subnet_cidr,),
            )
            self.admin_port_id = port.id
            self.admin_host_address = port.all_fixed_ips[0]

        self.register_outputs(
            {
                "service_port_id": self.service_port_id,
                "admin_port_id": self.admin_port_id,
                "admin_host_address": self.admin_host_address,
            }
        )

    def _host_port(
        self,
        name: str,
        *,
        device_id: str,
        network_id: pulumi.Input[str],
        subnet_id: pulumi.Input[str],
        subnet_cidr: str,
        address: str | None,
        clear_cidrs: tuple[str, ...],
    ) -> openstack.networking.Port:
        args = self._args
        port = openstack.networking.Port(
            f"{name}-port",
            network_id=network_id,
            device_id=device_id,
            device_owner="manila:share",
            binding=openstack.networking.PortBindingArgs(host_id=args.host),
            # Manila turns port security off (bug 1720283): the host answers for every
            # service instance, whatever their groups.
            port_security_enabled=False,
            fixed_ips=[
                openstack.networking.PortFixedIpArgs(subnet_id=subnet_id, ip_address=address)
            ],
            opts=pulumi.ResourceOptions(parent=self),
        )
        prefixlen = ipaddress.ip_network(subnet_cidr).prefixlen

        def params(values: list[object]) -> HostPortParams:
            port_id, mac, ips = values
            assert isinstance(port_id, str)
            assert isinstance(mac, str)
            assert isinstance(ips, list)
            return HostPortParams(
                driver=args.driver,
                port_id=port_id,
                mac_address=mac,
                cidrs=(f"{ips[0]}/{prefixlen}",),
                bridge=args.bridge,
                clear_cidrs=clear_cidrs,
            )

        plug = pulumi.Output.all(port.id, port.mac_address, port.all_fixed_ips).apply(params)
        command.local.Command(
            f"{name}-plug",
            create=plug.apply(render_plug_command),
            # A new port is a new device: unplug the old one (its delete, from state) first.
            triggers=[port.id],
            delete=plug.apply(render_unplug_command),
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),
        )
        return port
