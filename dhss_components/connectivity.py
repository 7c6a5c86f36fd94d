"""HostConnectivity: the host's own ports on the service (and admin) network, plugged locally.

Manila's ``setup_connectivity_with_service_instances``: a Neutron port with
``device_id=manila-share``, owner ``manila:share``, bound to the host, port security off, and
the interface driver plugging it (an OVS internal port or a veth) with the port's MAC and
address. Here each tenant stack has its own host port, pinned to the last address of its
service subnet, and the plug is a local command whose delete unplugs. Traffic to the admin
subnet leaves through the admin port as Manila wants, but by routes of the plug's own (the
subnet's two halves through its device) where Manila deletes other devices' routes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_command as command
import pulumi_openstack as openstack

from .blueprint import HostConnectivityBlueprint, HostPortBlueprint
from .host_port_script import HostPortParams, render_plug_command, render_unplug_command
from .network import Placement


@dataclass
class HostConnectivityArgs:
    blueprint: HostConnectivityBlueprint
    placements: Sequence[Placement]
    """Each host port's network and subnet, in the blueprint's order of ports."""


class HostConnectivity(pulumi.ComponentResource):
    port_ids: dict[str, pulumi.Output[str]]
    """The host ports, by role (service, admin)."""

    def __init__(
        self, name: str, args: HostConnectivityArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("manila-dhss:index:HostConnectivity", name, None, opts)
        self.port_ids = {
            port.role: self._host_port(f"{name}-{port.role}", args.blueprint, port, placement)
            for port, placement in zip(args.blueprint.ports, args.placements, strict=True)
        }
        self.register_outputs({"port_ids": self.port_ids})

    def _host_port(
        self,
        name: str,
        host: HostConnectivityBlueprint,
        blueprint: HostPortBlueprint,
        placement: Placement,
    ) -> pulumi.Output[str]:
        address = blueprint.fixed_address
        port = openstack.networking.Port(
            f"{name}-port",
            network_id=placement.network_id,
            device_id=blueprint.device_id,
            device_owner="manila:share",
            binding=openstack.networking.PortBindingArgs(host_id=host.host),
            # Manila turns port security off (bug 1720283): the host answers for every
            # service instance, whatever their groups.
            port_security_enabled=False,
            fixed_ips=[
                openstack.networking.PortFixedIpArgs(
                    subnet_id=placement.subnet_id,
                    ip_address=str(address) if address is not None else None,
                )
            ],
            opts=pulumi.ResourceOptions(parent=self),
        )

        def params(values: list[object]) -> HostPortParams:
            port_id, mac, ips = values
            assert isinstance(port_id, str)
            assert isinstance(mac, str)
            assert isinstance(ips, list)
            return HostPortParams(
                driver=host.driver,
                port_id=port_id,
                mac_address=mac,
                cidrs=(f"{ips[0]}/{blueprint.prefixlen}",),
                bridge=host.bridge,
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
        return port.id
