"""Print all four benchmark tables: ``python -m benchmarks [--skip-guest] [--only ...]``.

1. critical path (model over the declared graph), 2. program scale (subprocesses),
3. preview cost (invokes), 4. the share script on a qemu guest (last; the slow one).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

PARTS = ("critical", "scale", "preview", "guest")


def _header() -> str:
    root = Path(__file__).resolve().parent.parent
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        check=False,
        capture_output=True,
        text=True,
        cwd=root,
    ).stdout.strip()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"# manila-dhss benchmarks ({datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, "
        f"commit {commit or '?'})\n\n"
        f"Host: {os.cpu_count()} CPUs, load average {load} at start (shared with other "
        f"workers); Python {platform.python_version()}, pulumi {version('pulumi')}, "
        f"pulumi-openstack {version('pulumi-openstack')}, "
        f"pulumi-command {version('pulumi-command')}."
    )


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--skip-guest", action="store_true", help="skip table 4 (boots a qemu guest)"
    )
    parser.add_argument("--only", choices=PARTS, action="append", help="run only these parts")
    args = parser.parse_args()
    wanted = args.only or list(PARTS)

    def guest() -> str:
        from benchmarks import share_script

        return share_script.main()

    def critical() -> str:
        from benchmarks import critical_path

        return critical_path.main()

    def scale() -> str:
        from benchmarks import scale

        return scale.main()

    def preview() -> str:
        from benchmarks import preview_cost

        return preview_cost.main()

    parts: dict[str, Callable[[], str]] = {
        "critical": critical,
        "scale": scale,
        "preview": preview,
        "guest": guest,
    }
    print(_header(), flush=True)
    for name in PARTS:
        if name not in wanted:
            continue
        if name == "guest" and args.skip_guest:
            print("\n### 4. Share script on the real guest\n\nSkipped: --skip-guest was given.")
            continue
        started = time.monotonic()
        print(parts[name](), flush=True)
        print(f"\n({name}: {time.monotonic() - started:.0f} s)", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
