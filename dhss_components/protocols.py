"""The share protocols, one row each: everything that differs between NFS and CIFS.

Manila picks a helper class per protocol from a map (``share_helpers``: ``NFS=...NFSHelper``,
``CIFS=...CIFSHelperIPAccess``). Here a protocol is a row of plain data and small pure
functions: the port its clients reach, how an access rule's network is written for the
guest's server, how an export location is written, and which share names it cannot serve.
Config checks, the security rules, the export locations and the share script's arguments all
read this table; adding a protocol is adding a row and its part of ``scripts/share.sh``.

Access rules are IPv4 only (see ``config.AccessRule``), so no form here brackets IPv6.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

ProtocolName = Literal["NFS", "CIFS"]
AccessLevel = Literal["rw", "ro"]


def _nfs_client(network: ipaddress.IPv4Network) -> str:
    # Manila's NFSHelper._get_parsed_address_or_cidr: everyone is "*", one host is bare.
    if network.prefixlen == 0:
        return "*"
    if network.prefixlen == network.max_prefixlen:
        return str(network.network_address)
    return network.with_prefixlen


def _samba_client(network: ipaddress.IPv4Network) -> str:
    # Samba's `hosts allow` takes an address, or a network with its prefix length
    # (0.0.0.0/0 admits everyone, overriding the share's `hosts deny = 0.0.0.0/0`).
    if network.prefixlen == network.max_prefixlen:
        return str(network.network_address)
    return network.with_prefixlen


def _nfs_export_path(host: str, share_name: str, mount_path: str) -> str:
    return f"{host}:{mount_path}"


def _cifs_export_path(host: str, share_name: str, mount_path: str) -> str:
    return f"\\\\{host}\\{share_name}"


@dataclass(frozen=True)
class Protocol:
    name: ProtocolName
    """share_proto, as Manila's API takes it."""
    script_name: str
    """The protocol's name in ``share.sh --protocol`` (and its export_/unexport_ functions)."""
    port: int
    """The TCP port its clients reach (NFSv4: 2049 only; SMB: 445 only)."""
    client_form: Callable[[ipaddress.IPv4Network], str]
    """An access rule's network, written as the guest's file server takes it."""
    export_path: Callable[[str, str, str], str]
    """(host address, share name, mount path) -> the export location's path."""
    one_access_level: bool
    """True when every rule of a share must have the same level (Samba's `read only` is
    per share, not per client)."""
    reserved_names: frozenset[str]
    """Share names the server keeps for itself."""
    reserved_why: str


PROTOCOLS: dict[ProtocolName, Protocol] = {
    "NFS": Protocol(
        name="NFS",
        script_name="nfs",
        port=2049,
        client_form=_nfs_client,
        export_path=_nfs_export_path,
        one_access_level=False,
        reserved_names=frozenset(),
        reserved_why="",
    ),
    "CIFS": Protocol(
        name="CIFS",
        script_name="cifs",
        port=445,
        client_form=_samba_client,
        export_path=_cifs_export_path,
        one_access_level=True,
        # Samba's special sections (lib/param/loadparm.h: GLOBAL_NAME, GLOBAL_NAME2, HOMES_NAME,
        # PRINTERS_NAME, compared without case): `net conf` would write the share's parameters
        # into them ([global] rewrites the server's own).
        reserved_names=frozenset({"global", "globals", "homes", "printers"}),
        reserved_why="Samba's special sections [global] (or [globals]), [homes] and [printers]",
    ),
}
