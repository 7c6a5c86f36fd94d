"""Pure scheduling model: a dependency graph of timed operations, run as Pulumi's engine runs it.

Nothing here knows about OpenStack or Manila; ``critical_path.py`` supplies the graph and the
timing of each operation. The pieces:

* :func:`engine_graph` turns what a Pulumi program registers (custom and component
  resources, with parents and dependency URNs) into the steps Pulumi's engine runs: one per
  registration (a component's too, and the stack's and each default provider's), each sent
  once its parent and its dependencies have completed, as the Python SDK sends them.
* :func:`schedule` runs a graph with at most ``parallel`` operations in flight (Pulumi's
  ``--parallel``), strictly in the order they became ready (the engine's step executor),
  with named locks (a mutex held for part of an operation, e.g. nova-compute's per-instance
  lock around a volume attach) and a timing function that says, for an operation started at
  a given time, when its work really finished and when the client noticed.
* Poll schedules: when a client that polls observes a state change that happened at a given
  time (terraform's ``StateChangeConf``, a fixed-interval poll, a backed-off dial).
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field


class GraphError(ValueError):
    """The graph cannot be scheduled: unknown dependency or a cycle."""


# -- the graph a program declares, as the engine sees it ----------------------------------------


ROOT = "pulumi:pulumi:Stack"
"""The stack's root resource: the engine's first step, the parent of every parentless resource."""


@dataclass(frozen=True)
class Declared:
    """One resource as a program registers it."""

    urn: str
    custom: bool
    """False for a component resource (it does no work, but it is still a step)."""
    parent: str = ""
    """Empty: the stack's root resource."""
    dependencies: tuple[str, ...] = ()
    package: str = ""
    """For a custom resource, the package whose default provider it uses ("" for none)."""


def default_provider(package: str) -> str:
    return f"default provider: {package}"


def engine_graph(declared: Sequence[Declared]) -> dict[str, tuple[str, ...]]:
    """Every step the engine runs → the steps whose completion its registration waits for.

    The result keeps the order of ``declared`` (the order the program constructed its
    resources, which decides which of several registrations that become ready at the same
    moment is sent first), starting with the stack's root resource, and with each default
    provider just before the first resource that uses it.
    This is how the engine and the Python SDK work (see benchmarks/README.md for the sources):

    * every registration, component or custom, is a step that takes one of the step executor's
      workers; a component's step does no provider work, but its URN (which its children
      need) is only returned once the step ran;
    * the SDK sends a registration only once its parent's URN and every dependency's URN
      have resolved, i.e. once those steps completed;
    * a dependency on a (local) component stands for every custom resource beneath it
      (through nested components, not through custom resources' own children), except the
      dependent itself and what lies beneath it, as the SDK's ``_add_dependency`` expands it;
    * the first registration of a package makes the engine register that package's default
      provider (another step) and every resource of the package waits for it.
    """
    by_urn = {d.urn: d for d in declared}
    children: dict[str, list[str]] = {d.urn: [] for d in declared}
    for d in declared:
        if d.parent:
            if d.parent not in by_urn:
                raise GraphError(f"{d.urn} has an unregistered parent: {d.parent}")
            children[d.parent].append(d.urn)

    def beneath(urn: str) -> set[str]:
        found: set[str] = set()
        stack = [urn]
        while stack:
            for child in children[stack.pop()]:
                if child not in found:
                    found.add(child)
                    stack.append(child)
        return found

    def expand(urn: str, exclude: set[str]) -> list[str]:
        if urn not in by_urn:
            raise GraphError(f"dependency on an unregistered resource: {urn}")
        if by_urn[urn].custom:
            return [] if urn in exclude else [urn]
        out: list[str] = []
        stack = list(reversed(children[urn]))
        while stack:
            current = stack.pop()
            if current in exclude:
                continue
            if by_urn[current].custom:
                out.append(current)
            else:
                stack.extend(reversed(children[current]))
        return out

    graph: dict[str, tuple[str, ...]] = {ROOT: ()}
    for d in declared:
        exclude = {d.urn} | beneath(d.urn)
        waits: dict[str, None] = {d.parent or ROOT: None}
        for dep in d.dependencies:
            for urn in expand(dep, exclude):
                waits[urn] = None
        if d.custom and d.package:
            provider = default_provider(d.package)
            if provider not in graph:
                # Registered by the engine when this, the package's first resource, arrives.
                graph[provider] = tuple(waits)
            waits[provider] = None
        graph[d.urn] = tuple(waits)
    return graph


# -- scheduling --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Op:
    """One operation: what it waits for, and the locks its work needs."""

    name: str
    kind: str
    deps: tuple[str, ...] = ()
    locks: tuple[str, ...] = ()
    key: str = ""
    """Which instance of its kind it is (e.g. the share it belongs to); timing may use it."""


@dataclass(frozen=True)
class Span:
    """When an operation ran.

    ``start``: the engine started it (a parallelism slot is taken). ``work_start`` /
    ``work_end``: the cloud did the work (locks are taken at ``work_start``). ``end``: the
    client noticed and dependents may start (the slot is released). ``lock_until``: when its
    locks are released (``work_end`` unless the timing says otherwise).
    """

    start: float
    work_start: float
    work_end: float
    end: float
    lock_until: float

    @staticmethod
    def exact(start: float, seconds: float) -> Span:
        """Work that starts at once and is noticed the moment it ends."""
        return Span(start, start, start + seconds, start + seconds, start + seconds)


Timing = Callable[[Op, float, float], Span]
"""(operation, start, time its locks are free (>= start)) -> its span."""


@dataclass
class Schedule:
    ops: dict[str, Op]
    spans: dict[str, Span]

    @property
    def makespan(self) -> float:
        return max((s.end for s in self.spans.values()), default=0.0)

    def critical_chain(self) -> list[str]:
        """The operations that set the finish time, first to last.

        From the last operation to finish, step to the dependency that finished last; where an
        operation started later than all its dependencies (it waited for a slot or a lock), the
        chain stops there, and the waiting shows as a gap in the spans.
        """
        if not self.spans:
            return []
        current: str | None = max(self.spans, key=lambda n: self.spans[n].end)
        chain: list[str] = []
        while current is not None:
            chain.append(current)
            deps = self.ops[current].deps
            current = max(deps, key=lambda n: self.spans[n].end) if deps else None
        return list(reversed(chain))


def _check(ops: Sequence[Op]) -> dict[str, Op]:
    by_name: dict[str, Op] = {}
    for op in ops:
        if op.name in by_name:
            raise GraphError(f"operation {op.name!r} declared twice")
        by_name[op.name] = op
    for op in ops:
        for dep in op.deps:
            if dep not in by_name:
                raise GraphError(f"{op.name!r} depends on unknown {dep!r}")
    # Kahn's algorithm: a cycle leaves operations that never become ready.
    waiting = {op.name: len(set(op.deps)) for op in ops}
    dependents: dict[str, list[str]] = {op.name: [] for op in ops}
    for op in ops:
        for dep in set(op.deps):
            dependents[dep].append(op.name)
    ready = [name for name, count in waiting.items() if count == 0]
    seen = 0
    while ready:
        name = ready.pop()
        seen += 1
        for nxt in dependents[name]:
            waiting[nxt] -= 1
            if waiting[nxt] == 0:
                ready.append(nxt)
    if seen != len(ops):
        stuck = sorted(name for name, count in waiting.items() if count > 0)
        raise GraphError(f"dependency cycle among {stuck}")
    return by_name


def schedule(ops: Sequence[Op], timing: Timing, parallel: int | None = None) -> Schedule:
    """Run the graph: an operation starts once its dependencies have ended and a slot is free.

    Ready operations start strictly in the order they became ready, ties in the order of
    ``ops`` (the order the program sends registrations). This is Pulumi's engine: its main
    loop takes one registration at a time and hands the step to the step executor over an
    unbuffered channel that ``parallel`` workers read, so while every worker is busy the loop
    blocks and every later registration waits behind the one at the head; nothing overtakes.
    Locks are granted in start order: an operation's work starts once every lock it names is
    free.
    """
    if parallel is not None and parallel < 1:
        raise ValueError("parallel must be at least 1 (None: unbounded)")
    by_name = _check(ops)
    order = {op.name: i for i, op in enumerate(ops)}
    remaining = {op.name: len(set(op.deps)) for op in ops}
    dependents: dict[str, list[str]] = {op.name: [] for op in ops}
    for op in ops:
        for dep in set(op.deps):
            dependents[dep].append(op.name)

    spans: dict[str, Span] = {}
    lock_free: dict[str, float] = {}
    counter = itertools.count()
    ready: list[tuple[float, int, str]] = []  # (ready time, declaration order, name)
    finishing: list[tuple[float, int, str]] = []  # (end, tie-break, name)
    for op in ops:
        if remaining[op.name] == 0:
            heapq.heappush(ready, (0.0, order[op.name], op.name))
    running = 0
    now = 0.0
    while ready or finishing:
        while ready and (parallel is None or running < parallel):
            became_ready, _, name = heapq.heappop(ready)
            start = max(now, became_ready)
            op = by_name[name]
            free = max([start, *(lock_free.get(lock, 0.0) for lock in op.locks)])
            span = timing(op, start, free)
            if span.end < span.start or span.work_start < free - 1e-9:
                raise ValueError(f"timing for {name!r} is inconsistent: {span}")
            spans[name] = span
            for lock in op.locks:
                lock_free[lock] = span.lock_until
            heapq.heappush(finishing, (span.end, next(counter), name))
            running += 1
        if not finishing:
            break
        now, _, done = heapq.heappop(finishing)
        running -= 1
        for nxt in dependents[done]:
            remaining[nxt] -= 1
            if remaining[nxt] == 0:
                heapq.heappush(ready, (now, order[nxt], nxt))
    return Schedule(by_name, spans)


def fixed_durations(durations: Mapping[str, float]) -> Timing:
    """A timing where each operation (by name) takes a fixed time and is noticed at once."""

    def timing(op: Op, start: float, lock_free: float) -> Span:
        seconds = durations[op.name]
        return Span(start, lock_free, lock_free + seconds, lock_free + seconds, lock_free + seconds)

    return timing


def longest_path(ops: Sequence[Op], durations: Mapping[str, float]) -> float:
    """The classic critical path: unbounded parallelism, no locks, no polling."""
    by_name = _check(ops)
    finish: dict[str, float] = {}

    def end(name: str) -> float:
        # Iterative DFS keeps deep chains (hundreds of operations) off the recursion limit.
        stack = [name]
        while stack:
            current = stack[-1]
            pending = [d for d in by_name[current].deps if d not in finish]
            if pending:
                stack.extend(pending)
                continue
            stack.pop()
            if current not in finish:
                deps = by_name[current].deps
                finish[current] = max((finish[d] for d in deps), default=0.0) + durations[current]
        return finish[name]

    return max((end(op.name) for op in ops), default=0.0)


# -- how a polling client observes a state change ----------------------------------------------


def state_change_poll_offsets(min_timeout: float = 3.0, max_wait: float = 10.0) -> Iterator[float]:
    """Refresh times of terraform-plugin-sdk's ``StateChangeConf`` with ``Delay: 0``.

    helper/retry/state.go (v2.38.1): the first refresh is immediate; the wait then starts at
    100 ms and doubles after every pending refresh, bounded below by ``MinTimeout`` and above
    by 10 s. With ``MinTimeout: 3s`` (every OpenStack resource here) the refreshes are at
    0, 3, 9, 19, 29, ... seconds.
    """
    t, wait = 0.0, 0.0
    while True:
        yield t
        if wait == 0:
            wait = 0.1
        wait *= 2
        wait = min(max(wait, min_timeout), max_wait)
        t += wait


def fixed_poll_offsets(interval: float) -> Iterator[float]:
    """A loop that checks, then sleeps ``interval`` (Manila's 1 s and 5 s waits)."""
    for i in itertools.count():
        yield i * interval


def backoff_offsets(
    first: float = 0.1, factor: float = 1.5, max_delay: float = 5.0
) -> Iterator[float]:
    """Attempt times of pulumi's ``retry.Until`` defaults (sdk/go/common/util/retry/until.go):
    try, wait 100 ms, then 1.5x longer each time, never more than 5 s (pulumi-command's SSH
    dial retries use it)."""
    t, delay = 0.0, first
    while True:
        yield t
        delay = min(delay, max_delay)
        t += delay
        delay *= factor


def first_at_or_after(offsets: Iterable[float], origin: float, event: float) -> float:
    """The first poll (``origin`` + offset) at or after ``event``: when the client notices."""
    for offset in offsets:
        t = origin + offset
        if t >= event - 1e-9:
            return t
    raise AssertionError("poll offsets are infinite")  # pragma: no cover


# -- statistics for the scale table -------------------------------------------------------------


@dataclass(frozen=True)
class LinearFit:
    slope: float
    intercept: float
    r_squared: float
    points: tuple[tuple[float, float], ...] = field(default=())


def linear_fit(points: Sequence[tuple[float, float]]) -> LinearFit:
    """Least squares y = slope * x + intercept, with R² (1.0 when y does not vary)."""
    if len(points) < 2:
        raise ValueError("a line needs at least two points")
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    sxx = sum((x - mean_x) ** 2 for x, _ in points)
    if sxx == 0:
        raise ValueError("all x values are equal")
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in points)
    slope = sxy / sxx
    intercept = mean_y - slope * mean_x
    ss_tot = sum((y - mean_y) ** 2 for _, y in points)
    ss_res = sum((y - (slope * x + intercept)) ** 2 for x, y in points)
    r_squared = 1.0 if math.isclose(ss_tot, 0.0, abs_tol=1e-12) else 1 - ss_res / ss_tot
    return LinearFit(slope, intercept, r_squared, tuple(points))
