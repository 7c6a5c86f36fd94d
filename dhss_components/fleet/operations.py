"""One tenant's operation on its stack, through the Automation API, as a TenantResult.

Each function returns what the operator should see for the tenant; errors are left to the
caller, which turns them into that tenant's result (a failure, or a lock held elsewhere).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from pulumi.automation import LocalWorkspace, Stack
from pulumi.automation.errors import StackNotFoundError

from ..naming import service_subnet_name
from .plan import TenantPlan, stale_keys
from .results import Status, TenantResult, changed_count, export_paths, op_counts
from .tenants import Tenant

VOLUME_TYPE = "openstack:blockstorage/volume:Volume"
SUBNET_TYPE = "openstack:networking/subnet:Subnet"

Streams = Mapping[str, Any]
"""on_output, on_error, on_event, color, suppress_progress: passed to every operation."""


def set_config(stack: Stack, plan: TenantPlan) -> None:
    """The tenant's config, and nothing left over from an older tenants file."""
    # The keys are in the workspace's Pulumi.<stack>.yaml: no CLI call needed to see them.
    try:
        current = stack.workspace.stack_settings(stack.name).config or {}
    except FileNotFoundError:
        current = {}
    stale = stale_keys(current, plan.config)
    if stale:
        stack.remove_all_config(stale)
    stack.set_all_config(dict(plan.config))


def outputs_cidr(outputs: Mapping[str, Any]) -> str | None:
    server = outputs.get("share_server")
    cidr = server.get("service_subnet_cidr") if isinstance(server, dict) else None
    return str(cidr) if cidr else None


def preview(stack: Stack, plan: TenantPlan, ok: TenantResult, streams: Streams) -> TenantResult:
    result = stack.preview(**streams)
    return replace(
        ok, changes=op_counts(result.change_summary), service_subnet_cidr=plan.service_subnet_cidr
    )


def up(stack: Stack, plan: TenantPlan, ok: TenantResult, streams: Streams) -> TenantResult:
    result = stack.up(**streams)
    outputs = {k: v.value for k, v in result.outputs.items()}
    return replace(
        ok,
        changes=op_counts(result.summary.resource_changes),
        exports=export_paths(outputs.get("shares")),
        service_subnet_cidr=outputs_cidr(outputs) or plan.service_subnet_cidr,
    )


def drift(stack: Stack, ok: TenantResult, streams: Streams) -> TenantResult:
    """refresh --preview-only: compare the stack with the cloud, change nothing."""
    changes = op_counts(stack.preview_refresh(**streams).change_summary)
    if changed_count(changes):
        message = "the cloud differs from the stack's state"
        return replace(ok, status=Status.DRIFT, changes=changes, message=message)
    return replace(ok, changes=changes)


def refresh(stack: Stack, ok: TenantResult, streams: Streams) -> TenantResult:
    result = stack.refresh(**streams)
    return replace(ok, changes=op_counts(result.summary.resource_changes))


def destroy(
    stack: Stack, ok: TenantResult, streams: Streams, *, include_protected: bool
) -> TenantResult:
    """Everything but the protected resources (the shares' volumes), unless asked."""
    workspace = stack.workspace
    assert isinstance(workspace, LocalWorkspace)
    if include_protected:
        workspace.cli_api.state_unprotect(
            all=True,
            stack=stack.name,
            cwd=workspace.work_dir,
            additional_env=dict(workspace.env_vars),
        )
    result = stack.destroy(exclude_protected=not include_protected, **streams)
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
        ok, changes=op_counts(result.summary.resource_changes), message=message, kept=kept
    )


def status(stack: Stack, ok: TenantResult) -> TenantResult:
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
        service_subnet_cidr=outputs_cidr(outputs),
        message=message,
    )


def state_cidr(workspace: LocalWorkspace, tenant: Tenant) -> str | None:
    """The service subnet an existing stack already has, from its state: the subnet is there
    as soon as it was made, even when the rest of that update failed (the stack's outputs
    would not have been written). It is found by Manila's name for it."""
    name = service_subnet_name(tenant.spec.share_network.neutron_subnet_id)
    try:
        deployment = workspace.export_stack(tenant.name).deployment or {}
    except StackNotFoundError:
        return None
    for resource in deployment.get("resources") or []:
        inputs = resource.get("inputs") or {}
        if resource.get("type") == SUBNET_TYPE and inputs.get("name") == name:
            return str(inputs["cidr"]) if inputs.get("cidr") else None
    return None
