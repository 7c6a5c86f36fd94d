"""The stand-in ``pulumi`` executable: argv in, the CLI's answers out.

It answers the commands the Automation API sends (``version``, ``stack select|init|output|
history|export``, ``config``, ``state unprotect``, ``preview``, ``up``, ``refresh``,
``destroy``) the way the CLI does: JSON on stdout where the SDK parses JSON, ``error: ...`` on
stderr and exit status 255 on failure (the SDK picks its exception class from that text).
Every call is appended to ``<root>/calls.jsonl`` (argv, cwd, the Pulumi variables of its
environment, start and end time, exit status) so tests can see exactly what was sent.

The root (``STANDIN_ROOT``, set by ``bin/pulumi``) holds ``standin.json``: the simulated
cloud, and which stacks to fail, to show drift, or to slow down.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from .state import CliError, Crypter, StackConfig, Stacks, backend_dir, now, project_name

VERSION = "3.272.0"
RECORDED_ENV = (
    "PULUMI_AUTOMATION_API",
    "PULUMI_BACKEND_URL",
    "PULUMI_CONFIG_PASSPHRASE",
    "PULUMI_CONFIG_PASSPHRASE_FILE",
    "PULUMI_DEBUG_COMMANDS",
    "PULUMI_HOME",
    "PULUMI_SKIP_UPDATE_CHECK",
    "PULUMI_ACCESS_TOKEN",
)
VALUE_FLAGS = {
    "--stack", "--client", "--exec-kind", "--event-log", "--secrets-provider", "--color",
    "--parallel", "--page-size", "--page", "--file", "--message", "--plaintext", "--secret",
    "--config-file", "--target", "--exclude", "--replace", "--verbose", "--tracing", "--plan",
    "--save-plan", "--import-file", "--policy-pack", "--policy-pack-config", "--run-program",
}  # fmt: skip
BOOL_FLAGS = {
    "--non-interactive", "--yes", "--skip-preview", "--json", "--show-secrets", "--path",
    "--preview-only", "--exclude-protected", "--diff", "--expect-no-changes",
    "--suppress-progress", "--suppress-outputs", "--refresh", "--all", "--force",
    "--preserve-config", "--no-select", "--continue-on-error", "--debug", "--logflow",
    "--logtostderr", "--target-dependents", "--exclude-dependents", "--clear-pending-creates",
}  # fmt: skip


@dataclass
class Args:
    words: list[str] = field(default_factory=list)
    values: dict[str, list[str]] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)

    def value(self, flag: str) -> str | None:
        found = self.values.get(flag)
        return found[-1] if found else None

    def stack(self) -> str:
        stack = self.value("--stack")
        if not stack:
            raise CliError("no stack selected; please use `pulumi stack select`")
        return stack


def parse(argv: list[str]) -> Args:
    args = Args()
    items = iter(argv)
    for item in items:
        if item == "--":
            args.words.extend(items)
            break
        if item.startswith("--"):
            flag, has_value, value = item.partition("=")
            if flag in VALUE_FLAGS:
                args.values.setdefault(flag, []).append(value if has_value else next(items))
            elif flag in BOOL_FLAGS:
                args.flags.add(flag)
            else:
                raise CliError(f"unknown flag: {flag}")
        else:
            args.words.append(item)
    return args


@dataclass
class Context:
    root: Path
    cwd: Path
    env: dict[str, str]
    settings: dict[str, Any]
    stdout: TextIO

    def print(self, line: str = "") -> None:
        self.stdout.write(line + "\n")
        self.stdout.flush()

    def stacks(self) -> Stacks:
        url, path = backend_dir(self.cwd, self.env, self.root)
        return Stacks(path, project_name(self.cwd), url)


def _stack_command(ctx: Context, args: Args) -> int:
    sub = args.words[1] if len(args.words) > 1 else ""
    stacks = ctx.stacks()
    if sub == "select":
        stacks.require(args.stack())
        return 0
    if sub == "init":
        name = args.words[2]
        provider = args.value("--secrets-provider") or "passphrase"
        salt = Crypter.new_salt(ctx.env) if provider == "passphrase" else None
        stacks.init(name, provider, salt)
        config = StackConfig(ctx.cwd, name, stacks, ctx.env)
        if salt:
            config.data["encryptionsalt"] = salt
        config.save()
        ctx.print(f"Created stack '{name}'")
        return 0
    if sub == "ls":
        listed = [{"name": n, "current": False} for n in stacks.names()]
        ctx.print(json.dumps(listed))
        return 0
    if sub == "output":
        latest = stacks.read(args.stack())
        outputs = latest.get("outputs") or {}
        show = "--show-secrets" in args.flags
        config = StackConfig(ctx.cwd, args.stack(), stacks, ctx.env)
        shown = {}
        for name, entry in outputs.items():
            if entry["secret"] and not show:
                shown[name] = "[secret]"
            elif entry["secret"]:
                shown[name] = json.loads(config.crypter().decrypt(entry["ciphertext"]))
            else:
                shown[name] = entry["value"]
        ctx.print(json.dumps(shown, indent=2))
        return 0
    if sub == "history":
        stack = args.stack()
        stacks.require(stack)
        entries = stacks.history(stack)
        size = args.value("--page-size")
        if size:
            page = int(args.value("--page") or 1)
            entries = entries[(page - 1) * int(size) : page * int(size)]
        ctx.print(json.dumps(entries, indent=2))
        return 0
    if sub == "export":
        latest = stacks.read(args.stack())
        ctx.print(json.dumps({"version": 3, "deployment": latest}, indent=2))
        return 0
    raise CliError(f'unknown command "stack {sub}"')


def _config_command(ctx: Context, args: Args) -> int:
    sub = args.words[1] if len(args.words) > 1 else ""
    stacks = ctx.stacks()
    stack = args.stack()
    stacks.require(stack)
    config = StackConfig(ctx.cwd, stack, stacks, ctx.env)
    if sub == "":
        values = config.values(show_secrets="--show-secrets" in args.flags)
        ctx.print(json.dumps({k: {"value": v, "secret": s} for k, (v, s) in values.items()}))
        return 0
    if sub == "set-all":
        if "--path" in args.flags:
            raise CliError("the stand-in does not support --path")
        for flag, secret in (("--plaintext", False), ("--secret", True)):
            for pair in args.values.get(flag, []):
                key, _, value = pair.partition("=")
                config.set(key, value, secret=secret)
        config.save()
        return 0
    if sub in ("rm-all", "rm"):
        for key in args.words[2:]:
            config.remove(key)
        config.save()
        return 0
    raise CliError(f'unknown command "config {sub}"')


def dispatch(ctx: Context, args: Args) -> int:
    command = args.words[0] if args.words else ""
    if command == "version":
        ctx.print(f"v{VERSION}")
        return 0
    if command == "whoami":
        ctx.print("stand-in")
        return 0
    if command == "stack":
        return _stack_command(ctx, args)
    if command == "config":
        return _config_command(ctx, args)
    if command in ("preview", "up", "refresh", "destroy", "state"):
        from . import operations  # the heavy imports (grpc, pulumi) only where needed

        return operations.run(ctx, args)
    raise CliError(f'unknown command "{command}" for "pulumi"')


def _record(root: Path, entry: dict[str, Any]) -> None:
    line = (json.dumps(entry) + "\n").encode()
    fd = os.open(root / "calls.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def run(argv: list[str], *, cwd: Path, env: dict[str, str], stdout: TextIO, stderr: TextIO) -> int:
    """One CLI invocation; what ``main`` does in a process and the server does per request."""
    root = Path(env["STANDIN_ROOT"])
    settings = json.loads((root / "standin.json").read_text())
    ctx = Context(root=root, cwd=cwd, env=env, settings=settings, stdout=stdout)
    started = time.time()
    code = 0
    try:
        code = dispatch(ctx, parse(list(argv)))
    except CliError as exc:
        stderr.write(f"error: {exc}\n")
        stderr.flush()
        code = 255
    finally:
        _record(
            root,
            {
                "argv": list(argv),
                "cwd": str(cwd),
                "env": {k: env[k] for k in RECORDED_ENV if k in env},
                "start": started,
                "end": time.time(),
                "exit": code,
                "time": now(),
            },
        )
    return code


def main(argv: list[str]) -> int:
    return run(argv, cwd=Path.cwd(), env=dict(os.environ), stdout=sys.stdout, stderr=sys.stderr)
