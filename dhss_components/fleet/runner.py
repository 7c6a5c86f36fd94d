"""Per-tenant stacks through the Automation API: plan centrally, then run tenants in parallel.

Every tenant's stack runs the same builder as ``__main__.py`` (``share_server_program``) as an
inline program, in its own workspace directory (its ``Pulumi.<stack>.yaml`` holds its config
and the passphrase salt, so the directory is kept between runs). ``stack.up()`` blocks, so
tenants run on a bounded thread pool; each run catches everything that goes wrong in it, so
one tenant's failure, or a lock held by another run, is that tenant's result and nothing more.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, TextIO

from pulumi.automation import (
    EngineEvent,
    LocalWorkspace,
    LocalWorkspaceOptions,
    ProjectBackend,
    ProjectSettings,
    PulumiCommand,
    Stack,
    create_or_select_stack,
    select_stack,
)
from pulumi.automation.errors import StackNotFoundError

from ..config import Problem
from ..naming import service_subnet_name
from ..program import share_server_program
from .allocation import AllocationError, Ledger, release
from .ledger import LedgerFile, reserve
from .plan import (
    TenantPlan,
    final_config_problems,
    stale_keys,
    subnet_request,
    tenant_config,
)
from .report import Progress
from .results import (
    Status,
    TenantResult,
    changed_count,
    classify,
    export_paths,
    op_counts,
)
from .tenants import InvalidTenantsFile, Tenant, TenantsFile

PROJECT = "manila-dhss"
DEFAULT_BACKEND_URL = "file://~/.pulumi-manila-dhss"
"""The same local state as Pulumi.yaml: a stack made with `pulumi up` is the fleet's too."""
DEFAULT_WORK_ROOT = "~/.manila-dhss-fleet"
LEDGER_NAME = "service-subnets.json"

Operation = Literal["preview", "up", "refresh", "destroy", "status"]
OPERATIONS: tuple[Operation, ...] = ("preview", "up", "refresh", "destroy", "status")
PASSPHRASE_VARS = ("PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE")
VOLUME_TYPE = "openstack:blockstorage/volume:Volume"
SUBNET_TYPE = "openstack:networking/subnet:Subnet"


class FleetSetupError(Exception):
    """Nothing can run (no CLI, no passphrase, a backend directory that cannot be made)."""


@dataclass(frozen=True)
class FleetOptions:
    operation: Operation
    work_root: Path
    log_dir: Path
    parallel: int = 4
    backend_url: str = DEFAULT_BACKEND_URL
    secrets_provider: str = "passphrase"
    preview_only: bool = False
    """refresh: a drift check that changes nothing."""
    include_protected: bool = False
    """destroy: also destroy protected resources (the shares' volumes and their data)."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Extra environment for the CLI (never secrets: a workspace prints its env in repr)."""

    @property
    def label(self) -> str:
        if self.operation == "refresh" and self.preview_only:
            return "drift"
        return self.operation


def check_environment(options: FleetOptions, environ: Mapping[str, str]) -> None:
    """Fail before any stack is touched when the secrets passphrase is not provided."""
    if options.secrets_provider != "passphrase":
        return
    if "PULUMI_CONFIG_PASSPHRASE" in environ:
        return
    path = environ.get("PULUMI_CONFIG_PASSPHRASE_FILE")
    if path is None:
        raise FleetSetupError(
            "the stacks' secrets use a passphrase: set PULUMI_CONFIG_PASSPHRASE, or "
            "PULUMI_CONFIG_PASSPHRASE_FILE to a file holding it (never the tenants file), "
            "or choose another --secrets-provider"
        )
    if not os.access(os.path.expanduser(path), os.R_OK):
        raise FleetSetupError(f"PULUMI_CONFIG_PASSPHRASE_FILE={path} cannot be read")


def load_lazy_modules() -> None:
    """Load the provider SDKs' lazily imported submodules now, on one thread.

    pulumi_openstack and pulumi_command import their submodules with importlib's LazyLoader,
    which is not thread-safe before Python 3.12: two tenants' programs first touching
    ``pulumi_openstack.images`` at once can find it half loaded ("module has no attribute
    get_image_ids"). Seen here with two tenants in parallel; loading them first costs <1 s.
    """
    for _ in range(5):
        lazy = [m for m in list(sys.modules.values()) if type(m).__name__ == "_LazyModule"]
        if not lazy:
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # modules the program never uses
            for module in lazy:
                with contextlib.suppress(Exception):  # a module that cannot load fails later
                    hasattr(module, "__fleet_load__")  # any attribute but a few dunders loads it


def local_backend_dir(url: str) -> Path | None:
    """The directory of a file:// backend (the CLI expands ~ the same way), else None."""
    if not url.startswith("file://"):
        return None
    return Path(os.path.expanduser(url.removeprefix("file://")))


class _TenantLog:
    """One log file per tenant: everything the CLI printed, in order, from both streams."""

    def __init__(self, path: Path, header: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file: TextIO = open(path, "w", encoding="utf-8")  # noqa: SIM115 (closed below)
        self._lock = threading.Lock()
        self.write(header)

    def write(self, line: str) -> None:
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()

    def error(self, line: str) -> None:
        self.write(f"[stderr] {line}")

    def close(self) -> None:
        with self._lock:
            self._file.close()


def _short(urn: str) -> str:
    parts = urn.split("::")
    kind = parts[-2].split("$")[-1].split(":")[-1] if len(parts) >= 2 else ""
    return f"{kind} {parts[-1]}".strip()


class Fleet:
    """Runs one operation over the tenants of a tenants file."""

    def __init__(
        self,
        tenants_file: TenantsFile,
        options: FleetOptions,
        command: PulumiCommand,
        progress_stream: TextIO,
        *,
        program: Callable[[], Any] = share_server_program,
        live: bool | None = None,
    ) -> None:
        self.file = tenants_file
        self.options = options
        self.command = command
        self.program = program
        self.progress_stream = progress_stream
        self.live = live
        self.ledger = LedgerFile(options.work_root / LEDGER_NAME)

    # -- workspaces ----------------------------------------------------------------------

    def work_dir(self, tenant: str) -> Path:
        return self.options.work_root / "stacks" / tenant

    def workspace_options(self, tenant: str) -> LocalWorkspaceOptions:
        work_dir = self.work_dir(tenant)
        work_dir.mkdir(parents=True, exist_ok=True)
        # No stack_settings here: writing them would replace Pulumi.<stack>.yaml and drop
        # the passphrase salt the CLI keeps in it.
        return LocalWorkspaceOptions(
            work_dir=str(work_dir),
            project_settings=ProjectSettings(
                name=PROJECT,
                runtime="python",
                backend=ProjectBackend(url=self.options.backend_url),
            ),
            secrets_provider=self.options.secrets_provider,
            pulumi_command=self.command,
            env_vars={"PULUMI_SKIP_UPDATE_CHECK": "true", **self.options.env},
        )

    # -- planning --------------------------------------------------------------------------

    def _remembered_cidr(self, tenant: str) -> str | None:
        """The service subnet an existing stack already has, from its state: the subnet is
        there as soon as it was made, even when the rest of that update failed (the stack's
        outputs would not have been written). It is found by Manila's name for it."""
        spec = next(t.spec for t in self.file.tenants if t.name == tenant)
        name = service_subnet_name(spec.share_network.neutron_subnet_id)
        workspace = LocalWorkspace(**self.workspace_options(tenant).__dict__)
        try:
            deployment = workspace.export_stack(tenant).deployment or {}
        except StackNotFoundError:
            return None
        for resource in deployment.get("resources") or []:
            inputs = resource.get("inputs") or {}
            if resource.get("type") == SUBNET_TYPE and inputs.get("name") == name:
                return str(inputs["cidr"]) if inputs.get("cidr") else None
        return None

    def _existing_stacks(self) -> set[str]:
        """Stack names in the backend (one CLI call, so only existing stacks are asked for
        their state)."""
        if not self.file.tenants:
            return set()
        any_tenant = self.file.tenants[0].name
        workspace = LocalWorkspace(**self.workspace_options(any_tenant).__dict__)
        return {summary.name.split("/")[-1] for summary in workspace.list_stacks()}

    def _read_remembered(self, tenants: Sequence[str]) -> dict[str, str]:
        remembered: dict[str, str] = {}
        problems = []
        if tenants:
            existing = self._existing_stacks()
            tenants = [t for t in tenants if t in existing]
        with ThreadPoolExecutor(max_workers=self.options.parallel) as pool:
            futures = {t: pool.submit(self._remembered_cidr, t) for t in tenants}
            for tenant, future in futures.items():
                try:
                    cidr = future.result()
                except Exception as exc:
                    problems.append(
                        Problem(
                            f"tenants[{tenant}]",
                            "cannot read its stack's state to learn which service subnet it "
                            f"already has: {classify(exc)[1]}",
                        )
                    )
                    continue
                if cidr is not None:
                    remembered[tenant] = cidr
        if problems:
            raise InvalidTenantsFile(self.file.path, problems)
        return remembered

    def plan(self, selected: Sequence[Tenant]) -> list[TenantPlan]:
        """Allocate every tenant's service subnet (preview and up), then build each selected
        tenant's config. Raises InvalidTenantsFile before any stack is touched."""
        cidrs: Mapping[str, str] = {}
        if self.options.operation in ("preview", "up"):
            requests = [r for r in map(subnet_request, self.file.tenants) if r is not None]
            try:
                cidrs = reserve(self.ledger, requests, self._read_remembered).cidrs
            except AllocationError as exc:
                raise InvalidTenantsFile(self.file.path, exc.problems) from None
        plans = []
        problems: list[Problem] = []
        for tenant in selected:
            cidr = cidrs.get(tenant.name)
            problems.extend(final_config_problems(tenant, cidr))
            plans.append(
                TenantPlan(
                    tenant=tenant,
                    work_dir=self.work_dir(tenant.name),
                    config=tenant_config(tenant, cidr),
                    service_subnet_cidr=cidr,
                )
            )
        if problems:
            raise InvalidTenantsFile(self.file.path, problems)
        return plans

    # -- running -----------------------------------------------------------------------------

    def run(self, plans: Sequence[TenantPlan]) -> list[TenantResult]:
        load_lazy_modules()
        progress = Progress(
            [p.stack_name for p in plans],
            self.options.label,
            self.progress_stream,
            live=self.live,
        )
        pool = ThreadPoolExecutor(max_workers=self.options.parallel, thread_name_prefix="tenant")
        try:
            futures = [pool.submit(self._run_tenant, plan, progress) for plan in plans]
            results = [future.result() for future in futures]
        except KeyboardInterrupt:
            # Ctrl-C: tenants not started yet never start; the running ones end their CLI
            # call (the CLI got the same signal and stops the operation cleanly).
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        finally:
            pool.shutdown(wait=True)
            progress.close()
        if self.options.operation == "destroy":
            self._release(results)
        return results

    def _release(self, results: Sequence[TenantResult]) -> None:
        # Destroyed, or no stack at all: either way no subnet of the tenant's is left.
        destroyed = [r.tenant for r in results if r.status in (Status.OK, Status.ABSENT)]
        if not destroyed:
            return
        with self.ledger.locked() as locked:
            ledger: Ledger = locked.ledger
            for tenant in destroyed:
                ledger = release(ledger, tenant)
            locked.save(ledger)

    def _run_tenant(self, plan: TenantPlan, progress: Progress) -> TenantResult:
        name = plan.stack_name
        operation = self.options.label
        log = _TenantLog(
            self.options.log_dir / f"{name}.log",
            f"# manila-dhss fleet: {operation} of stack {name} "
            f"({self.options.backend_url}), {time.strftime('%Y-%m-%dT%H:%M:%S%z')}",
        )
        progress.start(name)
        started = time.monotonic()

        def on_event(event: EngineEvent) -> None:
            pre = event.resource_pre_event
            if pre is not None and pre.metadata is not None:
                op = pre.metadata.op.value
                progress.step(name, f"{op} {_short(pre.metadata.urn)}", counts=op != "same")

        try:
            result = self._operate(plan, log, on_event)
        except Exception as exc:
            status, message = classify(exc)
            log.write(f"# {status.value}: {message}")
            result = TenantResult(
                tenant=name,
                operation=operation,
                status=status,
                message=message,
                service_subnet_cidr=plan.service_subnet_cidr,
            )
        finally:
            log.close()
        result = replace(result, duration=time.monotonic() - started, log_path=log.path)
        progress.done(result)
        return result

    def _stack(self, plan: TenantPlan, *, create: bool) -> Stack:
        opts = self.workspace_options(plan.stack_name)
        if create:
            return create_or_select_stack(
                plan.stack_name, project_name=PROJECT, program=self.program, opts=opts
            )
        return select_stack(plan.stack_name, project_name=PROJECT, program=self.program, opts=opts)

    def _set_config(self, stack: Stack, plan: TenantPlan) -> None:
        # The keys are in the workspace's Pulumi.<stack>.yaml: no CLI call needed to see them.
        try:
            current = stack.workspace.stack_settings(stack.name).config or {}
        except FileNotFoundError:
            current = {}
        stale = stale_keys(current, plan.config)
        if stale:
            stack.remove_all_config(stale)
        stack.set_all_config(dict(plan.config))

    def _operate(
        self, plan: TenantPlan, log: _TenantLog, on_event: Callable[[EngineEvent], None]
    ) -> TenantResult:
        op = self.options.operation
        streams: dict[str, Any] = {
            "on_output": log.write,
            "on_error": log.error,
            "on_event": on_event,
            "color": "never",
            "suppress_progress": True,
        }
        ok = TenantResult(tenant=plan.stack_name, operation=self.options.label, status=Status.OK)
        if op in ("preview", "up"):
            stack = self._stack(plan, create=True)
            self._set_config(stack, plan)
            if op == "preview":
                preview = stack.preview(**streams)
                return replace(
                    ok,
                    changes=op_counts(preview.change_summary),
                    service_subnet_cidr=plan.service_subnet_cidr,
                )
            up = stack.up(**streams)
            outputs = {k: v.value for k, v in up.outputs.items()}
            return replace(
                ok,
                changes=op_counts(up.summary.resource_changes),
                exports=export_paths(outputs.get("shares")),
                service_subnet_cidr=_cidr_of(outputs) or plan.service_subnet_cidr,
            )
        stack = self._stack(plan, create=False)
        if op == "refresh":
            if self.options.preview_only:
                changes = op_counts(stack.preview_refresh(**streams).change_summary)
                if changed_count(changes):
                    return replace(
                        ok,
                        status=Status.DRIFT,
                        changes=changes,
                        message="the cloud differs from the stack's state",
                    )
                return replace(ok, changes=changes)
            refreshed = stack.refresh(**streams)
            return replace(ok, changes=op_counts(refreshed.summary.resource_changes))
        if op == "destroy":
            return self._destroy(stack, ok, streams)
        return self._status(stack, ok)

    def _destroy(self, stack: Stack, ok: TenantResult, streams: dict[str, Any]) -> TenantResult:
        workspace = stack.workspace
        assert isinstance(workspace, LocalWorkspace)
        if self.options.include_protected:
            workspace.cli_api.state_unprotect(
                all=True,
                stack=stack.name,
                cwd=workspace.work_dir,
                additional_env=dict(workspace.env_vars),
            )
        destroyed = stack.destroy(exclude_protected=not self.options.include_protected, **streams)
        resources = (stack.export_stack().deployment or {}).get("resources") or []
        protected = [r for r in resources if r.get("protect")]
        kept = tuple(
            f"{r.get('type', '').split(':')[-1]} {str(r.get('urn', '')).split('::')[-1]}"
            for r in protected
        )
        message = ""
        if kept:
            volumes = sum(1 for r in protected if r.get("type") == VOLUME_TYPE)
            message = (
                f"kept {len(kept)} protected resource{'s' if len(kept) != 1 else ''} "
                f"({volumes} share volume{'s' if volumes != 1 else ''} with their data); "
                "destroy --include-protected removes them"
            )
        return replace(
            ok,
            changes=op_counts(destroyed.summary.resource_changes),
            message=message,
            kept=kept,
        )

    def _status(self, stack: Stack, ok: TenantResult) -> TenantResult:
        last = stack.info()
        outputs = {k: v.value for k, v in stack.outputs().items()}
        if last is None:
            message = "no update yet"
        else:
            when = last.end_time or last.start_time
            message = f"last {last.kind} {last.result} at {when:%Y-%m-%d %H:%M:%S} UTC"
        return replace(
            ok,
            changes=op_counts(last.resource_changes) if last else {},
            exports=export_paths(outputs.get("shares")),
            service_subnet_cidr=_cidr_of(outputs),
            message=message,
        )


def _cidr_of(outputs: Mapping[str, Any]) -> str | None:
    server = outputs.get("share_server")
    cidr = server.get("service_subnet_cidr") if isinstance(server, dict) else None
    return str(cidr) if cidr else None
