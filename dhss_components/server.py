"""ShareServer: the stack's root component. Wires network → connectivity → instance → shares."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import pulumi
import pulumi_command as command

from .blueprint import ShareServerBlueprint
from .connectivity import HostConnectivity, HostConnectivityArgs
from .instance import Nic, ServiceInstance, ServiceInstanceArgs
from .network import ServiceNetwork, ServiceNetworkArgs
from .share import Share, ShareArgs

# pulumi-command retries a refused dial with a growing pause capped at 5 s; its default of
# 10 attempts gives up after about 8 s, long before a service instance has booted.
_DIAL_PAUSE_SECONDS = 5


@dataclass
class ShareServerArgs:
    blueprint: ShareServerBlueprint
    image_id: str
    flavor_id: str
    neutron_net_id: str
    neutron_subnet_id: str
    service_network_id: str | None
    service_network_name: str
    service_instance_user: str
    public_key: str | None
    private_key: pulumi.Input[str] | None
    """Secret."""
    password: pulumi.Input[str] | None
    """Secret."""
    share_mount_path: str
    share_volume_fstype: Literal["ext4", "ext3"]
    cinder_volume_type: str | None
    protect_volumes: bool
    max_time_to_build_instance: int
    max_time_to_attach: int
    service_network_host: str | None
    ovs_integration_bridge: str
    ssh_proxy: command.remote.ProxyConnectionArgs | None = None
    """A bastion the share commands go through."""
    admin_network_id: str | None = None
    admin_subnet_id: str | None = None
    admin_subnet_cidr: str | None = None


class ShareServer(pulumi.ComponentResource):
    share_server: pulumi.Output[dict[str, Any]]
    """The share server as Manila's backend_details would describe it."""
    shares: pulumi.Output[dict[str, Any]]
    """Per share: id, volume id, protocol, size and export locations."""

    def __init__(
        self, name: str, args: ShareServerArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("manila-dhss:index:ShareServer", name, None, opts)
        plan = args.blueprint
        child = pulumi.ResourceOptions(parent=self)

        network = None
        if plan.service_subnet_cidr is not None:
            network = ServiceNetwork(
                f"{name}-network",
                ServiceNetworkArgs(
                    service_network_id=args.service_network_id,
                    service_network_name=args.service_network_name,
                    service_subnet_name=plan.service_subnet_name,
                    service_subnet_cidr=plan.service_subnet_cidr,
                    router_id=plan.router_id,
                ),
                opts=child,
            )

        connectivity = None
        if plan.interface_driver != "noop":
            assert args.service_network_host is not None
            connectivity = HostConnectivity(
                f"{name}-host",
                HostConnectivityArgs(
                    driver=plan.interface_driver,
                    host=args.service_network_host,
                    bridge=args.ovs_integration_bridge,
                    service_network_id=network.network_id if network else None,
                    service_subnet_id=network.subnet_id if network else None,
                    service_subnet_cidr=plan.service_subnet_cidr,
                    service_host_address=plan.host_port_address,
                    admin_network_id=args.admin_network_id,
                    admin_subnet_id=args.admin_subnet_id,
                    admin_subnet_cidr=args.admin_subnet_cidr,
                ),
                opts=child,
            )

        nics = []
        for role in plan.nic_roles:
            if role == "tenant":
                nics.append(Nic(role, args.neutron_net_id, args.neutron_subnet_id))
            elif role == "service":
                assert network is not None
                nics.append(Nic(role, network.network_id, network.subnet_id))
            else:
                assert args.admin_network_id
                assert args.admin_subnet_id
                nics.append(Nic(role, args.admin_network_id, args.admin_subnet_id))

        instance = ServiceInstance(
            f"{name}-instance",
            ServiceInstanceArgs(
                instance_name=plan.instance_name,
                image_id=args.image_id,
                flavor_id=args.flavor_id,
                nics=nics,
                security_group_name=plan.security_group_name,
                ingress_rules=plan.ingress_rules,
                keypair_name=plan.keypair_name if args.public_key else None,
                public_key=args.public_key,
                availability_zone=plan.availability_zone,
                metadata={"manila-dhss:share-server-id": plan.share_server_id},
            ),
            # The server boots while the host is plugged: only the commands need both.
            opts=child,
        )

        ssh_host = instance.addresses[plan.ssh_role]
        connection = command.remote.ConnectionArgs(
            host=ssh_host,
            user=args.service_instance_user,
            private_key=args.private_key,
            password=args.password,
            # Keep dialling for as long as Manila waits for a new instance's SSH login.
            dial_error_limit=math.ceil(args.max_time_to_build_instance / _DIAL_PAUSE_SECONDS),
            proxy=args.ssh_proxy,
        )
        timeout_minutes = (
            math.ceil((args.max_time_to_build_instance + args.max_time_to_attach) / 60) + 10
        )

        self.share_components: dict[str, Share] = {}
        for share in plan.shares:
            self.share_components[share.name] = Share(
                f"{name}-share-{share.name}",
                ShareArgs(
                    share_name=share.name,
                    share_id=share.share_id,
                    size=share.size,
                    protocol=share.protocol,
                    clients=share.clients,
                    volume_name=share.volume_name,
                    server_id=instance.server_id,
                    connection=connection,
                    mount_root=args.share_mount_path,
                    mount_path=share.mount_path,
                    fstype=args.share_volume_fstype,
                    public_address=instance.addresses[plan.public_role],
                    admin_address=instance.addresses[plan.admin_export_role],
                    volume_type=args.cinder_volume_type,
                    availability_zone=plan.availability_zone,
                    protect_volume=args.protect_volumes,
                    device_timeout=args.max_time_to_attach,
                    command_timeout=f"{timeout_minutes}m",
                    reachable_through=[instance, *([connectivity] if connectivity else [])],
                ),
                opts=child,
            )

        addresses = instance.addresses
        self.share_server = pulumi.Output.all(
            instance_id=instance.server_id,
            service_ip=addresses.get("service"),
            admin_ip=addresses.get("admin"),
            tenant_ip=addresses.get("tenant"),
            public_address=addresses[plan.public_role],
            ssh_address=ssh_host,
            service_subnet_id=network.subnet_id if network else None,
            security_group_id=instance.security_group_id,
        ).apply(
            lambda values: {
                "share_server_id": plan.share_server_id,
                "network_mode": plan.mode,
                "service_subnet_cidr": plan.service_subnet_cidr,
                "router_id": plan.router_id,
                **values,
            }
        )
        self.shares = pulumi.Output.all(
            **{
                share.name: pulumi.Output.all(
                    share_id=share.share_id,
                    share_proto=share.protocol,
                    size=share.size,
                    volume_id=self.share_components[share.name].volume_id,
                    export_locations=self.share_components[share.name].export_locations,
                )
                for share in plan.shares
            }
        )
        self.register_outputs({"share_server": self.share_server, "shares": self.shares})
