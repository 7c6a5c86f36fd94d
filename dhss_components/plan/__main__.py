"""``python -m dhss_components.plan [--stack dev] [--format markdown|json]``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import pulumi

from .build import make_plan
from .render import render_json, render_markdown
from .stack_file import PlanError
from .stand_ins import DEFAULT_ADMIN_SUBNET_CIDR, DEFAULT_TENANT_SUBNET_CIDR

# -- command line --------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dhss_components.plan",
        description="Print what a stack would declare, from its stack file alone: the real "
        "program against a simulated cloud (no cloud, no credentials, no Pulumi CLI).",
    )
    parser.add_argument("--stack", default="dev", help="reads Pulumi.<stack>.yaml (default: dev)")
    parser.add_argument("--format", choices=("markdown", "json"), default="markdown")
    parser.add_argument(
        "--cwd", "-C", type=Path, default=Path(), help="the project directory (default: .)"
    )
    parser.add_argument("--tenant-subnet-cidr", default=DEFAULT_TENANT_SUBNET_CIDR)
    parser.add_argument("--admin-subnet-cidr", default=DEFAULT_ADMIN_SUBNET_CIDR)
    args = parser.parse_args(argv)
    try:
        plan = make_plan(
            args.cwd,
            args.stack,
            tenant_subnet_cidr=args.tenant_subnet_cidr,
            admin_subnet_cidr=args.admin_subnet_cidr,
        )
    except PlanError as exc:
        print(f"plan: {exc}", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 2
    except pulumi.RunError as exc:
        # A fact about the (simulated) cloud that makes the share server impossible.
        print(f"plan: the program stopped: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(render_json(plan) if args.format == "json" else render_markdown(plan))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
