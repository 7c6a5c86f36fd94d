"""The stand-in ``pulumi`` executable: argv in, the CLI's answers out.

It answers the commands the Automation API sends (``version``, ``stack select|init|output|
history|export``, ``config``, ``state unprotect``, ``preview``, ``up``, ``refresh``,
``destroy``) the way the CLI does: JSON on stdout where the SDK parses JSON, ``error: ...`` on
stderr and the exit status of ``cmd.ExitCodeFor`` on failure (the SDK picks its exception class
from that text); flags and arguments exactly as each real command takes them (commands.py).
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

from .commands import ALIASES, COMMANDS, GLOBAL_BOOLS, GLOBAL_VALUES, GROUPS, SHORTHANDS
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


@dataclass
class Args:
    command: tuple[str, ...] = ()
    words: list[str] = field(default_factory=list)
    """The positional arguments after the command's own words."""
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


_ALL_VALUE_FLAGS = GLOBAL_VALUES.union(*(c.values for c in COMMANDS.values()))


def _command_of(argv: list[str]) -> tuple[tuple[str, ...], int]:
    """The command (aliases resolved) and how many positional words name it, found as cobra
    finds it: among the words that are neither flags nor flag values."""
    words: list[str] = []
    items = iter(argv)
    for item in items:
        if item == "--":
            break
        if item.startswith("-"):
            if "=" not in item and SHORTHANDS.get(item, item) in _ALL_VALUE_FLAGS:
                next(items, None)
            continue
        words.append(item)
    path: tuple[str, ...] = ()
    for word in words[:2]:
        candidate = ALIASES.get((*path, word), (*path, word))
        if candidate in COMMANDS or candidate in GROUPS:
            path = candidate
            continue
        if not path or path in GROUPS:
            raise CliError(f'unknown command "{word}" for "{" ".join(("pulumi", *path))}"')
        break
    if not path or path in GROUPS:
        raise CliError(f'the stand-in does not answer "{" ".join(("pulumi", *path))}" alone')
    return path, len(path)


def _bool(flag: str, value: str) -> bool:
    # pflag's boolean flags parse their value with Go's strconv.ParseBool.
    if value in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if value in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    raise CliError(
        f'invalid argument "{value}" for "{flag}" flag: strconv.ParseBool: parsing '
        f'"{value}": invalid syntax'
    )


def parse(argv: list[str]) -> Args:
    """argv as the real CLI parses it: the command it names, that command's flags and no
    other, and its positional arguments within the command's limits."""
    path, taken = _command_of(argv)
    spec = COMMANDS[path]
    bools, values = spec.bools | GLOBAL_BOOLS, spec.values | GLOBAL_VALUES
    args = Args(command=path)
    positional: list[str] = []
    items = iter(argv)
    for item in items:
        if item == "--":
            positional.extend(items)
            break
        if not item.startswith("-") or item == "-":
            positional.append(item)
            continue
        name, has_value, value = item.partition("=")
        if not name.startswith("--"):
            long = SHORTHANDS.get(name)
            if long is None or long not in bools | values:
                raise CliError(f"unknown shorthand flag: '{name[1:2]}' in {item}")
            name = long
        if name in bools:
            if not has_value or _bool(name, value):
                args.flags.add(name)
            else:
                args.flags.discard(name)
        elif name in values:
            if not has_value:
                following = next(items, None)
                if following is None:
                    raise CliError(f"flag needs an argument: {name}")
                value = following
            args.values.setdefault(name, []).append(value)
        else:
            raise CliError(f"unknown flag: {name}")
    args.words = positional[taken:]
    count = len(args.words)
    if spec.max_args == 0 and count:
        shown = " ".join(("pulumi", *path))
        raise CliError(f'unknown command "{args.words[0]}" for "{shown}"')
    if spec.max_args is not None and count > spec.max_args:
        raise CliError(f"accepts at most {spec.max_args} arg(s), received {count}")
    if count < spec.min_args:
        raise CliError(f"requires at least {spec.min_args} arg(s), only received {count}")
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


def _stack_name(args: Args) -> str:
    """``--stack NAME``, or the command's one positional NAME (stack select/init)."""
    if args.words:
        return args.words[0]
    return args.stack()


def _print_json_or_table(ctx: Context, args: Args, value: Any, rows: list[tuple[str, str]]) -> None:
    """JSON only with --json, as the CLI prints it; else its human table."""
    if "--json" in args.flags:
        ctx.print(json.dumps(value, indent=4))
        return
    width = max((len(key) for key, _ in rows), default=0)
    for key, shown in rows:
        ctx.print(f"    {key.ljust(width)}  {shown}")


def _stack_command(ctx: Context, args: Args) -> int:
    sub = args.command[1]
    stacks = ctx.stacks()
    if sub == "select":
        stacks.require(_stack_name(args))
        return 0
    if sub == "init":
        name = _stack_name(args)
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
        names = stacks.names()
        listed = [{"name": n, "current": False} for n in names]
        _print_json_or_table(ctx, args, listed, [(n, "n/a") for n in names])
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
        if "--json" not in args.flags:
            ctx.print(f"Current stack outputs ({len(shown)}):")
        _print_json_or_table(ctx, args, shown, [(k, json.dumps(v)) for k, v in shown.items()])
        return 0
    if sub == "history":
        stack = args.stack()
        stacks.require(stack)
        entries = stacks.history(stack)
        size = args.value("--page-size")
        if size:
            page = int(args.value("--page") or 1)
            entries = entries[(page - 1) * int(size) : page * int(size)]
        rows = [(f"Version {e['version']}", f"{e['kind']} {e['result']}") for e in entries]
        _print_json_or_table(ctx, args, entries, rows)
        return 0
    assert sub == "export"  # a checkpoint is JSON: export has no --json flag
    latest = stacks.read(args.stack())
    ctx.print(json.dumps({"version": 3, "deployment": latest}, indent=4))
    return 0


def _config_command(ctx: Context, args: Args) -> int:
    sub = args.command[1] if len(args.command) > 1 else ""
    stacks = ctx.stacks()
    stack = args.stack()
    stacks.require(stack)
    config = StackConfig(ctx.cwd, stack, stacks, ctx.env)
    if sub == "":
        values = config.values(show_secrets="--show-secrets" in args.flags)
        listed = {k: {"value": v, "secret": s} for k, (v, s) in values.items()}
        _print_json_or_table(ctx, args, listed, [(k, v) for k, (v, _) in values.items()])
        return 0
    if sub == "set-all":
        if "--path" in args.flags or "--json" in args.values:
            raise CliError("the stand-in sets plain keys only (no --path, no --json)")
        for flag, secret in (("--plaintext", False), ("--secret", True)):
            for pair in args.values.get(flag, []):
                key, _, value = pair.partition("=")
                config.set(key, value, secret=secret)
        config.save()
        return 0
    for key in args.words:  # rm-all, rm
        config.remove(key)
    config.save()
    return 0


def dispatch(ctx: Context, args: Args) -> int:
    command = args.command[0]
    if command == "version":
        ctx.print(f"v{VERSION}")
        return 0
    if command == "whoami":
        _print_json_or_table(ctx, args, {"user": "stand-in"}, [("User", "stand-in")])
        return 0
    if command == "stack":
        return _stack_command(ctx, args)
    if command == "config":
        return _config_command(ctx, args)
    from . import operations  # the heavy imports (grpc, pulumi) only where needed

    return operations.run(ctx, args)


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
        code = exc.code
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
