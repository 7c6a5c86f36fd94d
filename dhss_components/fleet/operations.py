"""One tenant's operation on its stack, through the Automation API, as a TenantResult.

Each function returns what the operator should see for the tenant; errors are left to the
caller, which turns them into that tenant's result (a failure, or a lock held elsewhere).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from pulumi.automation import LocalWorkspace, Stack
from pulumi.automation.errors import CommandError, StackNotFoundError

from ..naming import service_subnet_name
from .results import (
    Status,
    TenantResult,
    changed_count,
    error_summary,
    export_paths,
    op_counts,
)
from .stack_config import TenantStack, stale_keys
from .tenants import Tenant
from .verify import (
    EXIT_DRIFT,
    EXIT_OK,
    ShareState,
    ShellFactory,
    exit_status,
    run_stack_check,
    unverified_note,
)
from .verify import stack_check as guest_check

VOLUME_TYPE = "openstack:blockstorage/volume:Volume"
SUBNET_TYPE = "openstack:networking/subnet:Subnet"
INSTANCE_TYPE = "openstack:compute/instance:Instance"
REMOTE_COMMAND_TYPE = "command:remote:Command"

Streams = Mapping[str, Any]
"""on_output, on_error, on_event, color, suppress_progress: passed to every operation."""


def set_config(stack: Stack, tenant_stack: TenantStack) -> None:
    """The tenant's config, and nothing left over from an older tenants file."""
    # The keys are in the workspace's Pulumi.<stack>.yaml: no CLI call needed to see them.
    try:
        current = stack.workspace.stack_settings(stack.name).config or {}
    except FileNotFoundError:
        current = {}
    stale = stale_keys(current, tenant_stack.config)
    if stale:
        stack.remove_all_config(stale)
    stack.set_all_config(dict(tenant_stack.config))


def outputs_cidr(outputs: Mapping[str, Any]) -> str | None:
    server = outputs.get("share_server")
    cidr = server.get("service_subnet_cidr") if isinstance(server, dict) else None
    return str(cidr) if cidr else None


def preview(
    stack: Stack, tenant_stack: TenantStack, ok: TenantResult, streams: Streams
) -> TenantResult:
    result = stack.preview(**streams)
    return replace(
        ok,
        changes=op_counts(result.change_summary),
        service_subnet_cidr=tenant_stack.service_subnet_cidr,
    )


def up(stack: Stack, tenant_stack: TenantStack, ok: TenantResult, streams: Streams) -> TenantResult:
    return _up(stack, tenant_stack, ok, streams)[0]


def _up(
    stack: Stack, tenant_stack: TenantStack, ok: TenantResult, streams: Streams
) -> tuple[TenantResult, dict[str, Any]]:
    result = stack.up(**streams)
    outputs = {k: v.value for k, v in result.outputs.items()}
    done = replace(
        ok,
        changes=op_counts(result.summary.resource_changes),
        exports=export_paths(outputs.get("shares")),
        service_subnet_cidr=outputs_cidr(outputs) or tenant_stack.service_subnet_cidr,
    )
    return done, outputs


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


def _resources(stack: Stack) -> list[dict[str, Any]]:
    resources: list[dict[str, Any]] = (stack.export_stack().deployment or {}).get("resources") or []
    return resources


def _of_type(resources: list[dict[str, Any]], typ: str) -> list[dict[str, Any]]:
    return [r for r in resources if r.get("type") == typ]


def _name(resource: Mapping[str, Any]) -> str:
    return str(resource.get("urn", "")).split("::")[-1]


def rebuild(
    stack: Stack, tenant_stack: TenantStack, ok: TenantResult, streams: Streams
) -> TenantResult:
    """A new service instance in place of a lost one, with every share back on it.

    ``pulumi refresh`` first: the server that Nova no longer has leaves the state, and so do
    the attachments Nova detached with it. Then ``pulumi up``: a new server on the same ports
    (the same addresses, so the same export locations) with the same SSH host key, the
    volumes attached again, and each share's command replaced: the old delete reaches the new
    server, which has nothing to undo, and the new create mounts the filesystem it finds and
    exports it. Nothing is formatted (share.sh makes a filesystem only on a blank device).

    Refused before the ``up`` while Nova still has the server (the operator deletes a broken
    one first), and when a share's volume is gone too (``up`` would make a new, empty one:
    the operator's call, not a rebuild's).
    """
    set_config(stack, tenant_stack)
    before = _resources(stack)
    if not before:
        return replace(ok, status=Status.ABSENT, message="nothing was built yet: run up")
    stack.refresh(**streams)
    after = _resources(stack)
    servers = _of_type(after, INSTANCE_TYPE)
    if servers:
        server_id = servers[0].get("id", "?")
        return replace(
            ok,
            status=Status.REFUSED,
            message=(
                f"server {server_id} still exists in Nova; rebuild replaces a server that is "
                "gone. If it is broken, delete it (its volumes and their data stay): openstack "
                f"server delete {server_id}; then run rebuild again"
            ),
        )
    kept = {r.get("urn") for r in _of_type(after, VOLUME_TYPE)}
    lost = [_name(r) for r in _of_type(before, VOLUME_TYPE) if r.get("urn") not in kept]
    if lost:
        return replace(
            ok,
            status=Status.REFUSED,
            message=(
                f"{', '.join(lost)}: gone from Cinder too, so up would make new, empty volumes "
                "in their place; restore them first (openstack volume list), or run up if "
                "empty shares are what you want"
            ),
        )
    result, outputs = _up(stack, tenant_stack, ok, streams)
    share_server = outputs.get("share_server")
    new = share_server.get("instance_id") if isinstance(share_server, dict) else None
    old = [str(s.get("id")) for s in _of_type(before, INSTANCE_TYPE)]
    instead = f" in place of {', '.join(old)}" if old else ""
    return replace(result, message=f"new server {new}{instead}, on the same ports")


def _forget_commands_of_a_lost_server(stack: Stack, streams: Streams) -> int:
    """Before a destroy: when the server is gone, its share commands leave the state unrun.

    Each command's delete would dial the server's address, where nothing answers any more, for
    its whole dial bound, and then fail the destroy (pulumi/pulumi-command#104). The guest's
    mounts and exports went with the server, so there is nothing left for them to undo. Only the
    server is read from the cloud (``refresh --target``). Returns how many were removed.
    """
    resources = _resources(stack)
    commands = _of_type(resources, REMOTE_COMMAND_TYPE)
    if not commands:
        return 0
    servers = _of_type(resources, INSTANCE_TYPE)
    if servers:
        stack.refresh(target=[str(s["urn"]) for s in servers], **streams)
        if _of_type(_resources(stack), INSTANCE_TYPE):
            return 0
    workspace = stack.workspace
    assert isinstance(workspace, LocalWorkspace)
    workspace.cli_api.state_remove(
        *[str(c["urn"]) for c in commands],
        stack=stack.name,
        cwd=workspace.work_dir,
        additional_env=dict(workspace.env_vars),
        on_output=streams.get("on_output"),
        on_error=streams.get("on_error"),
    )
    return len(commands)


def destroy(
    stack: Stack, ok: TenantResult, streams: Streams, *, include_protected: bool
) -> TenantResult:
    """Everything but the protected resources (the shares' volumes), unless asked."""
    workspace = stack.workspace
    assert isinstance(workspace, LocalWorkspace)
    forgotten = _forget_commands_of_a_lost_server(stack, streams)
    if include_protected:
        workspace.cli_api.state_unprotect(
            all=True,
            stack=stack.name,
            cwd=workspace.work_dir,
            additional_env=dict(workspace.env_vars),
        )
    try:
        result = stack.destroy(exclude_protected=not include_protected, **streams)
    except CommandError as exc:
        servers = _of_type(_resources(stack), INSTANCE_TYPE)
        if not servers or "dial tcp" not in str(exc):
            raise
        # Nova has the server, but nothing answers at its address: each share command's
        # delete redialled it for its whole bound (max_time_to_build_instance) first.
        server_id = servers[0].get("id", "?")
        return replace(
            ok,
            status=Status.FAILED,
            message=(
                f"{error_summary(exc)}; server {server_id} does not answer. If it is lost, "
                f"delete it (its volumes and their data stay): openstack server delete "
                f"{server_id}; then run destroy again: its share commands then leave the state "
                "without dialling it"
            ),
        )
    resources = _resources(stack)
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
    if forgotten:
        lost = (
            f"the server was gone: its {forgotten} share command{'s' if forgotten != 1 else ''} "
            "left the state without dialling it (the guest's mounts and exports went with it)"
        )
        message = f"{lost}; {message}" if message else lost
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


def verify(stack: Stack, tenant: Tenant, ok: TenantResult, shell: ShellFactory) -> TenantResult:
    """share.sh check for each share, on the tenant's service instance; reads, writes nothing."""
    outputs = {k: v.value for k, v in stack.outputs().items()}
    if not outputs:
        # Declared in the tenants file, built nowhere: not "as declared".
        return replace(ok, status=Status.DRIFT, message="nothing built yet: run up")
    check = guest_check(tenant.spec, outputs)
    reports = tuple(run_stack_check(check, shell))
    code = exit_status(reports)
    counts = {state: sum(r.state is state for r in reports) for state in ShareState}
    total = f"{len(reports)} share{'s' if len(reports) != 1 else ''}"
    if code == EXIT_OK:
        status, message = Status.OK, f"{total} as declared"
    elif code == EXIT_DRIFT:
        status, message = Status.DRIFT, f"{counts[ShareState.DRIFT]} of {total} drifted"
    else:
        unknown = counts[ShareState.UNKNOWN]
        status, message = Status.FAILED, f"{unknown} of {total} could not be checked"
    if unverified_note(check):
        message = f"{message}; {unverified_note(check)}"
    return replace(
        ok,
        status=status,
        message=message,
        findings=reports,
        exports=export_paths(outputs.get("shares")),
        service_subnet_cidr=outputs_cidr(outputs),
    )
