"""Per-tenant stacks through the Automation API: plan centrally, then run tenants in parallel.

Every tenant's stack runs the same builder as ``__main__.py`` (``share_server_program``) as an
inline program, in its own workspace directory (its ``Pulumi.<stack>.yaml`` holds its config
and the passphrase salt, so the directory is kept between runs). ``stack.up()`` blocks, so
tenants run on a bounded thread pool; each run catches everything that goes wrong in it, so
one tenant's failure, or a lock held by another run, is that tenant's result and nothing more.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

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

from ..config import Problem
from ..program import share_server_program
from . import operations
from .allocation import AllocationError, Ledger, release
from .ledger import LedgerFile, reserve
from .options import LEDGER_NAME, PROJECT, FleetOptions
from .plan import TenantPlan, final_config_problems, subnet_request, tenant_config
from .report import Progress
from .results import Status, TenantResult, classify
from .tenants import InvalidTenantsFile, Tenant, TenantsFile


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
        workspace = LocalWorkspace(**self.workspace_options(tenant).__dict__)
        return operations.state_cidr(
            workspace, next(t for t in self.file.tenants if t.name == tenant)
        )

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

    def _operate(
        self, plan: TenantPlan, log: _TenantLog, on_event: Callable[[EngineEvent], None]
    ) -> TenantResult:
        op = self.options.operation
        streams = {
            "on_output": log.write,
            "on_error": log.error,
            "on_event": on_event,
            "color": "never",
            "suppress_progress": True,
        }
        ok = TenantResult(tenant=plan.stack_name, operation=self.options.label, status=Status.OK)
        if op in ("preview", "up"):
            stack = self._stack(plan, create=True)
            operations.set_config(stack, plan)
            run = operations.preview if op == "preview" else operations.up
            return run(stack, plan, ok, streams)
        stack = self._stack(plan, create=False)
        if op == "refresh" and self.options.preview_only:
            return operations.drift(stack, ok, streams)
        if op == "refresh":
            return operations.refresh(stack, ok, streams)
        if op == "destroy":
            return operations.destroy(
                stack, ok, streams, include_protected=self.options.include_protected
            )
        return operations.status(stack, ok)
