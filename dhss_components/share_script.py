"""The commands that make one Cinder volume a share on the service instance, and undo it.

The Share component runs these strings over SSH with a `pulumi_command` `remote.Command`
(`render_ensure_command` as create and update, `render_delete_command` as delete). Each string
carries `scripts/share.sh` itself in a here-document, so a change to the script shows up in
`pulumi preview` as an update, and the guest tests run byte for byte what the program declares.

Everything here is pure: no cloud, no SSH, no files other than the script.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

SCRIPT_PATH = Path(__file__).with_name("scripts") / "share.sh"
"""The script that the commands carry."""
SCRIPT_DELIMITER = "DHSS_SHARE_SCRIPT"
"""Ends the here-document that carries the script; no line of the script may equal it."""

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
_VOLUME_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_MOUNT_ROOT = re.compile(r"/[A-Za-z0-9._/-]*")


@dataclass(frozen=True)
class AccessClient:
    """One ip access rule of a share, as Manila's API takes it."""

    level: Literal["rw", "ro"]
    """access_level."""
    address: str
    """access_to as the user wrote it (already validated): an IPv4/IPv6 address or CIDR."""


@dataclass(frozen=True)
class ShareScriptParams:
    """What share.sh needs to know about one share."""

    name: str
    """Share name (^[a-z0-9][a-z0-9_-]{0,62}$): the directory under mount_root and the Samba
    share name."""
    volume_id: str
    """Cinder volume id; the guest finds the device as /dev/disk/by-id/virtio-<volume_id[:20]>."""
    protocol: Literal["NFS", "CIFS"]
    """share_proto."""
    size_gib: int
    """The volume's size: ensure waits (bounded) until the device is at least this big, then
    grows the filesystem online."""
    clients: tuple[AccessClient, ...] = ()
    """The share's access rules, in order; exactly these are exported."""
    mount_root: str = "/shares"
    """share_mount_path."""
    fstype: Literal["ext4", "ext3"] = "ext4"
    """share_volume_fstype."""
    device_timeout: int = 120
    """Seconds to wait for the device, and for an extend to reach the guest (Manila's
    max_time_to_attach)."""


@cache
def share_script() -> str:
    """The text of scripts/share.sh, exactly as it is on disk."""
    text = SCRIPT_PATH.read_text("utf-8")
    if not text.endswith("\n") or f"\n{SCRIPT_DELIMITER}\n" in f"\n{text}":
        raise ValueError(
            f"scripts/share.sh must end with a newline and have no line {SCRIPT_DELIMITER!r},"
            " which would end the here-document that carries it"
        )
    return text


def nfs_client(address: str) -> str:
    """The NFS client for an access rule, in Manila's forms (NFSHelper._get_parsed_address_or_cidr).

    A /0 network is "*", a single IPv4 address is bare, a single IPv6 address is "[addr]",
    and any other IPv6 network is "[addr]/len" (IPv4 networks stay "addr/len").
    Raises ValueError for anything that is not an address or a network (host bits set included,
    as Manila does).
    """
    try:
        network = ipaddress.ip_network(address)
    except ValueError as error:
        raise ValueError(
            f"access_to {address!r} is not an IP address or network: {error}; "
            "give an address like 10.0.0.5 or a network like 10.0.0.0/24"
        ) from error
    if network.prefixlen == 0:
        return "*"
    host = str(network.network_address)
    if network.version == 4:
        return host if network.prefixlen == network.max_prefixlen else f"{host}/{network.prefixlen}"
    if network.prefixlen == network.max_prefixlen:
        return f"[{host}]"
    return f"[{host}]/{network.prefixlen}"


def _check(params: ShareScriptParams) -> None:
    """Refuse parameters that share.sh would refuse, before they reach a command."""
    if not _NAME.fullmatch(params.name):
        raise ValueError(f"share name {params.name!r} must match ^[a-z0-9][a-z0-9_-]{{0,62}}$")
    if not _MOUNT_ROOT.fullmatch(params.mount_root) or params.mount_root == "/":
        raise ValueError(
            f"share_mount_path {params.mount_root!r} must be an absolute directory"
            " of letters, digits and ._-/ (like /shares)"
        )
    if params.protocol not in ("NFS", "CIFS"):
        raise ValueError(f"share_proto {params.protocol!r} must be NFS or CIFS")


def _command(arguments: list[str]) -> str:
    """`sudo -n bash -s -- <arguments>` with share.sh as its stdin, in a here-document."""
    line = shlex.join(["sudo", "-n", "bash", "-s", "--", *arguments])
    return f"{line} <<'{SCRIPT_DELIMITER}'\n{share_script()}{SCRIPT_DELIMITER}\n"


def render_ensure_command(params: ShareScriptParams) -> str:
    """The command that creates or updates the share (remote.Command create and update)."""
    _check(params)
    if not _VOLUME_ID.fullmatch(params.volume_id):
        raise ValueError(f"volume id {params.volume_id!r} is not a Cinder volume id")
    if params.fstype not in ("ext4", "ext3"):
        raise ValueError(f"share_volume_fstype {params.fstype!r} must be ext4 or ext3")
    if params.size_gib < 1:
        raise ValueError(f"share size {params.size_gib} must be at least 1 GiB")
    if params.device_timeout < 1:
        raise ValueError(f"device timeout {params.device_timeout} must be at least 1 second")
    arguments = [
        "ensure",
        "--name", params.name,
        "--volume-id", params.volume_id,
        "--protocol", params.protocol.lower(),
        "--mount-root", params.mount_root,
        "--fstype", params.fstype,
        "--size-gib", str(params.size_gib),
        "--device-timeout", str(params.device_timeout),
    ]  # fmt: skip
    for client in params.clients:
        if client.level not in ("rw", "ro"):
            raise ValueError(f"access_level {client.level!r} must be rw or ro")
        nfs_form = nfs_client(client.address)  # checks the address for either protocol
        address = nfs_form if params.protocol == "NFS" else client.address
        arguments += ["--client", f"{client.level}:{address}"]
    return _command(arguments)


def render_delete_command(params: ShareScriptParams) -> str:
    """The command that unexports and unmounts the share (remote.Command delete).

    It never formats or wipes: the data stays on the volume.
    """
    _check(params)
    return _command(
        [
            "delete",
            "--name", params.name,
            "--protocol", params.protocol.lower(),
            "--mount-root", params.mount_root,
        ]
    )  # fmt: skip
