"""The allocation ledger: which service subnet block each tenant was given, on disk.

A JSON file beside the tenants' workspaces. It is read, changed and written under an
exclusive lock, so two fleet runs on one machine never hand out one block twice, and it is
replaced atomically, so a crash never leaves half a file.
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..operator_files import OperatorFileError, excerpt, json_document, read_bytes
from .allocation import (
    Allocation,
    HeldSubnet,
    Ledger,
    SubnetRequest,
    allocate_service_subnets,
)

LEDGER_VERSION = 1
_FIX = (
    "restore it from a backup, or remove it: the fleet then relearns each tenant's block from "
    "its stack's state"
)


class LedgerError(Exception):
    """The ledger is damaged; one line saying where and what to do. Nothing ran."""


def _parse(data: bytes, path: Path) -> Ledger:
    try:
        document: Any = json_document(data, str(path))
    except OperatorFileError as exc:
        raise LedgerError(f"{exc}; {_FIX}") from None
    if not isinstance(document, dict) or document.get("version") != LEDGER_VERSION:
        raise LedgerError(f"{path}: not a version {LEDGER_VERSION} ledger; {_FIX}")
    networks = document.get("service_networks", {})
    if not isinstance(networks, dict):
        raise LedgerError(f"{path}: service_networks is not an object; {_FIX}")
    ledger: dict[str, dict[str, str]] = {}
    for network, given in networks.items():
        if not isinstance(given, dict):
            raise LedgerError(
                f"{path}: service_networks.{excerpt(network)} is not an object; {_FIX}"
            )
        ledger[network] = {}
        for tenant, cidr in given.items():
            subnet = _subnet(cidr)
            if subnet is None:
                where = f"service_networks.{excerpt(network)}.{excerpt(tenant)}"
                raise LedgerError(f"{path}: {where} is not an IPv4 subnet in CIDR form; {_FIX}")
            ledger[network][tenant] = subnet
    return ledger


def _subnet(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return str(ipaddress.IPv4Network(value))
    except ValueError:
        return None


class LedgerFile:
    """Open with ``with LedgerFile(path).locked() as ledger:``; call ``save`` to change it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> Ledger:
        """The ledger; empty when there is none yet (it is only ever replaced, never removed)."""
        if not self.path.exists():
            return {}
        try:
            data = read_bytes(self.path)
        except OperatorFileError as exc:
            raise LedgerError(f"{exc}; {_FIX}") from None
        return _parse(data, self.path)

    @contextmanager
    def locked(self) -> Iterator[LockedLedger]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield LockedLedger(self, self.read())
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def write(self, ledger: Ledger) -> None:
        document = {
            "version": LEDGER_VERSION,
            "comment": "service subnet blocks given by the manila-dhss fleet; see docs/fleet.md",
            "service_networks": {net: dict(given) for net, given in sorted(ledger.items())},
        }
        fd, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".ledger-")
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(document, file, indent=2, sort_keys=True)
            file.write("\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self.path)


class LockedLedger:
    def __init__(self, file: LedgerFile, ledger: Ledger) -> None:
        self._file = file
        self.ledger = ledger

    def save(self, ledger: Ledger) -> None:
        if ledger != self.ledger:
            self._file.write(ledger)
            self.ledger = ledger


def reserve(
    file: LedgerFile,
    requests: Iterable[SubnetRequest],
    remember: Callable[[Sequence[str]], Mapping[str, str]] = lambda _: {},
    held: Mapping[str, Sequence[HeldSubnet]] | None = None,
    nearby: Mapping[str, Sequence[str]] | None = None,
) -> Allocation:
    """Allocate under the ledger's lock and remember the result, in one transaction.

    ``remember`` is asked, still under the lock, for the CIDRs of the tenants the ledger does
    not know (an existing stack's service subnet); whatever two fleet runs do at once, one waits
    for the other, so a block is never given twice. ``held`` is what the service networks hold
    in the cloud, ``nearby`` what each tenant's own stack refuses besides (survey.py). Raises
    AllocationError.
    """
    requests = list(requests)
    with file.locked() as locked:
        known = {tenant for given in locked.ledger.values() for tenant in given}
        # A host's pool has no network to read: whether a tenant's subnet exists is in its
        # stack's state, asked for every such tenant.
        unknown = [
            r.tenant
            for r in requests
            if (r.tenant not in known or not r.in_cloud) and r.pinned is None
        ]
        allocation = allocate_service_subnets(
            requests, locked.ledger, remember(unknown) if unknown else {}, held, nearby
        )
        locked.save(allocation.ledger)
    return allocation
