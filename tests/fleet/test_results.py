"""Telling a failure from a lock, what the operator reads, and the exit status."""

from __future__ import annotations

import io
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, cast

import pytest
from pulumi.automation import PulumiCommand
from pulumi.automation._cmd import CommandResult
from pulumi.automation.errors import create_command_error

from dhss_components.fleet.cli import absolute_file_url
from dhss_components.fleet.options import FleetOptions
from dhss_components.fleet.report import Progress, summary_table
from dhss_components.fleet.results import (
    EXIT_DRIFT,
    EXIT_FAILED,
    EXIT_OK,
    Status,
    TenantResult,
    classify,
    exit_status,
    export_paths,
    format_changes,
)
from dhss_components.fleet.runner import Fleet
from dhss_components.fleet.stack_config import TenantStack
from dhss_components.fleet.tenants import parse_tenants
from tests.fleet.fleet_env import tenants_document
from tests.stack_run import write_key_pair

DIY_LOCKED = (
    "error: the stack is currently locked by 1 lock(s). Either wait for the other process(es) "
    "to end or delete the lock file with `pulumi cancel`.\n"
    "  file:///srv/state/.pulumi/locks/manila-dhss/tenant-a/5d1c.json: created by "
    "ops@bastion (pid 4242) at 2026-05-01T10:00:00Z"
)


def cli_error(stdout: str, stderr: str) -> Exception:
    """The exception the SDK raises for a CLI that exited with this output."""
    return create_command_error(CommandResult(stdout=stdout, stderr=stderr, code=255))


def test_a_lock_is_told_apart_from_a_failure() -> None:
    assert classify(cli_error("", DIY_LOCKED)) == (Status.LOCKED, "held by ops@bastion (pid 4242)")
    cloud = cli_error("", "error: [409] Conflict: Another update is currently in progress.")
    assert classify(cloud) == (Status.LOCKED, "another update is in progress")


def test_a_failure_is_summed_up_by_the_clis_own_error_line() -> None:
    program = cli_error(
        "Updating (tenant-a):\nDiagnostics:\n  pulumi:pulumi:Stack (manila-dhss-tenant-a):\n"
        "    error: the stack config has 1 problem; nothing was declared:\n"
        "      - dhss:shares[0].size: 'ten': Input should be a valid integer\n",
        "error: update failed",
    )
    assert classify(program) == (
        Status.FAILED,
        "the stack config has 1 problem; nothing was declared:",
    )
    assert classify(cli_error("", "error: no stack named 'tenant-a' found"))[0] is Status.ABSENT
    nested = cli_error(
        "Updating (tenant-a):\n"
        "    error: 1 error occurred:\n"
        "    \t* creating urn:pulumi:tenant-a::manila-dhss::manila-dhss:index:ShareServer$"
        "manila-dhss:index:ServiceInstance$openstack:compute/instance:Instance::"
        "share-server-instance-server: 1 error occurred:\n"
        "    \t* Error creating OpenStack server: Quota exceeded for instances\n"
        "\n",
        "error: update failed",
    )
    assert classify(nested) == (
        Status.FAILED,
        "share-server-instance-server: Error creating OpenStack server: Quota exceeded for "
        "instances",
    )
    assert classify(ValueError("bad")) == (Status.FAILED, "ValueError: bad")


@pytest.mark.parametrize(
    ("statuses", "code"),
    [
        ([Status.OK, Status.OK], EXIT_OK),
        ([Status.OK, Status.ABSENT], EXIT_OK),
        ([Status.OK, Status.LOCKED], EXIT_FAILED),
        ([Status.DRIFT, Status.OK], EXIT_DRIFT),
        ([Status.DRIFT, Status.FAILED], EXIT_FAILED),
    ],
)
def test_exit_status(statuses: list[Status], code: int) -> None:
    results = [TenantResult(f"t{i}", "up", status) for i, status in enumerate(statuses)]
    assert exit_status(results) == code


def test_changes_and_exports_read_like_pulumis() -> None:
    assert format_changes({"create": 3, "update": 1, "same": 7, "delete": 2}) == "+3 ~1 -2"
    assert format_changes({"same": 7}) == "none"
    assert format_changes({}) == "-"
    shares = {
        "projects": {
            "export_locations": [
                {"path": "10.254.0.3:/shares/projects", "preferred": True},
                {"path": "10.2.5.9:/shares/projects", "preferred": False},
            ]
        },
        "home": {"export_locations": [{"path": "10.254.0.3:/shares/home", "preferred": True}]},
    }
    assert export_paths(shares) == ("10.254.0.3:/shares/home", "10.254.0.3:/shares/projects")


def test_the_summary_table_lines_up_and_says_why(tmp_path: Path) -> None:
    results = [
        TenantResult("tenant-a", "up", Status.OK, 61.2, {"create": 20}, ("10.254.0.3:/sh/p",),
                     service_subnet_cidr="10.254.0.0/28"),
        TenantResult("tenant-bb", "up", Status.FAILED, 3, message="Quota exceeded",
                     log_path=tmp_path / "tenant-bb.log"),
        TenantResult("tenant-c", "up", Status.LOCKED, 0.4, message="held by ops@bastion"),
    ]  # fmt: skip

    table = summary_table(results).splitlines()

    assert table[0].split() == [
        "TENANT", "OPERATION", "RESULT", "CHANGES", "DURATION", "SERVICE", "SUBNET", "EXPORT",
        "LOCATIONS",
    ]  # fmt: skip
    assert table[2].split() == [
        "tenant-a", "up", "ok", "+20", "1m01s", "10.254.0.0/28", "10.254.0.3:/sh/p",
    ]  # fmt: skip
    starts = {line.index("up") for line in table[2:5]}
    assert len(starts) == 1  # columns line up
    assert "locked by another run" in table[4]
    assert f"  tenant-bb: Quota exceeded (log: {tmp_path / 'tenant-bb.log'})" in table
    assert "  tenant-c: held by ops@bastion" in table


def test_progress_on_a_terminal_redraws_one_line_per_tenant() -> None:
    stream = io.StringIO()
    now = [100.0]
    progress = Progress(["tenant-a", "tenant-b"], "up", stream, live=True, clock=lambda: now[0])

    progress.start("tenant-a")
    now[0] += 5
    progress.step("tenant-a", "create Subnet share-server-network-subnet")
    progress.done(TenantResult("tenant-a", "up", Status.OK, 5, {"create": 20}))

    frames = stream.getvalue().split("\x1b[2F")
    assert len(frames) == 3  # drawn, then redrawn twice in place (cursor up two lines)
    last = frames[-1].split("\n")
    assert last[0].endswith("ok tenant-a  up  ok  +20  (5s)")
    assert last[1].endswith("tenant-b  up  waiting")


def test_progress_in_a_log_prints_each_start_and_end_once() -> None:
    stream = io.StringIO()
    progress = Progress(["tenant-a"], "destroy", stream, live=False)

    progress.start("tenant-a")
    progress.step("tenant-a", "delete Volume x")
    progress.done(TenantResult("tenant-a", "destroy", Status.FAILED, 2, message="boom"))

    assert stream.getvalue().splitlines() == [
        "tenant-a: destroy started",
        "!! tenant-a  destroy  failed  boom  (2s)",
    ]


class _ScriptedFleet(Fleet):
    """A fleet whose per-tenant operation is scripted: no CLI, just the runner around it."""

    def __init__(self, *args: Any, outcomes: dict[str, Exception], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.outcomes = outcomes
        self.running = 0
        self.most = 0
        self.lock = threading.Lock()

    def _operate(self, plan: TenantStack, log: Any, on_event: Any) -> TenantResult:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            time.sleep(0.05)
            log.write(f"working on {plan.stack_name}")
            if plan.stack_name in self.outcomes:
                raise self.outcomes[plan.stack_name]
            return TenantResult(plan.stack_name, "up", Status.OK, changes={"create": 1})
        finally:
            with self.lock:
                self.running -= 1


def test_one_tenants_failure_never_stops_the_others(tmp_path: Path) -> None:
    tenants_file = parse_tenants(tenants_document(write_key_pair(tmp_path), range(1, 9)))
    options = FleetOptions(
        operation="up", work_root=tmp_path / "work", log_dir=tmp_path / "logs", parallel=3
    )
    fleet = _ScriptedFleet(
        tenants_file,
        options,
        cast(PulumiCommand, None),
        io.StringIO(),
        live=False,
        outcomes={
            "tenant-02": RuntimeError("the provider crashed"),
            "tenant-05": cli_error("", DIY_LOCKED),
        },
    )
    plans = [
        TenantStack(tenant=t, work_dir=tmp_path, config={}, service_subnet_cidr=None)
        for t in tenants_file.tenants
    ]

    results = fleet.run(plans)

    assert [r.tenant for r in results] == list(tenants_file.names)  # file order
    statuses = {r.tenant: r.status for r in results}
    assert statuses.pop("tenant-02") is Status.FAILED
    assert statuses.pop("tenant-05") is Status.LOCKED
    assert set(statuses.values()) == {Status.OK}
    assert fleet.most == 3  # bounded, and the bound was used
    assert exit_status(results) == EXIT_FAILED
    for result in results:
        assert result.log_path is not None
        assert f"working on {result.tenant}" in result.log_path.read_text()
    assert "RuntimeError: the provider crashed" in (tmp_path / "logs" / "tenant-02.log").read_text()


class _InterruptedFleet(_ScriptedFleet):
    def _operate(self, plan: TenantStack, log: Any, on_event: Any) -> TenantResult:
        if plan.stack_name == "tenant-02":
            os.kill(os.getpid(), signal.SIGINT)  # the operator presses Ctrl-C
            time.sleep(0.3)
        return super()._operate(plan, log, on_event)


def test_ctrl_c_starts_no_further_tenant(tmp_path: Path) -> None:
    tenants_file = parse_tenants(tenants_document(write_key_pair(tmp_path), range(1, 6)))
    options = FleetOptions(
        operation="up", work_root=tmp_path / "work", log_dir=tmp_path / "logs", parallel=1
    )
    fleet = _InterruptedFleet(
        tenants_file, options, cast(PulumiCommand, None), io.StringIO(), live=False, outcomes={}
    )
    plans = [
        TenantStack(tenant=t, work_dir=tmp_path, config={}, service_subnet_cidr=None)
        for t in tenants_file.tenants
    ]

    with pytest.raises(KeyboardInterrupt):
        fleet.run(plans)

    started = sorted(p.stem for p in (tmp_path / "logs").glob("*.log"))
    assert started == ["tenant-01", "tenant-02"]


def test_a_relative_file_backend_is_where_the_operator_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    # Each tenant's CLI runs in its own workspace: "file://state" must not mean one per tenant.
    assert absolute_file_url("file://state") == f"file://{tmp_path}/state"
    for url in ("file://~/.pulumi-manila-dhss", "file:///srv/state", "s3://bucket/prefix"):
        assert absolute_file_url(url) == url
