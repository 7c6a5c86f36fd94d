"""Per-tenant stacks through the Automation API: prepared centrally, then run in parallel.

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
from .allocation import AllocationError, Ledger, SubnetRequest, release
from .ledger import LedgerError, LedgerFile, reserve
from .locks import LOCKS_DIR, Busy, exclusive
from .openssh import OpenSsh
from .options import LEDGER_NAME, PROJECT, FleetOptions, FleetSetupError
from .report import Progress
from .results import Status, TenantResult, classify
from .stack_config import (
    TenantStack,
    final_config_problems,
    given_cidrs,
    subnet_request,
    tenant_config,
)
from .survey import Survey, group_stack_name, read_cloud
from .tenants import InvalidTenantsFile, Tenant, TenantsFile, workspace_dir
from .verify import ShellFactory

WRITES_CONFIG_OR_STATE = frozenset({"preview", "up", "refresh", "rebuild", "destroy"})
"""Operations (by label) that hold the tenant's lock (locks.py): they set its config or change
its stack. The drift check, verify and status only read."""

CHECKS = frozenset({"drift", "verify"})
"""Operations (by label) that tell whether a tenant is as declared."""

BLOCK_RETRIES = 3
"""Rounds of giving a tenant the next block when another subnet took its own meanwhile."""


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
        # Appended to: a tenant run again (its block was taken) keeps its first attempt's log.
        self._file: TextIO = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed below)
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
        shell: ShellFactory = OpenSsh,
    ) -> None:
        self.file = tenants_file
        self.options = options
        self.command = command
        self.program = program
        self.progress_stream = progress_stream
        self.live = live
        self.ledger = LedgerFile(options.work_root / LEDGER_NAME)
        self.shell = shell
        """How verify reaches a service instance (the OpenSSH client)."""

    # -- workspaces ----------------------------------------------------------------------

    def work_dir(self, tenant: str) -> Path:
        return workspace_dir(self.options.work_root / "stacks", tenant)

    def workspace_options(self, tenant: str) -> LocalWorkspaceOptions:
        return self._workspace_options(self.work_dir(tenant))

    def _workspace_options(self, work_dir: Path) -> LocalWorkspaceOptions:
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

    def _lock_path(self, name: str) -> Path:
        return self.options.work_root / LOCKS_DIR / f"{name}.lock"

    # -- preparing -------------------------------------------------------------------------

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

    def _read_cloud(
        self, network_ids: Sequence[str], tenants: Sequence[Tenant], cloud: str | None
    ) -> Survey:
        name = group_stack_name(network_ids, cloud)
        what = ", ".join([f"service network {n}" for n in network_ids] + ["the tenants' sides"])
        log = _TenantLog(
            self.options.log_dir / f"{name}.log",
            f"# manila-dhss fleet: what {what} hold ({self.options.backend_url}), "
            f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')}",
        )
        try:
            # Two fleets on this machine share the read's workspace: one at a time.
            with exclusive(self._lock_path(name), wait=True):
                return read_cloud(
                    name,
                    network_ids=network_ids,
                    tenants=tenants,
                    cloud=cloud,
                    workspace=self._workspace_options(
                        self.options.work_root / "service-networks" / name
                    ),
                    log=log.write,
                )
        except Exception as exc:
            raise FleetSetupError(
                f"cannot read what {what} hold, so no block can be given safely: "
                f"{classify(exc)[1]} (log: {log.path}); no stack was touched"
            ) from None
        finally:
            log.close()

    def _survey(self, requests: Sequence[SubnetRequest]) -> Survey:
        """What each shared service network holds, read with the provider config of its first
        tenant by name, and what each tenant's side holds, read with its own; one read per
        provider config (in parallel)."""
        by_name = {t.name: t for t in self.file.tenants}
        networks: dict[str | None, list[str]] = {}
        tenants: dict[str | None, list[Tenant]] = {}
        seen: set[str] = set()
        for request in sorted(requests, key=lambda r: r.tenant):
            tenant = by_name[request.tenant]
            tenants.setdefault(tenant.cloud, []).append(tenant)
            if request.in_cloud and request.network_id not in seen:
                seen.add(request.network_id)
                networks.setdefault(tenant.cloud, []).append(request.network_id)
        survey = Survey()
        if not tenants:
            return survey
        with ThreadPoolExecutor(max_workers=min(len(tenants), self.options.parallel)) as pool:
            futures = [
                pool.submit(self._read_cloud, networks.get(cloud, []), group, cloud)
                for cloud, group in tenants.items()
            ]
            for future in futures:
                part = future.result()
                survey.held.update(part.held)
                survey.nearby.update(part.nearby)
                survey.unread.update(part.unread)
        return survey

    def prepare(self, selected: Sequence[Tenant]) -> list[TenantStack]:
        """Allocate every tenant's service subnet (preview and up), then build each selected
        tenant's config. Raises InvalidTenantsFile before any stack is touched."""
        cidrs: Mapping[str, str] = {}
        if self.options.operation == "destroy":
            self.ledger.read()  # a damaged ledger (LedgerError) stops it before any destroy
        if self.options.operation == "rebuild":
            # Existing stacks only: each keeps the block it was given; none is handed out.
            cidrs = given_cidrs(self.ledger.read(), self.file.tenants)
        if self.options.operation in ("preview", "up"):
            requests = [r for r in map(subnet_request, self.file.tenants) if r is not None]
            self.ledger.read()  # a damaged ledger stops it before the cloud is even read
            survey = self._survey(requests)
            try:
                cidrs = reserve(
                    self.ledger, requests, self._read_remembered, survey.held, survey.nearby
                ).cidrs
            except AllocationError as exc:
                raise InvalidTenantsFile(self.file.path, exc.problems) from None
        tenant_stacks = []
        problems: list[Problem] = []
        for tenant in selected:
            cidr = cidrs.get(tenant.name)
            problems.extend(final_config_problems(tenant, cidr))
            tenant_stacks.append(
                TenantStack(
                    tenant=tenant,
                    work_dir=self.work_dir(tenant.name),
                    config=tenant_config(tenant, cidr),
                    service_subnet_cidr=cidr,
                )
            )
        if problems:
            raise InvalidTenantsFile(self.file.path, problems)
        return tenant_stacks

    # -- running -----------------------------------------------------------------------------

    def run(self, tenant_stacks: Sequence[TenantStack]) -> list[TenantResult]:
        load_lazy_modules()
        results = self._run_all(tenant_stacks)
        if self.options.operation == "up":
            results = self._retry_taken_blocks(tenant_stacks, results)
        if self.options.operation == "destroy":
            self._release(results)
        return results

    def _retry_taken_blocks(
        self, tenant_stacks: Sequence[TenantStack], results: Sequence[TenantResult]
    ) -> list[TenantResult]:
        """The cloud is the final arbiter of a block. Another fleet (another machine, another
        ledger) may make a subnet on a block this run gave between the read of the network and
        the tenant's ``up``: discovery then refuses the pinned block ("already held by
        subnet"), or Neutron the subnet itself (it overlaps). The network is read again, and a
        tenant whose block another subnet now holds, and that has no subnet of its own, gets
        the next free block and runs again; a few rounds at most. A tenant with a subnet
        never moves (allocation.py)."""
        current = {ts.stack_name: ts for ts in tenant_stacks}
        final = {r.tenant: r for r in results}
        for _ in range(BLOCK_RETRIES):
            failed = [
                current[r.tenant]
                for r in final.values()
                if r.status is Status.FAILED and current[r.tenant].service_subnet_cidr
            ]
            if not failed:
                break
            try:
                fresh = {ts.stack_name: ts for ts in self.prepare([ts.tenant for ts in failed])}
            except (InvalidTenantsFile, FleetSetupError, LedgerError):
                break  # no other block can be given now; each failure stands as it is
            moved = [
                fresh[ts.stack_name]
                for ts in failed
                if fresh[ts.stack_name].service_subnet_cidr != ts.service_subnet_cidr
            ]
            if not moved:
                break
            for tenant_stack, result in zip(moved, self._run_all(moved), strict=True):
                taken = current[tenant_stack.stack_name].service_subnet_cidr
                note = (
                    f"{taken} was taken meanwhile by another subnet on the service network; "
                    f"given {tenant_stack.service_subnet_cidr}"
                )
                message = f"{note}; {result.message}" if result.message else note
                final[tenant_stack.stack_name] = replace(result, message=message)
                current[tenant_stack.stack_name] = tenant_stack
        return [final[ts.stack_name] for ts in tenant_stacks]

    def _run_all(self, tenant_stacks: Sequence[TenantStack]) -> list[TenantResult]:
        progress = Progress(
            [p.stack_name for p in tenant_stacks],
            self.options.label,
            self.progress_stream,
            live=self.live,
        )
        pool = ThreadPoolExecutor(max_workers=self.options.parallel, thread_name_prefix="tenant")
        try:
            futures = [
                pool.submit(self._run_tenant, tenant_stack, progress)
                for tenant_stack in tenant_stacks
            ]
            results = [future.result() for future in futures]
        except KeyboardInterrupt:
            # Ctrl-C: tenants not started yet never start; the running ones end their CLI
            # call (the CLI got the same signal and stops the operation cleanly).
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        finally:
            pool.shutdown(wait=True)
            progress.close()
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

    def _run_tenant(self, tenant_stack: TenantStack, progress: Progress) -> TenantResult:
        name = tenant_stack.stack_name
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
            if self.options.label in WRITES_CONFIG_OR_STATE:
                with exclusive(self._lock_path(name), wait=False):
                    result = self._operate(tenant_stack, log, on_event)
            else:
                result = self._operate(tenant_stack, log, on_event)
        except Busy as busy:
            message = (
                f"another fleet run on this machine is running this tenant ({busy.holder}); "
                "run again when it has ended"
            )
            log.write(f"# {Status.LOCKED.value}: {message}")
            result = TenantResult(
                tenant=name,
                operation=operation,
                status=Status.LOCKED,
                message=message,
                service_subnet_cidr=tenant_stack.service_subnet_cidr,
            )
        except Exception as exc:
            status, message = classify(exc)
            if status is Status.ABSENT and self.options.label in CHECKS:
                # A check never passes what it could not look at.
                status = Status.DRIFT
                message = "the tenants file declares it, but its stack does not exist: run up"
            log.write(f"# {status.value}: {message}")
            result = TenantResult(
                tenant=name,
                operation=operation,
                status=status,
                message=message,
                service_subnet_cidr=tenant_stack.service_subnet_cidr,
            )
        finally:
            log.close()
        result = replace(result, duration=time.monotonic() - started, log_path=log.path)
        progress.done(result)
        return result

    def _stack(self, tenant_stack: TenantStack, *, create: bool) -> Stack:
        opts = self.workspace_options(tenant_stack.stack_name)
        if create:
            return create_or_select_stack(
                tenant_stack.stack_name, project_name=PROJECT, program=self.program, opts=opts
            )
        return select_stack(
            tenant_stack.stack_name, project_name=PROJECT, program=self.program, opts=opts
        )

    def _operate(
        self, tenant_stack: TenantStack, log: _TenantLog, on_event: Callable[[EngineEvent], None]
    ) -> TenantResult:
        op = self.options.operation
        streams = {
            "on_output": log.write,
            "on_error": log.error,
            "on_event": on_event,
            "color": "never",
            "suppress_progress": True,
        }
        ok = TenantResult(
            tenant=tenant_stack.stack_name, operation=self.options.label, status=Status.OK
        )
        if op == "rebuild":
            stack = self._stack(tenant_stack, create=False)
            return operations.rebuild(stack, tenant_stack, ok, streams)
        if op == "verify":
            stack = self._stack(tenant_stack, create=False)
            return operations.verify(stack, tenant_stack.tenant, ok, self.shell)
        if op in ("preview", "up"):
            stack = self._stack(tenant_stack, create=True)
            operations.set_config(stack, tenant_stack)
            run = operations.preview if op == "preview" else operations.up
            return run(stack, tenant_stack, ok, streams)
        stack = self._stack(tenant_stack, create=False)
        if op == "refresh" and self.options.preview_only:
            return operations.drift(stack, ok, streams)
        if op == "refresh":
            return operations.refresh(stack, ok, streams)
        if op == "destroy":
            return operations.destroy(
                stack, ok, streams, include_protected=self.options.include_protected
            )
        return operations.status(stack, ok)
