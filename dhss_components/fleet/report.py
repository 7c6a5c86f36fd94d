"""What the operator sees: one live line per tenant while the fleet runs, then a table.

On a terminal the lines are redrawn in place; anywhere else (CI logs, a pipe) each tenant's
start and end is printed once, so a log stays readable. Rendering is pure; ``Progress`` only
holds the state and the lock, because tenants report from their own threads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TextIO

from .results import Status, TenantResult, format_changes

_SPINNER = "|/-\\"


@dataclass
class TenantProgress:
    tenant: str
    started: float | None = None
    steps: int = 0
    current: str = "waiting"
    result: TenantResult | None = None


def format_duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    minutes, secs = divmod(seconds, 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def progress_line(state: TenantProgress, operation: str, now: float, width: int) -> str:
    name = state.tenant.ljust(width)
    if state.result is not None:
        result = state.result
        mark = "ok " if result.status in (Status.OK, Status.ABSENT) else "!! "
        detail = result.status.value
        if result.changes:
            detail += f"  {format_changes(result.changes)}"
        if result.message and result.status is not Status.OK:
            detail += f"  {result.message}"
        return f"{mark}{name}  {operation}  {detail}  ({format_duration(result.duration)})"
    if state.started is None:
        return f"   {name}  {operation}  waiting"
    spin = _SPINNER[int(now * 4) % len(_SPINNER)]
    elapsed = format_duration(now - state.started)
    steps = f"{state.steps} steps  " if state.steps else ""
    return f"{spin}  {name}  {operation}  {elapsed}  {steps}{state.current}"


class Progress:
    """Per-tenant progress, safe to call from the tenants' threads."""

    def __init__(
        self,
        tenants: Sequence[str],
        operation: str,
        stream: TextIO,
        *,
        live: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.operation = operation
        self.stream = stream
        self.live = stream.isatty() if live is None else live
        self.clock = clock
        self.states = {t: TenantProgress(t) for t in tenants}
        self.width = max((len(t) for t in tenants), default=0)
        self._lock = threading.Lock()
        self._drawn = 0
        self._last_draw = 0.0

    def start(self, tenant: str) -> None:
        with self._lock:
            self.states[tenant].started = self.clock()
            self.states[tenant].current = "starting"
            if not self.live:
                self._print(f"{tenant}: {self.operation} started")
            self._draw(force=True)

    def step(self, tenant: str, text: str, *, counts: bool = True) -> None:
        with self._lock:
            state = self.states[tenant]
            state.current = text
            state.steps += int(counts)
            self._draw(force=False)

    def done(self, result: TenantResult) -> None:
        with self._lock:
            self.states[result.tenant].result = result
            if not self.live:
                self._print(progress_line(self.states[result.tenant], self.operation, 0, 0))
            self._draw(force=True)

    def close(self) -> None:
        with self._lock:
            self._draw(force=True)

    def _print(self, line: str) -> None:
        self.stream.write(line.strip() + "\n")
        self.stream.flush()

    def _draw(self, *, force: bool) -> None:
        if not self.live:
            return
        now = self.clock()
        if not force and now - self._last_draw < 0.1:
            return
        self._last_draw = now
        lines = [progress_line(s, self.operation, now, self.width) for s in self.states.values()]
        out = f"\x1b[{self._drawn}F" if self._drawn else ""
        out += "".join(f"\x1b[2K{line}\n" for line in lines)
        self.stream.write(out)
        self.stream.flush()
        self._drawn = len(lines)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
        for r in [headers, ["-" * w for w in widths], *rows]
    ]
    return "\n".join(lines)


def summary_table(results: Sequence[TenantResult]) -> str:
    """The final table, then one note per tenant that has something to say."""
    rows = [
        [
            r.tenant,
            r.operation,
            r.status.value,
            format_changes(r.changes),
            format_duration(r.duration),
            r.service_subnet_cidr or "-",
            " ".join(r.exports) or "-",
        ]
        for r in results
    ]
    table = format_table(
        [
            "TENANT",
            "OPERATION",
            "RESULT",
            "CHANGES",
            "DURATION",
            "SERVICE SUBNET",
            "EXPORT LOCATIONS",
        ],
        rows,
    )
    notes = [
        f"  {r.tenant}: {r.message}"
        + (f" (log: {r.log_path})" if r.log_path and r.status is not Status.OK else "")
        for r in results
        if r.message
    ]
    if notes:
        table += "\n\n" + "\n".join(notes)
    found = [
        [r.tenant, report.share, report.state.value, finding]
        for r in results
        for report in r.findings
        for finding in report.findings or ("",)
    ]
    if found:
        # verify: every share's check, one line per finding.
        table += "\n\n" + format_table(["TENANT", "SHARE", "IN THE GUEST", "FINDING"], found)
    return table


def totals_line(results: Sequence[TenantResult]) -> str:
    counts: dict[str, int] = {}
    for result in results:
        counts[result.status.value] = counts.get(result.status.value, 0) + 1
    parts = [f"{count} {status}" for status, count in sorted(counts.items())]
    return f"{len(results)} tenant{'s' if len(results) != 1 else ''}: " + ", ".join(parts)
