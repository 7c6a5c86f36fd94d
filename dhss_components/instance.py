"""ServiceInstance: the Nova server that serves the shares, with its ports, keypair and group."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_openstack as openstack
import pulumi_tls as tls

from .blueprint import InstanceBlueprint
from .host_keys import cloud_config
from .network import Placement
from .network_modes import NicRole


@dataclass
class ServiceInstanceArgs:
    blueprint: InstanceBlueprint
    placements: Sequence[Placement]
    """Each NIC's network and subnet, in the blueprint's order of NICs."""


class ServiceInstance(pulumi.ComponentResource):
    server_id: pulumi.Output[str]
    addresses: dict[NicRole, pulumi.Output[str]]
    """The instance's fixed address on each of its networks."""
    security_group_id: pulumi.Output[str]
    host_key: pulumi.Output[str] | None
    """The public half of the host key the stack generated for it (None if it made none)."""

    def __init__(
        self, name: str, args: ServiceInstanceArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("manila-dhss:index:ServiceInstance", name, None, opts)
        blueprint = args.blueprint
        child = pulumi.ResourceOptions(parent=self)

        group = openstack.networking.SecGroup(
            f"{name}-security-group",
            name=blueprint.security_group_name,
            description="This security group is intended to be used by share service.",
            opts=child,
        )
        self.security_group_id = group.id
        for rule in blueprint.ingress_rules:
            openstack.networking.SecGroupRule(
                # Named by content: adding or removing a rule never touches the others.
                f"{name}-{rule.key}",
                security_group_id=group.id,
                direction="ingress",
                ethertype=rule.ethertype,
                protocol=rule.protocol,
                port_range_min=rule.port,
                port_range_max=rule.port,
                remote_ip_prefix=str(rule.remote),
                description=rule.why,
                opts=child,
            )

        ports = []
        self.addresses = {}
        for placement in args.placements:
            port = openstack.networking.Port(
                f"{name}-{placement.role}-port",
                network_id=placement.network_id,
                fixed_ips=[openstack.networking.PortFixedIpArgs(subnet_id=placement.subnet_id)],
                device_owner="manila",
                # On the port at creation: Manila adds its group only after boot, so the
                # instance first runs behind the project's default group.
                security_group_ids=[group.id],
                opts=child,
            )
            ports.append(port)
            self.addresses[placement.role] = port.all_fixed_ips[0]

        keypair = None
        if blueprint.keypair_name and blueprint.public_key:
            keypair = openstack.compute.Keypair(
                f"{name}-keypair",
                name=blueprint.keypair_name,
                public_key=blueprint.public_key,
                # A new public key is a new keypair of the same name: Nova refuses a second one
                # (KeyPairExists), so the old goes first. (The server keeps the key it booted
                # with; only a rebuilt server gets the new one.)
                opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),
            )

        self.host_key = None
        user_data: pulumi.Output[str] | None = None
        if blueprint.generate_host_key:
            # Its own resource, apart from the server: a rebuilt server gets the same key, so
            # the commands that pinned it still recognise the server behind the addresses.
            host_key = tls.PrivateKey(f"{name}-host-key", algorithm="ED25519", opts=child)
            self.host_key = host_key.public_key_openssh
            user_data = pulumi.Output.all(
                host_key.private_key_openssh, host_key.public_key_openssh
            ).apply(lambda keys: pulumi.Output.secret(cloud_config(keys[0], keys[1])))

        server = openstack.compute.Instance(
            f"{name}-server",
            name=blueprint.name,
            image_id=blueprint.image_id,
            flavor_id=blueprint.flavor_id,
            key_pair=keypair.name if keypair else None,
            availability_zone=blueprint.availability_zone,
            networks=[openstack.compute.InstanceNetworkArgs(port=port.id) for port in ports],
            metadata=dict(blueprint.metadata),
            user_data=user_data,
            # A clean shutdown flushes the shares' filesystems before Nova deletes the server.
            stop_before_destroy=True,
            opts=pulumi.ResourceOptions(
                parent=self,
                # A new image published under the same name would rebuild the server, wiping
                # its root disk (fstab, exports). The image is chosen once; replacing the
                # server is an explicit operator action (pulumi up --replace). The same for
                # its user data: a new host key never rebuilds the server by surprise.
                ignore_changes=["image_id", "image_name", "user_data"],
                # Its ports exist before it and outlive it: a replacement must free them first
                # (Nova refuses a port that another server holds).
                delete_before_replace=True,
            ),
        )
        self.server_id = server.id

        self.register_outputs(
            {
                "server_id": self.server_id,
                "security_group_id": self.security_group_id,
                "addresses": self.addresses,
                "host_key": self.host_key,
            }
        )
