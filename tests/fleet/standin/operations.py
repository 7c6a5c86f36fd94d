"""preview, up, refresh, destroy, state unprotect and state remove, as the CLI runs them on a
DIY backend.

- ``up``, ``refresh`` and ``destroy`` take the stack's lock; ``preview`` and
  ``refresh --preview-only`` take none (pulumi/pulumi#8642, #22385).
- ``preview`` and ``up`` run the inline program for real (``engine.run_program``) and diff
  what it declared against the stack's checkpoint: create, update, same, delete.
- ``refresh`` reads each resource back from the cloud (the checkpoint, changed behind
  Pulumi's back by ``cloud_changes``) and ``destroy`` works on the checkpoint, as the CLI does
  without ``--run-program``.
- A subnet on a shared service network is checked against every other stack's subnets, as
  Neutron would (neutron.py): an overlap fails that ``up``.
- Each registration is a create, same, update or replace (``FORCE_NEW``, ``replaceOnChanges``),
  and the share commands really run where the engine would run them: a create, an update, a
  replacement's old delete (first, with ``deleteBeforeReplace``) and new create, a delete in a
  destroy, each against the server that answers at its host (nova.py).
- ``standin.json`` can make a stack fail (``fail``), change its cloud (``cloud_changes``),
  take longer (``delay``) or hold its operation until a file appears (``hold``, or
  ``hold_subnet`` between its program and its subnet). Every
  stack's program runs for real.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from . import neutron, nova, real_neutron
from .cli import Args, Context
from .commands import EXIT_CONFIGURATION, EXIT_ERROR
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
)

INSTANCE_TYPE = "openstack:compute/instance:Instance"
SYMBOL = {
    "create": "+",
    "update": "~",
    "replace": "+-",
    "delete": "-",
    "same": " ",
    "refresh": "~",
}
VERBING = {"create": "creating", "update": "updating", "delete": "deleting"}


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


def _unmask_secrets(value: Any, crypter: Crypter | None) -> Any:
    """Inputs as the checkpoint keeps them, with their secrets decrypted (still marked)."""
    if isinstance(value, dict):
        if value.get(SECRET_SIG_KEY) == SECRET_SIG and "ciphertext" in value:
            plain = json.loads(_unseal(value["ciphertext"], crypter))
            return {SECRET_SIG_KEY: SECRET_SIG, "value": plain}
        return {k: _unmask_secrets(v, crypter) for k, v in value.items()}
    if isinstance(value, list):
        return [_unmask_secrets(v, crypter) for v in value]
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

    def prior_inputs(self, urn: str) -> dict[str, Any]:
        inputs: dict[str, Any] = _unmask_secrets(self.prior[urn]["inputs"], self.crypter())
        return inputs

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
    connections = nova.Connections(ctx.root, stack, ctx.settings)
    failures: list[tuple[str, str, str]] = []
    """(what, urn, why) of the steps that failed."""
    deferred: list[str] = []
    """Commands replaced create-first: their old delete runs after the program."""

    def run_command(urn: str, kind: str, inputs: dict[str, Any], dbr: bool) -> None:
        before = op.prior.get(urn)
        steps = {"create": ["create"], "update": ["update"], "same": []}.get(kind)
        if steps is None:  # replace
            assert before is not None
            steps = ["delete", "create"] if dbr else ["create"]
            if not dbr:
                deferred.append(urn)
        for step in steps:
            error = connections.run(urn, step, op.prior_inputs(urn) if step == "delete" else inputs)
            if error is not None:
                failures.append((VERBING[step], urn, error))
                return

    def on_register(record: dict[str, Any]) -> None:
        kind = record["op"]
        seen.add(record["urn"])
        op.step(kind, record["urn"], record["type"])
        if op.preview:
            return
        if record["type"] == nova.INSTANCE:
            connections.server_exists(nova.Server.from_outputs(record["id"], record["outputs"]))
        if record["type"] == nova.REMOTE_COMMAND and not failures:
            run_command(
                record["urn"], kind, record["inputs"], bool(record["delete_before_replace"])
            )

    config = {k: v for k, (v, _) in values.items()}
    engine = None
    if real_neutron.enabled(ctx.settings):
        engine = real_neutron.deployment(
            ctx.root, ctx.settings, stack, before_subnet=lambda: _hold(ctx, stack, "hold_subnet")
        )
    run = run_program(
        client=_required(op.args, "--client"),
        cloud=(
            real_neutron.monitor(engine, preview=op.preview)
            if engine is not None
            else neutron.build_cloud(ctx.root, ctx.settings, stack)
        ),
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
    _keep_record(ctx, op, run)
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
        if engine is not None and not op.preview:
            # As Pulumi's state: what the failed update made is kept (Neutron has it).
            real_neutron.save(ctx.root, stack, engine)
            _commit(op, run.registrations, {})
        op.history("failed")
        op.finish(EXIT_ERROR)
        return EXIT_ERROR
    if engine is not None and not op.preview:
        engine.finish_run()  # the replaced and the undeclared are deleted, in Neutron too
        real_neutron.save(ctx.root, stack, engine)
    for urn, before in op.prior.items():
        if urn not in seen:
            op.step("delete", urn, before["type"])
            if before["type"] == nova.REMOTE_COMMAND:
                deferred.append(urn)
    if not op.preview:
        # After the program, as the engine deletes: the old halves of create-first
        # replacements, then what the program no longer declares.
        for urn in deferred:
            if not failures:
                error = connections.run(urn, "delete", op.prior_inputs(urn))
                if error is not None:
                    failures.append(("deleting", urn, error))

    # A failure told to happen fails the server's creation; Neutron's, the subnet's.
    failed_type, failure = INSTANCE_TYPE, op.failure()
    if failure is None and not op.preview and engine is None:
        _hold(ctx, stack, "hold_subnet")
        failed_type, failure = (
            neutron.SUBNET_TYPE,
            neutron.claim(ctx.root, stack, run.registrations),
        )
    if failure is not None:
        failed = next((r for r in run.registrations if r["type"] == failed_type), None)
        failures.insert(0, ("creating", failed["urn"] if failed else run.root_urn, failure))
    if failures:
        return _failed(op, *failures[0])

    if not op.preview:
        outputs = _commit(op, run.registrations, run.outputs)
        ctx.print("Outputs:")
        for name, entry in outputs.items():
            shown = "[secret]" if entry["secret"] else json.dumps(entry["value"])
            ctx.print(f"    {name}: {shown}")
        op.history("succeeded")
    return op.finish(0)


def _commit(
    op: _Operation, registrations: list[dict[str, Any]], raw_outputs: dict[str, Any]
) -> dict[str, Any]:
    """Write the checkpoint: these resources and outputs (secrets encrypted)."""
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
        for r in registrations
    ]
    outputs = {}
    for name, (value, secret) in plain_outputs(raw_outputs).items():
        if secret and crypter:
            outputs[name] = {"secret": True, "ciphertext": crypter.encrypt(json.dumps(value))}
        else:
            outputs[name] = {"secret": secret, "value": value}
    op.stacks.write(op.stack, {**op.latest, "resources": resources, "outputs": outputs})
    return outputs


def _failed(op: _Operation, what: str, urn: str, why: str) -> int:
    """A failed step, reported as the CLI reports it; nothing of the update is committed."""
    op.ctx.print("Diagnostics:")
    op.ctx.print(f"  {urn.split('::')[-2] if '::' in urn else STACK_TYPE}:")
    op.ctx.print(f"    error: 1 error occurred:\n        * {what} {urn}: {why}")
    op.history("failed")
    op.finish(EXIT_ERROR)
    return EXIT_ERROR


def _required(args: Args, flag: str) -> str:
    value = args.value(flag)
    if value is None:
        raise CliError(f"{flag} is required for an inline program")
    return value


def _keep_record(ctx: Context, op: _Operation, run: Any) -> None:
    """What the program declared, for the tests (not part of the CLI's behaviour)."""
    folder = ctx.root / "programs"
    folder.mkdir(exist_ok=True)
    record = {
        "stack": op.stack,
        "operation": op.kind,
        "dry_run": op.preview,
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


def _gone_from_nova(resource: dict[str, Any], deleted: frozenset[str]) -> bool:
    """A server deleted out of band, or an attachment Nova detached when it deleted one."""
    if resource["type"] == nova.INSTANCE:
        return str(resource.get("id")) in deleted
    if resource["type"] == nova.VOLUME_ATTACH:
        return str((resource.get("inputs") or {}).get("instanceId")) in deleted
    return False


def _refresh(op: _Operation) -> int:
    """Read every resource back from the cloud and compare it with the checkpoint.

    The cloud is the checkpoint as the last update left it, changed behind Pulumi's back by
    ``cloud_changes: {stack: {resource name: {output: value} | "deleted"}}`` and by the servers
    in ``deleted_servers`` (with their attachments): a resource whose outputs differ is an
    update, one that is gone a delete; ``--preview-only`` writes nothing. With ``--target``,
    only the resources named are read; the others stay as they are.
    """
    changes = op.ctx.settings.get("cloud_changes", {}).get(op.stack, {})
    deleted = nova.deleted_servers(op.ctx.settings)
    targets = set(op.args.values.get("--target", []))
    crypter = op.crypter()
    op.ctx.print(f"{'Previewing refresh' if op.preview else 'Refreshing'} ({op.stack}):")
    kept = []
    for before in op.latest.get("resources", []):
        if targets and before["urn"] not in targets:
            kept.append(before)
            continue
        change = changes.get(before["urn"].rsplit("::", 1)[-1]) if before["custom"] else None
        if _gone_from_nova(before, deleted):
            change = "deleted"
        if change == "deleted":
            op.step("delete", before["urn"], before["type"])
            continue
        after, kind = before, "same"
        if change:
            recorded = json.loads(_unseal(before["outputs"], crypter))
            actual = {**recorded, **change}
            if actual != recorded:
                kind = "update"
                after = {**before, "outputs": _seal(json.dumps(actual), crypter)}
        op.step(kind, before["urn"], before["type"])
        kept.append(after)
    if not op.preview:
        op.stacks.write(op.stack, {**op.latest, "resources": kept})
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
    # The share commands' deletes dial the server, which is deleted after them (it is what
    # they depend on): it answers unless it was lost out of band.
    connections = nova.Connections(op.ctx.root, op.stack, op.ctx.settings)
    outputs = op.prior_outputs()
    for resource in resources:
        if resource["type"] == nova.INSTANCE:
            connections.server_exists(
                nova.Server.from_outputs(resource["id"], outputs[resource["urn"]].outputs)
            )
    for resource in reversed(resources):
        if resource["urn"] not in kept:
            if resource["type"] == nova.REMOTE_COMMAND:
                error = connections.run(resource["urn"], "delete", op.prior_inputs(resource["urn"]))
                if error is not None:
                    return _failed(op, "deleting", resource["urn"], error)
            op.step("delete", resource["urn"], resource["type"])
    if real_neutron.enabled(op.ctx.settings):
        engine = real_neutron.deployment(op.ctx.root, op.ctx.settings, op.stack)
        real_neutron.destroy(op.ctx.root, op.stack, engine, kept)
    remaining = [r for r in resources if r["urn"] in kept]
    op.stacks.write(op.stack, {**op.latest, "resources": remaining, "outputs": {}})
    neutron.release(op.ctx.root, op.stack)
    op.history("succeeded")
    return op.finish(0)


def _remove(ctx: Context, args: Args) -> int:
    """``state remove URN...`` (alias ``state delete``): the resources leave the state; the
    cloud is not asked anything. Like the CLI (pkg/resource/edit: ``DeleteResource``), a
    protected resource needs ``--force`` and one others depend on ``--target-dependents``."""
    if "--all" in args.flags:
        raise CliError("the stand-in removes resources by URN only (no --all)")
    stacks = ctx.stacks()
    stack = args.stack()
    latest = stacks.read(stack)
    lock = stacks.lock(stack)
    try:
        resources = latest.get("resources", [])
        doomed = set(args.words)
        unknown = doomed - {r["urn"] for r in resources}
        if unknown:
            raise CliError(f"No such resource {sorted(unknown)[0]!r} exists in the current state")
        for resource in resources:
            forced = "--force" in args.flags
            if resource["urn"] in doomed and resource.get("protect") and not forced:
                raise CliError(
                    f"Resource {resource['urn']!r} cannot be safely deleted because it is "
                    "protected. Unprotect the resource first or pass --force"
                )
            needs = set(resource.get("dependencies", [])) | {resource.get("parent")}
            if resource["urn"] not in doomed and needs & doomed:
                if "--target-dependents" not in args.flags:
                    raise CliError(
                        f"Resource {sorted(needs & doomed)[0]!r} can't be safely deleted "
                        f"because {resource['urn']!r} depends on it"
                    )
                doomed.add(resource["urn"])
        latest["resources"] = [r for r in resources if r["urn"] not in doomed]
        stacks.write(stack, latest)
    finally:
        lock.unlink()
    ctx.print("Resource deleted")
    return 0


def _unprotect(ctx: Context, args: Args) -> int:
    if "--all" not in args.flags or args.words:
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


def _hold(ctx: Context, stack: str, setting: str = "hold") -> None:
    """``hold: {stack: path}``: keep the operation (and its lock) until the path exists;
    ``hold_subnet``: the same, once the program has run (its lookups are done) and before the
    stack's service subnet is made in the shared Neutron."""
    release = ctx.settings.get(setting, {}).get(stack)
    deadline = time.monotonic() + 60
    while release and not Path(release).exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def run(ctx: Context, args: Args) -> int:
    kind = args.command[0]
    if args.command == ("state", "remove"):
        return _remove(ctx, args)
    if kind == "state":
        return _unprotect(ctx, args)
    if args.words:
        # up and preview take a template or URL to deploy from; the fleet never sends one.
        raise CliError(f"the stand-in deploys no template (got {args.words[0]!r})")
    confirmed = {"--yes", "--skip-preview", "--preview-only"} & args.flags
    if kind != "preview" and not confirmed:
        # backenderr.NoConfirmationInNonInteractiveError, exit ExitConfigurationError
        raise CliError(
            "--yes or --skip-preview or --preview-only must be passed in to proceed when "
            "running in non-interactive mode",
            code=EXIT_CONFIGURATION,
        )
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
