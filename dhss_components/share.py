"""Share: one Cinder volume, its attachment, and the command that mounts and exports it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import pulumi
import pulumi_command as command
import pulumi_openstack as openstack

from .export_locations import ExportLocation, export_locations
from .share_script import (
    AccessClient,
    ShareScriptParams,
    render_delete_command,
    render_ensure_command,
)


@dataclass
class ShareArgs:
    share_name: str
    """The share's name: the directory under share_mount_path and the CIFS share name."""
    share_id: str
    """Stable id standing in for Manila's share instance id."""
    size: int
    """GiB. Growing it extends the volume online and the filesystem in place."""
    protocol: Literal["NFS", "CIFS"]
    clients: tuple[AccessClient, ...]
    """Exactly the access rules the guest will enforce."""
    volume_name: str
    server_id: pulumi.Input[str]
    connection: command.remote.ConnectionArgs
    mount_root: str
    mount_path: str
    fstype: Literal["ext4", "ext3"]
    public_address: pulumi.Input[str]
    admin_address: pulumi.Input[str]
    volume_type: str | None = None
    availability_zone: str | None = None
    protect_volume: bool = True
    device_timeout: int = 120
    command_timeout: str = "20m"
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

        volume = openstack.blockstorage.Volume(
            f"{name}-volume",
            name=args.volume_name,
            size=args.size,
            volume_type=args.volume_type,
            availability_zone=args.availability_zone,
            # A bigger size is a Cinder extend of the attached volume, not a new volume.
            enable_online_resize=True,
            metadata={"manila-dhss:share": args.share_name, "manila-dhss:share-id": args.share_id},
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect_volume),
        )
        attachment = openstack.compute.VolumeAttach(
            f"{name}-attachment",
            instance_id=args.server_id,
            volume_id=volume.id,
            # No device: the name Nova reports is a guess; the script finds the disk by its
            # virtio serial (the volume id) instead.
            opts=pulumi.ResourceOptions(parent=self),
        )

        def params(volume_id: str) -> ShareScriptParams:
            return ShareScriptParams(
                name=args.share_name,
                volume_id=volume_id,
                protocol=args.protocol,
                size_gib=args.size,
                clients=args.clients,
                mount_root=args.mount_root,
                fstype=args.fstype,
                device_timeout=args.device_timeout,
            )

        script = volume.id.apply(params)
        ensure = script.apply(render_ensure_command)
        command.remote.Command(
            f"{name}-export",
            connection=args.connection,
            create=ensure,
            # A rule change or a bigger size runs the same idempotent script again: the share
            # is updated in place, never unexported or unmounted.
            update=ensure,
            delete=script.apply(render_delete_command),
            # Replace the command (the old delete unexports and unmounts, then the new create
            # runs) for a new attachment (a new server), or a new protocol or mount path:
            # `ensure` serves one protocol on one path and would leave the old one behind.
            triggers=[attachment.id, args.protocol, args.mount_root],
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
        self.export_locations = pulumi.Output.all(args.public_address, args.admin_address).apply(
            lambda addresses: export_locations(
                args.protocol, args.share_name, args.mount_path, addresses[0], addresses[1]
            )
        )
        self.register_outputs(
            {"volume_id": self.volume_id, "export_locations": self.export_locations}
        )
