"""The commands that make one Cinder volume a share on the service instance, and undo it.

The Share component runs these strings over SSH with a `pulumi_command` `remote.Command`
(`render_ensure_command` as create and update, `render_delete_command` as delete). Each
carries `scripts/share.sh` in a here-document (see script_heredoc).

Pure: typed parameters in, text out. The parameters were checked by the config; the script
checks its arguments again, as any program run as root should.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .protocols import PROTOCOLS, AccessLevel, ProtocolName
from .script_heredoc import SCRIPTS, heredoc_command, script_text

SCRIPT_PATH: Path = SCRIPTS / "share.sh"
"""The script that the commands carry."""
SCRIPT_DELIMITER = "DHSS_SHARE_SCRIPT"
"""Ends the here-document that carries the script."""


@dataclass(frozen=True)
class AccessClient:
    """One ip access rule of a share."""

    level: AccessLevel
    network: ipaddress.IPv4Network
    """access_to, parsed: one address is a /32."""


@dataclass(frozen=True)
class ShareScriptParams:
    """What share.sh needs to know about one share, besides its volume's id."""

    name: str
    """The share's name: the directory under mount_root and the Samba share name."""
    protocol: ProtocolName
    size_gib: int
    """ensure waits (bounded) until the device is at least this big, then grows the
    filesystem online."""
    clients: tuple[AccessClient, ...]
    """The share's access rules, in order; exactly these are exported."""
    mount_root: str
    """share_mount_path."""
    fstype: Literal["ext4", "ext3"]
    """share_volume_fstype."""
    device_timeout: int
    """Seconds to wait for the device, and for an extend to reach the guest (Manila's
    max_time_to_attach)."""


def share_script() -> str:
    """The text of scripts/share.sh as the commands carry it (script_text: no comment lines)."""
    return script_text(SCRIPT_PATH, SCRIPT_DELIMITER)


def _command(arguments: list[str]) -> str:
    return heredoc_command(
        ["sudo", "-n", "bash", "-s", "--", *arguments], SCRIPT_PATH, SCRIPT_DELIMITER
    )


def render_ensure_command(params: ShareScriptParams, volume_id: str) -> str:
    """The command that creates or updates the share (remote.Command create and update)."""
    return _command(["ensure", *_share_arguments(params, volume_id)])


def render_check_command(params: ShareScriptParams, volume_id: str) -> str:
    """The read-only command that compares the guest with what ensure would make of it.

    share.sh check takes ensure's arguments and changes nothing. It prints one line per
    finding, ``drift <share> <aspect>: <what it saw>``, or ``ok <share>``, and exits 0 when
    the share is as declared, 3 on drift, 1 when it cannot tell.
    """
    return _command(["check", *_share_arguments(params, volume_id)])


def _share_arguments(params: ShareScriptParams, volume_id: str) -> list[str]:
    protocol = PROTOCOLS[params.protocol]
    arguments = [
        "--name", params.name,
        "--volume-id", volume_id,
        "--protocol", protocol.script_name,
        "--mount-root", params.mount_root,
        "--fstype", params.fstype,
        "--size-gib", str(params.size_gib),
        "--device-timeout", str(params.device_timeout),
    ]  # fmt: skip
    for client in params.clients:
        arguments += ["--client", f"{client.level}:{protocol.client_form(client.network)}"]
    return arguments


def render_delete_command(params: ShareScriptParams) -> str:
    """The command that unexports and unmounts the share (remote.Command delete).

    It never formats or wipes: the data stays on the volume.
    """
    return _command(
        [
            "delete",
            "--name", params.name,
            "--protocol", PROTOCOLS[params.protocol].script_name,
            "--mount-root", params.mount_root,
        ]
    )  # fmt: skip
