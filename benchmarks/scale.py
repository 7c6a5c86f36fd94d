"""Table 2: wall time and peak memory of the program under the mocks, by shares and by tenants.

Every size runs in its own Python process (``python -m benchmarks.scale --worker ...``), so
imports, caches and the allocator's high-water mark of one size never leak into the next:

* **shares**: one stack with N shares. After the imports and a one-share warm-up run, the
  program runs REPEATS times on a fresh simulated cloud (wall and CPU time: the fastest run,
  the usual way to read through interference), then once more under ``tracemalloc`` (peak
  Python allocation of that run). The peak resident set is /proc's VmHWM.
* **fleet**: T tenants, each its own stack (``tenant-<i>``) with its own tenant network,
  subnet and router, run one after another in the one process against one simulated cloud
  (which, like a real one, keeps every tenant's resources, so each new tenant's discovery
  sees the service subnets of those before it). Wall and CPU time of the whole fleet, the
  CPU time of its first and last tenants, and peak RSS growth over the warmed-up process.

The machine is shared (2 cores, other workers' qemu guests and tests running), so wall times
are noisy; CPU time (``time.process_time``, all threads of the process) much less so.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.model import LinearFit, linear_fit
from benchmarks.tables import table, title

SHARE_SIZES = (1, 10, 26)
FLEET_SIZES = (1, 10, 50)
REPEATS = 3
GOAL_CPU_GROWTH = 1.2
PAIRS = 7
ROOT = Path(__file__).resolve().parent.parent


def _rss_mib() -> float:
    """Peak resident set of this process image.

    /proc's VmHWM, not ``ru_maxrss``: Linux carries ``ru_maxrss`` across fork and exec, so a
    worker started by a big parent would report the parent's peak."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _gc_clock() -> Callable[[], float]:
    """CPU seconds spent in the garbage collector since this was called, as a function."""
    spent = [0.0]
    started = [0.0]

    def callback(phase: str, _info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.process_time()
        else:
            spent[0] += time.process_time() - started[0]

    gc.callbacks.append(callback)
    return lambda: spent[0]


def _worker_shares(shares: int) -> dict[str, Any]:
    from benchmarks.stack import key_pair, run_program, share_config
    from tests.clouds import devstack_cloud

    with key_pair() as keys:
        run_program(devstack_cloud(), share_config(keys, 1))  # warm-up: lazy imports, caches
        rss_warm = _rss_mib()
        config = share_config(keys, shares)
        walls, cpus = [], []
        resources = 0
        for _ in range(REPEATS):
            wall, cpu = time.perf_counter(), time.process_time()
            declaration = run_program(devstack_cloud(), config)
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
            resources = len(declaration.monitor.registrations)
        tracemalloc.start()
        run_program(devstack_cloud(), config)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return {
        "wall": min(walls),
        "cpu": min(cpus),
        "resources": resources,
        "traced_peak_mib": peak / 2**20,
        "rss_mib": _rss_mib(),
        "rss_warm_mib": rss_warm,
    }


def _worker_fleet(tenants: int, pinned: bool) -> dict[str, Any]:
    """One fleet of ``tenants`` stacks, run one after another; readings after each size in
    FLEET_SIZES (a fleet of 10 is the first 10 of the 50: the runs are sequential)."""
    from benchmarks.stack import add_tenant, key_pair, run_program, share_config
    from dhss_components.simulated_cloud import SimulatedCloud
    from tests.clouds import devstack_cloud

    readings: dict[str, Any] = {}
    gc_seconds = _gc_clock()
    with key_pair() as keys:
        run_program(devstack_cloud(), share_config(keys, 1), stack="warm-up")
        rss_warm = _rss_mib()
        cloud = devstack_cloud()
        invokes = 0
        cpus: list[float] = []
        lookups: list[int] = []
        gc_start = gc_seconds()
        wall = time.perf_counter()

        def tenant(on: SimulatedCloud, i: int) -> tuple[float, int]:
            """Run tenant ``i``'s stack on ``on``: its CPU seconds and its lookups."""
            net, subnet = add_tenant(on, i)
            config = share_config(keys, 1)
            config["shareNetwork"] = {"neutron_net_id": net, "neutron_subnet_id": subnet}
            if pinned:
                # The fleet hands out the service subnets itself: no discovery listing.
                cidr = f"10.254.{i // 16}.{(i % 16) * 16}/28"
                config["shareNetwork"]["service_subnet_cidr"] = cidr
            cpu = time.process_time()
            made = len(run_program(on, config, stack=f"tenant-{i}").invokes)
            return time.process_time() - cpu, made

        for i in range(tenants):
            seconds, made = tenant(cloud, i)
            cpus.append(seconds)
            lookups.append(made)
            invokes += made
            done = i + 1
            if done in FLEET_SIZES:
                ends = max(1, min(5, done // 2))
                readings[str(done)] = {
                    "wall": time.perf_counter() - wall,
                    "cpu": sum(cpus),
                    "first_cpu": statistics.median(cpus[:ends]),
                    "last_cpu": statistics.median(cpus[-ends:]),
                    "invokes": invokes,
                    "first_invokes": lookups[0],
                    "last_invokes": lookups[-1],
                    "gc_cpu": gc_seconds() - gc_start,
                    "rss_mib": _rss_mib(),
                    "rss_warm_mib": rss_warm,
                }
        # The same comparison without the host's drift between the first and the last
        # tenants (other work on a shared machine moves CPU times by tens of percent over a
        # minute): new tenants on a cloud that holds the whole fleet, interleaved with new
        # tenants on an empty cloud, PAIRS of each.
        crowded, alone = [], []
        for pair in range(PAIRS):
            crowded.append(tenant(cloud, tenants + pair)[0])
            alone.append(tenant(devstack_cloud(), pair + 1)[0])
        readings[str(tenants)]["paired"] = {
            "crowded_cpu": statistics.median(crowded),
            "alone_cpu": statistics.median(alone),
        }
    return readings


def _measure(kind: str, size: int) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.scale", "--worker", kind, str(size)],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


@dataclass
class Scale:
    shares: dict[int, dict[str, Any]]
    fleet: dict[int, dict[str, Any]]
    fleet_pinned: dict[int, dict[str, Any]]


def measure() -> Scale:
    def fleet(kind: str) -> dict[int, dict[str, Any]]:
        return {int(n): m for n, m in _measure(kind, max(FLEET_SIZES)).items()}

    return Scale(
        {n: _measure("shares", n) for n in SHARE_SIZES}, fleet("fleet"), fleet("fleet-pinned")
    )


def _fit(points: dict[int, dict[str, Any]], field: str) -> LinearFit:
    return linear_fit([(float(n), float(m[field])) for n, m in points.items()])


def report(scale: Scale) -> str:
    out = [title("2. Program scale under the mocks (one process per size)")]
    rows = [
        [
            n,
            m["resources"],
            f"{m['wall']:.3f}",
            f"{m['cpu']:.3f}",
            f"{m['traced_peak_mib']:.1f}",
            f"{m['rss_mib']:.0f}",
            f"{m['rss_mib'] - m['rss_warm_mib']:.1f}",
        ]
        for n, m in scale.shares.items()
    ]
    out.append(
        table(
            [
                "shares",
                "resources",
                f"wall (s), best of {REPEATS}",
                "CPU (s)",
                "tracemalloc peak (MiB)",
                "peak RSS (MiB)",
                "RSS growth after warm-up (MiB)",
            ],
            rows,
            right=range(7),
        )
    )
    wall, cpu = _fit(scale.shares, "wall"), _fit(scale.shares, "cpu")
    traced = _fit(scale.shares, "traced_peak_mib")
    out.append(
        f"\nPer share (least squares over the sizes): CPU {cpu.slope * 1000:.0f} ms "
        f"(R² {cpu.r_squared:.3f}), wall {wall.slope * 1000:.0f} ms (R² {wall.r_squared:.3f}), "
        f"tracemalloc peak {traced.slope * 1024:.0f} KiB (R² {traced.r_squared:.3f})."
    )
    for label, fleet in (
        ("service subnet found by discovery", scale.fleet),
        ("service subnet CIDR pinned in the config", scale.fleet_pinned),
    ):
        out.append(f"\nFleet, tenants run one after another in one process; {label}:\n")
        out.append(
            table(
                [
                    "tenants",
                    "wall (s)",
                    "CPU (s)",
                    "CPU per tenant, first / last (s)",
                    "lookups (invokes)",
                    "peak RSS (MiB)",
                    "RSS growth after warm-up (MiB)",
                ],
                [
                    [
                        n,
                        f"{m['wall']:.2f}",
                        f"{m['cpu']:.2f}",
                        f"{m['first_cpu']:.3f} / {m['last_cpu']:.3f}",
                        m["invokes"],
                        f"{m['rss_mib']:.0f}",
                        f"{m['rss_mib'] - m['rss_warm_mib']:.1f}",
                    ]
                    for n, m in fleet.items()
                ],
                right=range(7),
            )
        )
        fleet_cpu, fleet_wall = _fit(fleet, "cpu"), _fit(fleet, "wall")
        last = fleet[max(fleet)]
        growth = linear_fit(
            [(float(n), m["rss_mib"] - m["rss_warm_mib"]) for n, m in fleet.items()]
        )
        out.append(
            f"\nPer tenant (least squares): CPU {fleet_cpu.slope * 1000:.0f} ms "
            f"(R² {fleet_cpu.r_squared:.3f}), wall {fleet_wall.slope * 1000:.0f} ms "
            f"(R² {fleet_wall.r_squared:.3f}), RSS {growth.slope * 1024:.0f} KiB "
            f"(R² {growth.r_squared:.3f}). Of the CPU, the garbage collector's share: "
            f"{last['gc_cpu'] / max(fleet) * 1000:.0f} ms per tenant ({last['gc_cpu']:.2f} s "
            f"over {max(fleet)} tenants)."
        )
    out.append(title("2b. Goal: the fleet's cost per tenant is flat (#16)"))
    out.append(goal_table(scale))
    out.append(
        f"\nCPU: the median of {PAIRS} new tenants on the cloud that holds the whole fleet, "
        f"interleaved with {PAIRS} on an empty cloud, in the same process at the same time "
        "(the first / last columns above drift with the host's load). Lookups: the provider "
        "invokes of the first and of the last tenant's run (the same in its preview), i.e. "
        "whether a new tenant's lookups grow with the subnets already on the service network."
    )
    return "\n".join(out)


def goal_table(scale: Scale) -> str:
    rows = []
    for label, fleet in (
        ("as the fleet runs it (CIDR pinned from its ledger)", scale.fleet_pinned),
        ("stacks run alone (discovery)", scale.fleet),
    ):
        tenants = max(fleet)
        m = fleet[tenants]
        paired = m["paired"]
        ratio = paired["crowded_cpu"] / paired["alone_cpu"]
        rows.append(
            [
                label,
                f"CPU of a new tenant with {tenants} already there / with none",
                f"≤ {GOAL_CPU_GROWTH:.1f}",
                f"{ratio:.2f} ({paired['alone_cpu']:.3f} → {paired['crowded_cpu']:.3f} s)",
                "yes" if ratio <= GOAL_CPU_GROWTH else "**no**",
            ]
        )
        rows.append(
            [
                label,
                "lookups of a new tenant, first → last",
                "constant",
                f"{m['first_invokes']} → {m['last_invokes']}",
                "yes" if m["first_invokes"] == m["last_invokes"] else "**no**",
            ]
        )
    return table(["tenants", "figure", "goal", "measured", "met"], rows)


def main() -> str:
    return report(measure())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", nargs=2, metavar=("KIND", "SIZE"))
    args = parser.parse_args()
    if args.worker:
        kind, size = args.worker[0], int(args.worker[1])
        if kind == "shares":
            print(json.dumps(_worker_shares(size)))
        else:
            print(json.dumps(_worker_fleet(size, pinned=kind == "fleet-pinned")))
    else:
        print(main())
