"""``python -m dhss_components.fleet OPERATION TENANTS.yaml``: preview, up, refresh, destroy,
status, rebuild, verify."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TextIO, cast

from pulumi.automation import PulumiCommand
from pulumi.automation.errors import InvalidVersionError

from .ledger import LedgerError
from .openssh import OpenSsh
from .options import (
    DEFAULT_BACKEND_URL,
    DEFAULT_WORK_ROOT,
    OPERATIONS,
    FleetOptions,
    FleetSetupError,
    Operation,
    check_environment,
    local_backend_dir,
)
from .report import summary_table, totals_line
from .results import EXIT_INTERRUPTED, EXIT_USAGE, exit_status
from .runner import Fleet
from .tenants import InvalidTenantsFile, load_tenants_file
from .verify import ShellFactory

DESCRIPTION = """\
Roll the manila-dhss share-server program out as one Pulumi stack per tenant.

exit status: 0 every tenant succeeded; 1 a tenant failed, was refused (rebuild) or was locked
by another run;
2 nothing ran (bad tenants file or option, no passphrase, no Pulumi CLI);
3 refresh --preview-only or verify found drift; 130 interrupted (Ctrl-C)."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m dhss_components.fleet",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("operation", choices=OPERATIONS)
    p.add_argument("tenants_file", metavar="TENANTS.yaml")
    p.add_argument(
        "--tenant",
        action="append",
        default=[],
        metavar="NAME",
        help="only this tenant (repeat for more); default: every tenant in the file",
    )
    p.add_argument(
        "--parallel", type=int, default=4, metavar="N", help="tenants at once (default 4)"
    )
    p.add_argument(
        "--backend-url",
        metavar="URL",
        help="state backend: file://DIR, s3://BUCKET/PREFIX?endpoint=..., https://api.pulumi.com"
        f" (default: $PULUMI_BACKEND_URL, else {DEFAULT_BACKEND_URL})",
    )
    p.add_argument(
        "--secrets-provider",
        default="passphrase",
        metavar="PROVIDER",
        help="for new stacks: passphrase (default; PULUMI_CONFIG_PASSPHRASE or "
        "PULUMI_CONFIG_PASSPHRASE_FILE), default (Pulumi Cloud), awskms://..., ...",
    )
    p.add_argument(
        "--work-root",
        metavar="DIR",
        help="per-tenant workspaces and the service subnet ledger (default: "
        f"$MANILA_DHSS_FLEET_HOME, else {DEFAULT_WORK_ROOT})",
    )
    p.add_argument("--log-dir", metavar="DIR", help="one log per tenant (default: under work root)")
    p.add_argument(
        "--pulumi-root",
        metavar="DIR",
        help="use DIR/bin/pulumi instead of pulumi from PATH (e.g. ~/.pulumi/versions/3.x)",
    )
    p.add_argument(
        "--preview-only",
        action="store_true",
        help="refresh only: report drift between each stack and the cloud, change nothing",
    )
    p.add_argument(
        "--include-protected",
        action="store_true",
        help="destroy only: also delete protected resources, i.e. the shares' volumes and "
        "their data (default: they are kept)",
    )
    return p


def options_from(args: argparse.Namespace, environ: Mapping[str, str]) -> FleetOptions:
    if args.parallel < 1:
        raise FleetSetupError("--parallel must be 1 or more")
    if args.preview_only and args.operation != "refresh":
        raise FleetSetupError("--preview-only goes with refresh (the drift check)")
    if args.include_protected and args.operation != "destroy":
        raise FleetSetupError("--include-protected goes with destroy")
    work_root = Path(
        os.path.expanduser(
            args.work_root or environ.get("MANILA_DHSS_FLEET_HOME") or DEFAULT_WORK_ROOT
        )
    )
    label = "drift" if args.preview_only else args.operation
    stamp = time.strftime("%Y%m%dT%H%M%S")
    log_dir = Path(args.log_dir) if args.log_dir else work_root / "logs" / f"{stamp}-{label}"
    return FleetOptions(
        operation=cast(Operation, args.operation),
        work_root=work_root,
        log_dir=log_dir,
        parallel=args.parallel,
        backend_url=absolute_file_url(
            args.backend_url or environ.get("PULUMI_BACKEND_URL") or DEFAULT_BACKEND_URL
        ),
        secrets_provider=args.secrets_provider,
        preview_only=args.preview_only,
        include_protected=args.include_protected,
    )


def absolute_file_url(url: str) -> str:
    """file://state means ./state here, not in each tenant's workspace (the CLI's cwd)."""
    if not url.startswith("file://"):
        return url
    path = url.removeprefix("file://")
    if path.startswith("~") or os.path.isabs(path):
        return url
    return f"file://{os.path.abspath(path)}"


def pulumi_command(root: str | None) -> PulumiCommand:
    try:
        return PulumiCommand(root=os.path.abspath(os.path.expanduser(root)) if root else None)
    except FileNotFoundError:
        where = f"{root}/bin/pulumi" if root else "pulumi on PATH"
        raise FleetSetupError(
            f"the Pulumi CLI was not found ({where}); install it "
            "(https://www.pulumi.com/docs/iac/download-install/) or pass --pulumi-root"
        ) from None
    except InvalidVersionError as exc:
        raise FleetSetupError(f"the Pulumi CLI cannot be used: {exc}") from None


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: TextIO = sys.stdout,
    stderr: TextIO = sys.stderr,
    environ: Mapping[str, str] = os.environ,
    live: bool | None = None,
    shell: ShellFactory = OpenSsh,
) -> int:
    args = parser().parse_args(argv)
    try:
        options = options_from(args, environ)
        tenants_file = load_tenants_file(args.tenants_file)
        selected = tenants_file.select(args.tenant)
        check_environment(options, environ)
        backend_dir = local_backend_dir(options.backend_url)
        if backend_dir is not None:
            backend_dir.mkdir(parents=True, exist_ok=True)
        fleet = Fleet(
            tenants_file,
            options,
            pulumi_command(args.pulumi_root),
            stderr,
            live=live,
            shell=shell,
        )
        tenant_stacks = fleet.prepare(selected)
    except (InvalidTenantsFile, LedgerError, FleetSetupError) as exc:
        stderr.write(f"fleet: {exc}\n")
        return EXIT_USAGE
    try:
        results = fleet.run(tenant_stacks)
    except KeyboardInterrupt:
        stderr.write(
            "fleet: interrupted; tenants not started were skipped, the running ones were "
            f"stopped by the CLI (their logs are in {options.log_dir})\n"
        )
        return EXIT_INTERRUPTED
    stdout.write(summary_table(results) + "\n\n" + totals_line(results))
    stdout.write(f"; logs in {options.log_dir}\n")
    return exit_status(results)
