"""preview, up, refresh, destroy and state unprotect, as the CLI runs them on a DIY backend.

- ``up``, ``refresh`` and ``destroy`` take the stack's lock; ``preview`` and
  ``refresh --preview-only`` take none (pulumi/pulumi#8642, #22385).
- ``preview`` and ``up`` run the inline program for real (``engine.run_program``) and diff
  what it declared against the stack's checkpoint: create, update, same, delete.
- ``refresh`` and ``destroy`` work on the checkpoint, as the CLI does without
  ``--run-program``.
- A subnet on a shared service network is checked against every other stack's subnets, as
  Neutron would (neutron.py): an overlap fails that ``up``.
- ``standin.json`` can make a stack fail (``fail``), drift (``drift``), take longer
  (``delay``) or hold its operation until a file appears (``hold``); ``programs`` lists the
  stacks whose program runs for real (default: all), the others are synthesized
  (synthetic.py).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from . import neutron
from .cli import Args, Context
from .engine import (
    STACK_TYPE,
    EventStream,
    Prior,
    plain_outputs,
    run_program,
)
from .state import (
    SECRET_SIG,
    SECRET_SIG_KEY,
    CliError,
    Crypter,
    StackConfig,
    Stacks,
    now,
    strip_secrets,
)
from .synthetic import synthesize_program

INSTANCE_TYPE = "openstack:compute/instance:Instance"
SYMBOL = {"create": "+", "update": "~", "delete": "-", "same": " ", "refresh": "~"}


def _mask_secrets(value: Any, crypter: Crypter | None) -> Any:
    """Inputs as the checkpoint keeps them: secret values encrypted."""
    if isinstance(value, dict):
        if value.get(SECRET_SIG_KEY) == SECRET_SIG:
            plain = json.dumps(value.get("value"))
            return {
                SECRET_SIG_KEY: SECRET_SIG,
                "ciphertext": crypter.encrypt(plain) if crypter else "[unencrypted]",
            }
        return {k: _mask_secrets(v, crypter) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_secrets(v, crypter) for v in value]
    return value


def _seal(text: str, crypter: Crypter | None) -> str:
    return crypter.encrypt(text) if crypter else "plain:" + text


def _unseal(text: str, crypter: Crypter | None) -> str:
    if text.startswith("plain:"):
        return text.removeprefix("plain:")
    if crypter is None:
        raise CliError("the checkpoint holds encrypted values but the stack has no passphrase")
    return crypter.decrypt(text)


class _Operation:
    def __init__(self, ctx: Context, args: Args, kind: str) -> None:
        self.ctx = ctx
        self.args = args
        self.kind = kind
        self.stacks: Stacks = ctx.stacks()
        self.stack = args.stack()
        self.stacks.require(self.stack)
        self.config = StackConfig(ctx.cwd, self.stack, self.stacks, ctx.env)
        self.latest = self.stacks.read(self.stack)
        self.prior = {r["urn"]: r for r in self.latest.get("resources", [])}
        self.started = time.time()
        self.start_time = now()
        self.events = EventStream(None)
        self.counts: dict[str, int] = {}
        self.preview = kind == "preview" or "--preview-only" in args.flags

    def crypter(self) -> Crypter | None:
        if (self.latest.get("secrets_providers") or {}).get("type") != "passphrase":
            return None
        return self.config.crypter()

    def step(self, op: str, urn: str, typ: str) -> None:
        self.counts[op] = self.counts.get(op, 0) + 1
        self.events.send(
            resourcePreEvent={
                "metadata": {"op": op, "urn": urn, "type": typ, "provider": ""},
                "planning": self.preview,
            }
        )
        if op != "same":
            verb = {"create": "create", "update": "update", "delete": "delete"}.get(op, op)
            self.ctx.print(
                f" {SYMBOL.get(op, '?')}  {typ} {urn.rsplit('::', maxsplit=1)[-1]} {verb}"
            )

    def prior_outputs(self) -> dict[str, Prior]:
        crypter = self.crypter()
        return {
            urn: Prior(r["inputs"], r.get("id", ""), json.loads(_unseal(r["outputs"], crypter)))
            for urn, r in self.prior.items()
            if r.get("outputs")
        }

    def failure(self) -> str | None:
        rule = self.ctx.settings.get("fail", {}).get(self.stack)
        if rule and self.kind in rule.get("ops", ["up"]):
            return str(rule["message"])
        return None

    def history(self, result: str) -> None:
        if self.preview:
            return
        if result == "failed":
            self.counts = {}  # nothing of a failed update is committed here
        values = self.config.values(show_secrets=False)
        self.stacks.add_history(
            self.stack,
            {
                "kind": {"up": "update"}.get(self.kind, self.kind),
                "startTime": self.start_time,
                "endTime": now(),
                "message": "",
                "environment": {"exec.kind": self.args.value("--exec-kind") or "cli"},
                "config": {k: {"value": v, "secret": s} for k, (v, s) in values.items()},
                "result": result,
                "resourceChanges": self.counts,
            },
        )

    def finish(self, code: int) -> int:
        duration = time.time() - self.started
        self.events.send(
            summaryEvent={
                "maybeCorrupt": False,
                "durationSeconds": int(duration),
                "resourceChanges": self.counts,
                "PolicyPacks": {},
            }
        )
        self.events.send(cancelEvent={})
        self.events.close()
        self.ctx.print("Resources:")
        for op, count in sorted(self.counts.items()):
            self.ctx.print(f"    {SYMBOL.get(op, '?')} {count} {op}")
        self.ctx.print(f"\nDuration: {int(duration)}s")
        return code


def _program(op: _Operation) -> int:
    """preview and up: run the program, diff, and (up) commit."""
    ctx, stack = op.ctx, op.stack
    values = op.config.values(show_secrets=True)
    op.events.send(
        preludeEvent={"config": {k: "[secret]" if s else v for k, (v, s) in values.items()}}
    )
    verb = "Previewing update" if op.preview else "Updating"
    ctx.print(f"{verb} ({stack}):")
    seen: set[str] = set()

    def on_register(record: dict[str, Any]) -> None:
        before = op.prior.get(record["urn"])
        if before is None:
            kind = "create"
        elif strip_secrets(before["inputs"]) != strip_secrets(record["inputs"]):
            kind = "update"
        else:
            kind = "same"
        record["op"] = kind
        seen.add(record["urn"])
        op.step(kind, record["urn"], record["type"])

    config = {k: v for k, (v, _) in values.items()}
    real = ctx.settings.get("programs")
    synthesized = real is not None and stack not in real
    if synthesized:
        run = synthesize_program(
            project=op.stacks.project, stack=stack, config=config, on_register=on_register
        )
    else:
        run = run_program(
            client=_required(op.args, "--client"),
            cloud=neutron.build_cloud(ctx.root, ctx.settings, stack),
            project=op.stacks.project,
            stack=stack,
            pwd=str(ctx.cwd),
            config=config,
            secret_keys=[k for k, (_, s) in values.items() if s],
            dry_run=op.preview,
            parallel=int(op.args.value("--parallel") or 16),
            on_register=on_register,
            prior=op.prior_outputs(),
        )
    _keep_record(ctx, op, run, synthesized=synthesized)
    errors = [d for d in run.diagnostics if d.severity == "error"]
    if run.diagnostics:
        ctx.print("Diagnostics:")
        ctx.print(f"  {STACK_TYPE} ({op.stacks.project}-{stack}):")
    for diagnostic in run.diagnostics:
        first, *rest = diagnostic.message.splitlines() or [""]
        ctx.print(f"    {diagnostic.severity}: {first}")
        for line in rest:
            ctx.print(f"    {line}")
    if run.error or errors:
        op.history("failed")
        op.finish(255)
        return 255
    for urn, before in op.prior.items():
        if urn not in seen:
            op.step("delete", urn, before["type"])

    # A failure told to happen fails the server's creation; Neutron's, the subnet's.
    failed_type, failure = INSTANCE_TYPE, op.failure()
    if failure is None and not op.preview:
        failed_type, failure = (
            neutron.SUBNET_TYPE,
            neutron.claim(ctx.root, stack, run.registrations),
        )
    if failure is not None:
        failed = next((r for r in run.registrations if r["type"] == failed_type), None)
        urn = failed["urn"] if failed else run.root_urn
        ctx.print("Diagnostics:")
        ctx.print(f"  {urn.split('::')[-2] if '::' in urn else STACK_TYPE}:")
        ctx.print(f"    error: 1 error occurred:\n        * creating {urn}: {failure}")
        op.history("failed")
        op.finish(255)
        return 255

    if not op.preview:
        crypter = op.crypter()
        resources = [
            {
                "urn": r["urn"],
                "type": r["type"],
                "custom": r["custom"],
                "parent": r["parent"],
                "protect": r["protect"],
                "dependencies": r["dependencies"],
                "inputs": _mask_secrets(r["inputs"], crypter),
                "id": r["id"],
                # The checkpoint encrypts secret outputs; the stand-in simply encrypts them all.
                "outputs": _seal(json.dumps(r["outputs"]), crypter),
            }
            for r in run.registrations
        ]
        outputs = {}
        for name, (value, secret) in plain_outputs(run.outputs).items():
            if secret and crypter:
                outputs[name] = {"secret": True, "ciphertext": crypter.encrypt(json.dumps(value))}
            else:
                outputs[name] = {"secret": secret, "value": value}
        op.stacks.write(stack, {**op.latest, "resources": resources, "outputs": outputs})
        ctx.print("Outputs:")
        for name, entry in outputs.items():
            shown = "[secret]" if entry["secret"] else json.dumps(entry["value"])
            ctx.print(f"    {name}: {shown}")
        op.history("succeeded")
    return op.finish(0)


def _required(args: Args, flag: str) -> str:
    value = args.value(flag)
    if value is None:
        raise CliError(f"{flag} is required for an inline program")
    return value


def _keep_record(ctx: Context, op: _Operation, run: Any, *, synthesized: bool) -> None:
    """What the program declared, for the tests (not part of the CLI's behaviour)."""
    folder = ctx.root / "programs"
    folder.mkdir(exist_ok=True)
    record = {
        "stack": op.stack,
        "operation": op.kind,
        "dry_run": op.preview,
        "synthesized": synthesized,
        "config_keys": sorted(op.config.values(show_secrets=False)),
        "secret_keys": sorted(k for k, (_, s) in op.config.values(show_secrets=False).items() if s),
        "registrations": run.registrations,
        "outputs": run.outputs,
        "error": run.error,
        "diagnostics": [d.__dict__ for d in run.diagnostics],
        "start": op.started,
        "end": time.time(),
    }
    (folder / f"{op.stack}.{time.time_ns()}.{op.kind}.json").write_text(json.dumps(record))


def _refresh(op: _Operation) -> int:
    drift = int(op.ctx.settings.get("drift", {}).get(op.stack, 0))
    op.ctx.print(f"{'Previewing refresh' if op.preview else 'Refreshing'} ({op.stack}):")
    for resource in op.latest.get("resources", []):
        custom = resource.get("custom")
        kind = "update" if custom and drift > 0 else "same"
        drift -= int(kind == "update")
        op.step(kind, resource["urn"], resource["type"])
    op.history("succeeded")
    return op.finish(0)


def _ancestors(urn: str, by_urn: dict[str, dict[str, Any]]) -> set[str]:
    found = set()
    while urn in by_urn and by_urn[urn].get("parent"):
        urn = by_urn[urn]["parent"]
        found.add(urn)
    return found


def _destroy(op: _Operation) -> int:
    resources = op.latest.get("resources", [])
    by_urn = {r["urn"]: r for r in resources}
    protected = [r for r in resources if r.get("protect")]
    if protected and "--exclude-protected" not in op.args.flags:
        urn = protected[0]["urn"]
        raise CliError(
            f'resource "{urn}" cannot be deleted because it is protected. To unprotect the '
            "resource, either remove the `protect` flag from the resource in your Pulumi "
            f"program and run `pulumi up`, or use the command: `pulumi state unprotect '{urn}'`"
        )
    kept: set[str] = set()
    for resource in protected:
        kept.add(resource["urn"])
        kept |= _ancestors(resource["urn"], by_urn)
        kept |= set(resource.get("dependencies", []))
    op.ctx.print(f"Destroying ({op.stack}):")
    for resource in reversed(resources):
        if resource["urn"] not in kept:
            op.step("delete", resource["urn"], resource["type"])
    remaining = [r for r in resources if r["urn"] in kept]
    op.stacks.write(op.stack, {**op.latest, "resources": remaining, "outputs": {}})
    neutron.release(op.ctx.root, op.stack)
    op.history("succeeded")
    return op.finish(0)


def _unprotect(ctx: Context, args: Args) -> int:
    if args.words[1:2] != ["unprotect"] or "--all" not in args.flags:
        raise CliError("the stand-in only knows `state unprotect --all`")
    stacks = ctx.stacks()
    stack = args.stack()
    latest = stacks.read(stack)
    lock = stacks.lock(stack)
    try:
        for resource in latest.get("resources", []):
            resource["protect"] = False
        stacks.write(stack, latest)
    finally:
        lock.unlink()
    ctx.print("All resources unprotected")
    return 0


def _hold(ctx: Context, stack: str) -> None:
    """``hold: {stack: path}``: keep the operation (and its lock) until the path exists."""
    release = ctx.settings.get("hold", {}).get(stack)
    deadline = time.monotonic() + 60
    while release and not Path(release).exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def run(ctx: Context, args: Args) -> int:
    kind = args.words[0]
    if kind == "state":
        return _unprotect(ctx, args)
    if kind == "up" and not {"--yes", "--skip-preview"} <= args.flags:
        raise CliError("--yes must be passed in to proceed when running in non-interactive mode")
    op = _Operation(ctx, args, kind)
    op.crypter()  # a wrong or missing passphrase fails here, before anything runs, as in the CLI
    lock = None if op.preview else op.stacks.lock(op.stack)
    op.events = EventStream(args.value("--event-log"))
    try:
        time.sleep(float(ctx.settings.get("delay", 0)))
        _hold(ctx, op.stack)
        if kind in ("preview", "up"):
            return _program(op)
        if kind == "refresh":
            return _refresh(op)
        return _destroy(op)
    finally:
        op.events.close()
        if lock is not None:
            lock.unlink()
