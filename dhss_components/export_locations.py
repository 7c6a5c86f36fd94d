"""Export locations, listed as Manila lists them ({path, is_admin_only, preferred})."""

from __future__ import annotations

from typing import TypedDict

from .protocols import Protocol


class ExportLocation(TypedDict):
    path: str
    is_admin_only: bool
    preferred: bool


def export_locations(
    protocol: Protocol,
    share_name: str,
    mount_path: str,
    public_address: str,
    admin_address: str,
) -> list[ExportLocation]:
    """Manila's helpers: the user-facing path first, then the admin one.

    (NFSHelper.create_exports and CIFSHelperIPAccess.create_exports in
    manila/share/drivers/helpers.py; see docs/manila.md.)
    """
    return [
        {
            "path": protocol.export_path(public_address, share_name, mount_path),
            "is_admin_only": False,
            "preferred": True,
        },
        {
            "path": protocol.export_path(admin_address, share_name, mount_path),
            "is_admin_only": True,
            "preferred": False,
        },
    ]
