"""The in-guest check of a running stack: ``share.sh check`` for each share, over SSH.

``pulumi refresh`` reads the cloud's resources, never what runs inside the service instance:
an export edited by hand, a share unmounted, a Samba share deleted or a full disk all pass a
drift check that says "no changes". This runs, for each share, the read-only ``check`` of
scripts/share.sh on the instance, with ensure's own arguments, and reports what it found:

- the arguments come from the config alone (``blueprint.share_script_params``) and the stack's
  outputs (each share's ``volume_id``);
- the SSH target is the stack's (``share_server.ssh_address``, the pinned
  ``share_server.host_key``), with the config's user, key or password and bastion
  (openssh.py);
- ``share.sh check`` prints ``drift <share> <aspect>: <what it saw>`` or ``ok <share>`` and
  exits 0 (as declared), 3 (drift) or 1 (it cannot tell).

Nothing is written anywhere: no config, no state, nothing on the instance. Exit status: 0
every share is as declared, 3 at least one drifted, 1 at least one could not be checked, 2
nothing could run. The fleet runs it per tenant (``fleet verify``); for one stack made with
``pulumi up``, in the project's directory::

    python -m dhss_components.fleet.verify --stack dev
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol, TextIO

from ..blueprint import share_script_params
from ..config import NAMESPACE, InvalidStackConfig, StackSpec, parse_stack_config
from ..share_script import render_check_command
from .openssh import Bastion, Completed, OpenSsh, SshTarget, SshUnavailable, public_key

CHECK_DRIFT = 3
"""share.sh check's exit status on drift (and this command's)."""
CHECK_UNKNOWN = 1
EXIT_OK, EXIT_UNKNOWN, EXIT_USAGE, EXIT_DRIFT = 0, 1, 2, 3


class ShareState(StrEnum):
    OK = "ok"
    DRIFT = "drift"
    UNKNOWN = "cannot tell"


@dataclass(frozen=True)
class ShareReport:
    """What the check of one share came to, with every line it printed."""

    share: str
    state: ShareState
    findings: tuple[str, ...] = ()
    """``<aspect>: <what it saw>`` per difference; or why it could not tell."""


@dataclass(frozen=True)
class ShareCheck:
    share: str
    command: str
    """The rendered ``share.sh check`` command (render_check_command)."""


@dataclass(frozen=True)
class StackCheck:
    """Everything a check of one stack needs, decided before anything dials the instance."""

    target: SshTarget | None
    """None when the stack has no server in its outputs (never built, or destroyed)."""
    checks: tuple[ShareCheck, ...]
    reports: tuple[ShareReport, ...]
    """Found without the guest: shares the config and the stack do not agree on."""
    refusal: str | None = None
    """Why the instance must not be dialled (no host key to pin): every share's finding."""
    unverified: tuple[str, ...] = ()
    """Host keys the config chose not to verify, by the key that says so: for the report."""


class NoPinnedHostKey(Exception):
    """The config verifies the instance's host key, and the stack gives none to pin."""


class GuestSession(Protocol):
    """An SSH session on the instance (OpenSsh is one)."""

    def run(self, command: str) -> Completed: ...


ShellFactory = Callable[[SshTarget], AbstractContextManager[GuestSession]]


def pinned_host_key(spec: StackSpec, share_server: Mapping[str, Any]) -> str | None:
    """The instance's host key to pin, from the stack's outputs; None only when the config
    says ``service_instance_host_key: unverified``. Never fails open: a stack that gives no
    key (built before host keys were pinned, or built unverified and not updated since) raises
    NoPinnedHostKey instead of dialling whatever answers."""
    if spec.backend.service_instance_host_key == "unverified":
        return None
    fix = (
        "run up to pin it, or set service_instance_host_key: unverified (as the stack was "
        "built) to check without verifying the instance"
    )
    if share_server.get("host_key_check") is False:
        raise NoPinnedHostKey(
            "the stack was built with service_instance_host_key: unverified, and the config now "
            f"verifies it; verify does not dial an instance without its pinned host key: {fix}"
        )
    key = public_key(share_server.get("host_key"))
    if key is None:
        raise NoPinnedHostKey(
            "the stack's outputs have no share_server.host_key (built before host keys were "
            "pinned, or not updated since); verify does not dial an instance without its "
            f"pinned host key: {fix}"
        )
    return key


def ssh_target(spec: StackSpec, share_server: Mapping[str, Any]) -> SshTarget | None:
    """Where the stack's commands run, from its outputs, and how they log in, from its config.
    Raises NoPinnedHostKey (pinned_host_key)."""
    host = share_server.get("ssh_address")
    if not host:
        return None
    backend = spec.backend
    host_key = pinned_host_key(spec, share_server)
    bastion = None
    if backend.ssh_proxy is not None:
        proxy = backend.ssh_proxy
        bastion = Bastion(
            host=proxy.host,
            user=proxy.user,
            port=proxy.port,
            host_key=None if proxy.host_key == "unverified" else proxy.host_key,
            private_key=spec.proxy_private_key,
        )
    return SshTarget(
        host=str(host),
        user=backend.service_instance_user,
        host_key=host_key,
        private_key=spec.private_key,
        password=backend.service_instance_password,
        bastion=bastion,
    )


def stack_check(spec: StackSpec, outputs: Mapping[str, Any]) -> StackCheck:
    """The check of one stack: its target, a command per share, and what is already known."""
    server = outputs.get("share_server")
    target, refusal = None, None
    try:
        target = ssh_target(spec, server) if isinstance(server, Mapping) else None
    except NoPinnedHostKey as exc:
        refusal = str(exc)
    unverified = []
    if spec.backend.service_instance_host_key == "unverified":
        unverified.append("service_instance_host_key")
    if spec.backend.ssh_proxy is not None and spec.backend.ssh_proxy.host_key == "unverified":
        unverified.append("ssh_proxy.host_key")
    built = outputs.get("shares")
    built = built if isinstance(built, Mapping) else {}
    checks, reports = [], []
    for share in spec.shares:
        volume_id = (built.get(share.name) or {}).get("volume_id")
        if not volume_id:
            reports.append(
                ShareReport(
                    share.name,
                    ShareState.DRIFT,
                    ("stack: in the config but not in the stack; run up",),
                )
            )
            continue
        command = render_check_command(share_script_params(spec.backend, share), str(volume_id))
        checks.append(ShareCheck(share.name, command))
    declared = {share.name for share in spec.shares}
    for name in sorted(set(built) - declared):
        reports.append(
            ShareReport(
                name,
                ShareState.DRIFT,
                ("stack: in the stack but no longer in the config; up unexports it",),
            )
        )
    return StackCheck(target, tuple(checks), tuple(reports), refusal, tuple(unverified))


def unverified_note(check: StackCheck) -> str:
    """What the report says when the config chose not to verify a host key ("" otherwise)."""
    if not check.unverified:
        return ""
    return "host key unverified (" + ", ".join(f"{k}: unverified" for k in check.unverified) + ")"


def share_report(share: str, done: Completed) -> ShareReport:
    """One share's check, from what share.sh check printed and its exit status."""
    drift = []
    for line in done.stdout.splitlines():
        # "drift <share> <aspect>: <what it saw>": the check was given this share alone.
        kind, _, rest = line.partition(" ")
        if kind == "drift":
            drift.append(rest.partition(" ")[2].strip())
    if done.exit_status == 0:
        # Exit 0 alone proves nothing (a command that never ran check exits 0 too): only the
        # check's own "ok <share>", with no drift line, is as declared.
        if f"ok {share}" in (line.strip() for line in done.stdout.splitlines()) and not drift:
            return ShareReport(share, ShareState.OK)
        return ShareReport(
            share,
            ShareState.UNKNOWN,
            (f"the check exited 0 without saying 'ok {share}': it may not have run",),
        )
    if done.exit_status == CHECK_DRIFT:
        return ShareReport(share, ShareState.DRIFT, tuple(drift) or ("drift (no details given)",))
    why = [line.strip() for line in done.stderr.splitlines() if line.strip()]
    reason = why[-1] if why else f"the check exited {done.exit_status}"
    return ShareReport(share, ShareState.UNKNOWN, (reason,))


def run_stack_check(check: StackCheck, shell: ShellFactory = OpenSsh) -> list[ShareReport]:
    """Run every share's check on the instance; a failure to reach it is every share's."""
    reports = list(check.reports)
    if not check.checks:
        return reports
    if check.refusal is not None:
        return sorted(
            reports
            + [ShareReport(c.share, ShareState.UNKNOWN, (check.refusal,)) for c in check.checks],
            key=lambda r: r.share,
        )
    if check.target is None:
        return reports + [
            ShareReport(c.share, ShareState.UNKNOWN, ("the stack has no server; run up",))
            for c in check.checks
        ]
    try:
        with shell(check.target) as session:
            for share_check in check.checks:
                reports.append(share_report(share_check.share, session.run(share_check.command)))
    except SshUnavailable as exc:
        reports += [ShareReport(c.share, ShareState.UNKNOWN, (str(exc),)) for c in check.checks]
    return sorted(reports, key=lambda r: r.share)


def exit_status(reports: Sequence[ShareReport]) -> int:
    if any(r.state is ShareState.UNKNOWN for r in reports):
        return EXIT_UNKNOWN
    if any(r.state is ShareState.DRIFT for r in reports):
        return EXIT_DRIFT
    return EXIT_OK


def report_lines(reports: Sequence[ShareReport], prefix: str = "") -> list[str]:
    """One line per finding: ``<share>  <state>  <finding>``."""
    width = max((len(r.share) for r in reports), default=0)
    lines = []
    for report in reports:
        head = f"{prefix}{report.share.ljust(width)}  {report.state.value}"
        if not report.findings:
            lines.append(head)
        lines += [f"{head}  {finding}" for finding in report.findings]
    return lines


# -- one stack made with `pulumi up` ---------------------------------------------------------


def _config_object(config: Mapping[str, Any], key: str) -> Any:
    entry = config.get(f"{NAMESPACE}:{key}")
    return json.loads(entry.value) if entry is not None else None


def load_stack(stack_name: str, work_dir: Path) -> tuple[StackSpec, dict[str, Any]]:
    """The stack's config (secrets decrypted) and outputs, through the Automation API."""
    from pulumi.automation import select_stack

    stack = select_stack(stack_name=stack_name, work_dir=str(work_dir))
    config = stack.get_all_config()
    outputs = {k: v.value for k, v in stack.outputs().items()}
    # Paths in the stack's config (the keys) are the project directory's, as for pulumi up.
    with contextlib.chdir(work_dir):
        spec = parse_stack_config(
            _config_object(config, "backend"),
            _config_object(config, "shareNetwork"),
            _config_object(config, "shares"),
        )
    return spec, outputs


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: TextIO = sys.stdout,
    stderr: TextIO = sys.stderr,
    shell: ShellFactory = OpenSsh,
) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dhss_components.fleet.verify",
        description="Check what runs inside one stack's service instance against its config "
        "(share.sh check per share, read-only). Exit status: 0 as declared, 3 drift, 1 a share "
        "could not be checked, 2 nothing ran.",
    )
    parser.add_argument("--stack", required=True, help="the stack, as for pulumi --stack")
    parser.add_argument(
        "--cwd", default=".", metavar="DIR", help="the project's directory (default: here)"
    )
    args = parser.parse_args(argv)
    from pulumi.automation.errors import CommandError

    try:
        spec, outputs = load_stack(args.stack, Path(os.path.expanduser(args.cwd)))
    except InvalidStackConfig as exc:
        stderr.write(f"verify: stack {args.stack}: {exc}\n")
        return EXIT_USAGE
    except (CommandError, FileNotFoundError) as exc:
        first = str(exc).strip().splitlines()
        stderr.write(f"verify: stack {args.stack} cannot be read: {first[-1] if first else exc}\n")
        return EXIT_USAGE
    check = stack_check(spec, outputs)
    reports = run_stack_check(check, shell)
    for line in report_lines(reports):
        stdout.write(line + "\n")
    if unverified_note(check):
        stdout.write(unverified_note(check) + "\n")
    return exit_status(reports)


if __name__ == "__main__":
    sys.exit(main())
