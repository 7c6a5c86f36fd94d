"""ServiceInstance: the Nova server that serves the shares, with its ports, keypair and group."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import pulumi
import pulumi_openstack as openstack

from .security_rules import IngressRule

NicRole = Literal["tenant", "service", "admin"]


@dataclass(frozen=True)
class Nic:
    role: NicRole
    network_id: pulumi.Input[str]
    subnet_id: pulumi.Input[str]


@dataclass
class ServiceInstanceArgs:
    instance_name: str
    """Manila's service_instance_name_template % "<backend>_<share server id>"."""
    image_id: str
    """The one active image named service_image_name, resolved once (see ignore_changes)."""
    flavor_id: str
    nics: Sequence[Nic]
    """In Manila's order: tenant (direct modes), service, admin."""
    security_group_name: str
    ingress_rules: Sequence[IngressRule]
    keypair_name: str | None = None
    public_key: str | None = None
    availability_zone: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


class ServiceInstance(pulumi.ComponentResource):
    server_id: pulumi.Output[str]
    addresses: dict[NicRole, pulumi.Output[str]]
    """The instance's fixed address on each of its networks."""
    security_group_id: pulumi.Output[str]

    def __init__(
        self, name: str, args: ServiceInstanceArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("manila-dhss:index:ServiceInstance", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        group = openstack.networking.SecGroup(
            f"{name}-security-group",
            name=args.security_group_name,
            description="This security group is intended to be used by share service.",
            opts=child,
        )
        self.security_group_id = group.id
        for rule in args.ingress_rules:
            openstack.networking.SecGroupRule(
                # Named by content: adding or removing a rule never touches the others.
                f"{name}-{rule.key}",
                security_group_id=group.id,
                direction="ingress",
                ethertype=rule.ethertype,
                protocol=rule.protocol,
                port_range_min=rule.port,
                port_range_max=rule.port,
                remote_ip_prefix=rule.remote_ip_prefix,
                description=rule.why,
                opts=child,
            )

        ports = []
        self.addresses = {}
        for nic in args.nics:
            port = openstack.networking.Port(
                f"{name}-{nic.role}-port",
                network_id=nic.network_id,
                fixed_ips=[openstack.networking.PortFixedIpArgs(subnet_id=nic.subnet_id)],
                device_owner="manila",
                # On the port at creation: Manila adds its group only after boot, so the
                # instance first runs behind the project's default group.
                security_group_ids=[group.id],
                opts=child,
            )
            ports.append(port)
            self.addresses[nic.role] = port.all_fixed_ips[0]

        keypair = None
        if args.keypair_name and args.public_key:
            keypair = openstack.compute.Keypair(
                f"{name}-keypair",
                name=args.keypair_name,
                public_key=args.public_key,
                opts=child,
            )

        server = openstack.compute.Instance(
            f"{name}-server",
            name=args.instance_name,
            image_id=args.image_id,
            flavor_id=args.flavor_id,
            key_pair=keypair.name if keypair else None,
            availability_zone=args.availability_zone,
            networks=[openstack.compute.InstanceNetworkArgs(port=port.id) for port in ports],
            metadata=args.metadata,
            # A clean shutdown flushes the shares' filesystems before Nova deletes the server.
            stop_before_destroy=True,
            opts=pulumi.ResourceOptions(
                parent=self,
                # A new image published under the same name would rebuild the server, wiping
                # its root disk (fstab, exports). The image is chosen once; replacing the
                # server is an explicit operator action (pulumi up --replace).
                ignore_changes=["image_id", "image_name"],
            ),
        )
        self.server_id = server.id

        self.register_outputs(
            {
                "server_id": self.server_id,
                "security_group_id": self.security_group_id,
                "addresses": self.addresses,
            }
        )
