"""The allocation ledger: which service subnet block each tenant was given, on disk.

A JSON file beside the tenants' workspaces. It is read, changed and written under an
exclusive lock, so two fleet runs on one machine never hand out one block twice, and it is
replaced atomically, so a crash never leaves half a file.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .allocation import Allocation, Ledger, SubnetRequest, allocate_service_subnets

LEDGER_VERSION = 1


class LedgerError(Exception):
    pass


def _parse(text: str, path: Path) -> Ledger:
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LedgerError(f"{path}: not valid JSON ({exc}); restore it or remove it") from None
    if not isinstance(data, dict) or data.get("version") != LEDGER_VERSION:
        raise LedgerError(f"{path}: not a version {LEDGER_VERSION} ledger")
    networks = data.get("service_networks", {})
    return {str(net): {str(t): str(c) for t, c in given.items()} for net, given in networks.items()}


class LedgerFile:
    """Open with ``with LedgerFile(path).locked() as ledger:``; call ``save`` to change it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> Ledger:
        try:
            return _parse(self.path.read_text(encoding="utf-8"), self.path)
        except FileNotFoundError:
            return {}

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
) -> Allocation:
    """Allocate under the ledger's lock and remember the result, in one transaction.

    ``remember`` is asked, still under the lock, for the CIDRs of the tenants the ledger does
    not know (an existing stack's service subnet); whatever two fleet runs do at once, one waits for
    the other, so a block is never given twice. Raises AllocationError.
    """
    requests = list(requests)
    with file.locked() as locked:
        known = {tenant for given in locked.ledger.values() for tenant in given}
        unknown = [r.tenant for r in requests if r.tenant not in known and r.pinned is None]
        allocation = allocate_service_subnets(
            requests, locked.ledger, remember(unknown) if unknown else {}
        )
        locked.save(allocation.ledger)
    return allocation
