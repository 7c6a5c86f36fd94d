"""Share: one Cinder volume, its attachment, and the command that mounts and exports it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_command as command
import pulumi_openstack as openstack

from .blueprint import ShareBlueprint
from .export_locations import ExportLocation, export_locations
from .protocols import PROTOCOLS
from .share_script import render_delete_command, render_ensure_command


@dataclass
class ShareArgs:
    blueprint: ShareBlueprint
    server_id: pulumi.Input[str]
    connection: command.remote.ConnectionArgs
    command_timeout: str
    public_address: pulumi.Input[str]
    admin_address: pulumi.Input[str]
    reachable_through: Sequence[pulumi.Resource] = ()
    """What SSH to the instance needs (its group and rules, the host plug): created before
    the command runs, and deleted only after its delete has run."""


class Share(pulumi.ComponentResource):
    volume_id: pulumi.Output[str]
    export_locations: pulumi.Output[list[ExportLocation]]

    def __init__(
        self, name: str, args: ShareArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("manila-dhss:index:Share", name, None, opts)
        share = args.blueprint

        volume = openstack.blockstorage.Volume(
            f"{name}-volume",
            name=share.volume_name,
            size=share.size,
            volume_type=share.volume_type,
            availability_zone=share.availability_zone,
            # A bigger size is a Cinder extend of the attached volume, not a new volume.
            enable_online_resize=True,
            snapshot_id=share.snapshot_id,
            source_vol_id=share.source_volume_id,
            metadata={"manila-dhss:share": share.name, "manila-dhss:share-id": share.share_id},
            opts=pulumi.ResourceOptions(
                parent=self,
                protect=share.protect_volume,
                # Where the data came from matters once, at creation: dropping or changing the
                # source later never replaces the volume that now holds the share's data.
                ignore_changes=["snapshot_id", "source_vol_id"],
            ),
        )
        attachment = openstack.compute.VolumeAttach(
            f"{name}-attachment",
            instance_id=args.server_id,
            volume_id=volume.id,
            # No device: the name Nova reports is a guess; the script finds the disk by its
            # virtio serial (the volume id) instead.
            opts=pulumi.ResourceOptions(parent=self),
        )

        ensure = volume.id.apply(lambda volume_id: render_ensure_command(share.script, volume_id))
        command.remote.Command(
            f"{name}-export",
            connection=args.connection,
            create=ensure,
            # A rule change or a bigger size runs the same idempotent script again: the share
            # is updated in place, never unexported or unmounted.
            update=ensure,
            delete=render_delete_command(share.script),
            # Replace the command (the old delete unexports and unmounts, then the new create
            # runs) for a new attachment (a new server), or a new protocol or mount path:
            # `ensure` serves one protocol on one path and would leave the old one behind.
            triggers=[attachment.id, share.protocol, share.script.mount_root],
            # The provider would pass previous output through SSH Setenv, which sshd refuses
            # without AcceptEnv (Manila's service image has none).
            add_previous_output_in_env=False,
            logging=command.remote.Logging.STDERR,
            opts=pulumi.ResourceOptions(
                parent=self,
                # Destroy order follows dependencies: unexport and unmount first, then
                # detach, and only then remove what SSH needs (the group's rules, the plug).
                depends_on=[attachment, *args.reachable_through],
                # Never run the old delete after the new create on the same share.
                delete_before_replace=True,
                custom_timeouts=pulumi.CustomTimeouts(
                    create=args.command_timeout,
                    update=args.command_timeout,
                    delete=args.command_timeout,
                ),
            ),
        )

        self.volume_id = volume.id
        protocol = PROTOCOLS[share.protocol]
        self.export_locations = pulumi.Output.all(args.public_address, args.admin_address).apply(
            lambda addresses: export_locations(
                protocol, share.name, share.mount_path, addresses[0], addresses[1]
            )
        )
        self.register_outputs(
            {"volume_id": self.volume_id, "export_locations": self.export_locations}
        )
