"""What one tenant's run came to, how a failure is told apart from a lock, and the exit status."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from pulumi.automation.errors import CommandError, ConcurrentUpdateError, StackNotFoundError

from .verify import ShareReport


class Status(StrEnum):
    OK = "ok"
    FAILED = "failed"
    LOCKED = "locked by another run"
    ABSENT = "no stack"
    DRIFT = "drift"
    REFUSED = "refused"
    """Not attempted: what it would take is the operator's decision (the message says it)."""


# Exit statuses of the fleet command.
EXIT_OK = 0
EXIT_FAILED = 1
"""At least one tenant failed, was refused, or was locked by another run."""
EXIT_USAGE = 2
"""Nothing ran: a bad tenants file, a bad option, no passphrase, no CLI."""
EXIT_DRIFT = 3
"""Drift check only: every tenant was checked, and at least one has drifted."""
EXIT_INTERRUPTED = 130
"""Ctrl-C: as a shell reports a command killed by SIGINT."""


@dataclass(frozen=True)
class TenantResult:
    tenant: str
    operation: str
    status: Status
    duration: float = 0.0
    changes: Mapping[str, int] = field(default_factory=dict)
    """Resource operations as Pulumi counts them (create, update, delete, same, ...)."""
    exports: tuple[str, ...] = ()
    """Preferred export locations, one per share."""
    message: str = ""
    """Why it failed, or what is worth knowing (kept protected volumes)."""
    log_path: Path | None = None
    service_subnet_cidr: str | None = None
    kept: tuple[str, ...] = ()
    """Protected resources a destroy left in place."""
    findings: tuple[ShareReport, ...] = ()
    """verify: what each share's in-guest check found."""


def _section(text: str, name: str) -> str:
    match = re.search(rf"\n {name}: (.*?)(?=\n (?:stdout|stderr|code): |\Z)", text, re.S)
    return match.group(1) if match else ""


_OCCURRED = re.compile(r"^\d+ errors? occurred:$")
_STEP = re.compile(
    r"^(?:creating|updating|deleting|replacing|reading|refreshing)(?: failed)? (urn:pulumi:\S+?): "
    r"(.*)$"
)


def _error_detail(first: str, following: list[str]) -> str:
    """Pulumi nests errors: ``1 error occurred:`` then ``* creating urn:...: <why>``, maybe
    nested again. Say which resource failed and the innermost reason."""
    if not _OCCURRED.match(first):
        return first
    resource, reason = "", first
    for line in following:
        item = line.strip()
        if not item.startswith("*"):
            if item:
                break
            continue
        item = item.lstrip("*").strip()
        step = _STEP.match(item)
        if step:
            resource, item = step.group(1).split("::")[-1], step.group(2)
        if not _OCCURRED.match(item):
            reason = item
    return f"{resource}: {reason}" if resource else reason


def error_summary(exc: BaseException) -> str:
    """One line an operator can act on, from a CLI error: the CLI's own ``error:`` line."""
    text = str(exc)
    if isinstance(exc, CommandError):
        for stream in (_section(text, "stderr"), _section(text, "stdout")):
            lines = stream.splitlines()
            for index, line in enumerate(lines):
                stripped = line.strip()
                if stripped.startswith("error:") and stripped != "error: update failed":
                    return _error_detail(
                        stripped.removeprefix("error:").strip(), lines[index + 1 :]
                    )
        last = [line.strip() for line in _section(text, "stderr").splitlines() if line.strip()]
        return last[-1] if last else "the Pulumi CLI failed (see the log)"
    return f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__


def lock_holder(exc: BaseException) -> str:
    """Who holds the lock, from the DIY backend's message (``...: created by u@h (pid 7)``)."""
    match = re.search(r"created by (.+?)(?: at |$)", _section(str(exc), "stderr"), re.M)
    return match.group(1).strip() if match else ""


def classify(exc: BaseException) -> tuple[Status, str]:
    """A failed operation's status and its one-line reason."""
    if isinstance(exc, ConcurrentUpdateError):
        holder = lock_holder(exc)
        return Status.LOCKED, f"held by {holder}" if holder else "another update is in progress"
    if isinstance(exc, StackNotFoundError):
        return Status.ABSENT, "the stack does not exist (nothing to do)"
    return Status.FAILED, error_summary(exc)


def op_counts(changes: Mapping[Any, int] | None) -> dict[str, int]:
    """Pulumi's change summary with plain string keys (the SDK types them as OpType)."""
    return {getattr(op, "value", str(op)): int(count) for op, count in (changes or {}).items()}


def changed_count(changes: Mapping[str, int]) -> int:
    return sum(count for op, count in changes.items() if op != "same")


_SYMBOLS = (
    ("create", "+"),
    ("update", "~"),
    ("replace", "+-"),
    ("delete", "-"),
    ("read", ">"),
    ("refresh", "~"),
)


def format_changes(changes: Mapping[str, int]) -> str:
    parts = [f"{symbol}{changes[op]}" for op, symbol in _SYMBOLS if changes.get(op)]
    others = sorted(op for op in changes if op not in dict(_SYMBOLS) and op != "same")
    parts.extend(f"{op} {changes[op]}" for op in others if changes[op])
    if parts:
        return " ".join(parts)
    return "none" if changes else "-"


def export_paths(shares_output: Any) -> tuple[str, ...]:
    """The preferred (user-facing) export location of each share, from the ``shares`` output."""
    if not isinstance(shares_output, Mapping):
        return ()
    paths = []
    for name in sorted(shares_output):
        share = shares_output[name]
        locations = share.get("export_locations") if isinstance(share, Mapping) else None
        for location in locations or []:
            if isinstance(location, Mapping) and location.get("preferred"):
                paths.append(str(location.get("path")))
    return tuple(paths)


def exit_status(results: Sequence[TenantResult]) -> int:
    if any(r.status in (Status.FAILED, Status.LOCKED, Status.REFUSED) for r in results):
        return EXIT_FAILED
    if any(r.status is Status.DRIFT for r in results):
        return EXIT_DRIFT
    return EXIT_OK
