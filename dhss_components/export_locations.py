"""Export locations, listed as Manila lists them ({path, is_admin_only, preferred})."""

from __future__ import annotations

import ipaddress
from typing import Literal, TypedDict


class ExportLocation(TypedDict):
    path: str
    is_admin_only: bool
    preferred: bool


def _host(address: str) -> str:
    return f"[{address}]" if ipaddress.ip_address(address).version == 6 else address


def export_locations(
    protocol: Literal["NFS", "CIFS"],
    share_name: str,
    mount_path: str,
    public_address: str,
    admin_address: str,
) -> list[ExportLocation]:
    """Manila's helpers: the user-facing path first, then the admin one (hlp:101-131, 443-446)."""
    if protocol == "NFS":
        paths = (f"{_host(public_address)}:{mount_path}", f"{_host(admin_address)}:{mount_path}")
    else:
        paths = (f"\\\\{public_address}\\{share_name}", f"\\\\{admin_address}\\{share_name}")
    return [
        {"path": paths[0], "is_admin_only": False, "preferred": True},
        {"path": paths[1], "is_admin_only": True, "preferred": False},
    ]
