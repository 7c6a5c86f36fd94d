"""The fleet through the real ``pulumi.automation`` code, against the stand-in CLI.

The stand-in is a real executable (``<root>/bin/pulumi``) that the SDK runs as it runs the
CLI; for ``preview`` and ``up`` it runs each tenant's inline program for real through the
SDK's LanguageRuntime, against the simulated cloud. So these tests see what an operator's CLI
would receive (commands, flags, config, environment) and what each tenant's program declared.
"""

from __future__ import annotations

import io
import json
import os
import re
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from pulumi.automation import PulumiCommand

from dhss_components.fleet.options import SERVICE_NETWORK_STACK_PREFIX, FleetOptions
from dhss_components.fleet.results import (
    EXIT_DRIFT,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    Status,
    TenantResult,
)
from dhss_components.fleet.runner import Fleet
from dhss_components.fleet.stack_config import TenantStack, tenant_config
from dhss_components.fleet.tenants import load_tenants_file
from tests.clouds import DEVSTACK_SERVICE_NET
from tests.fleet.fleet_env import (
    PASSPHRASE,
    Bed,
    FleetRun,
    config_sent,
    neutron_subnets,
    pairwise_disjoint,
    programs,
    reads_a_service_network,
    registered,
    run_fleet,
    tenant_network,
    write_yaml,
)
from tests.fleet.standin.install import install, write_settings

SUBNET = "openstack:networking/subnet:Subnet"
ROUTER_INTERFACE = "openstack:networking/routerInterface:RouterInterface"
INSTANCE = "openstack:compute/instance:Instance"
VOLUME = "openstack:blockstorage/volume:Volume"
COMMAND = "command:remote:Command"
RULE = "openstack:networking/secGroupRule:SecGroupRule"


def two_tenants(bed: Bed, **settings: object) -> Path:
    """tenant-01 with one share, tenant-02 with two."""
    path = bed.tenants([1, 2], **settings)
    document = yaml.safe_load(path.read_text())
    document["tenants"]["tenant-02"]["shares"].append(
        {"name": "scratch", "size": 5, "share_proto": "NFS"}
    )
    return write_yaml(path, document)


def test_up_sends_each_tenant_its_own_config_and_runs_its_program(bed: Bed) -> None:
    run = bed.fleet("up", str(two_tenants(bed)), "--parallel", "2")
    assert run.code == EXIT_OK, run.stdout + run.stderr

    given = bed.ledger()
    assert set(given) == {"tenant-01", "tenant-02"}
    assert pairwise_disjoint(given.values())
    for tenant, index in (("tenant-01", 1), ("tenant-02", 2)):
        mine = [c for c in bed.calls() if c.stack == tenant]
        # What the Automation API sends for create_or_select + set_all_config + up.
        assert [c.command for c in mine] == [
            ["stack", "select"],
            ["stack", "init"],
            ["config", "set-all"],
            ["up"],
            ["stack", "output"],
            ["stack", "output"],
            ["stack", "history"],
        ]
        for call in mine:
            assert call.argv[0] == "--non-interactive"
            assert call.cwd == str(bed.work / "stacks" / tenant)
            assert call.env["PULUMI_AUTOMATION_API"] == "true"
            assert call.env["PULUMI_CONFIG_PASSPHRASE"] == PASSPHRASE
        init, set_all, up = mine[1], mine[2], mine[3]
        assert init.argv[-2:] == ["--secrets-provider", "passphrase"]
        config = config_sent(set_all)
        # No password in this backend: nothing is secret, and only the fleet's keys are set.
        assert config.keys() == {"dhss:backend", "dhss:shareNetwork", "dhss:shares"}
        assert not any(secret for _, secret in config.values())
        assert json.loads(config["dhss:shareNetwork"][0]) == {
            "neutron_net_id": tenant_network(index)["net"],
            "neutron_subnet_id": tenant_network(index)["subnet"],
            "service_subnet_cidr": given[tenant],
        }
        assert {"--yes", "--skip-preview"} <= set(up.argv)
        assert up.argv[up.argv.index("--exec-kind") + 1] == "auto.inline"
        assert any(a.startswith("--client=127.0.0.1:") for a in up.argv)
        assert up.argv[up.argv.index("--event-log") + 1].startswith("tcp://127.0.0.1:")

        # The workspace carries the backend, and the stack its own config file.
        project = yaml.safe_load((bed.work / "stacks" / tenant / "Pulumi.yaml").read_text())
        assert project["name"] == "manila-dhss"
        assert project["backend"]["url"] == f"file://{bed.state}"
        assert (bed.state / ".pulumi" / "stacks" / "manila-dhss" / f"{tenant}.json").exists()

        # The tenant's program really ran, with its config: its subnet, server and shares.
        (program,) = programs(bed.cli, tenant, "up")
        assert not program["dry_run"]
        (subnet,) = registered(program, SUBNET)
        assert subnet["inputs"]["cidr"] == given[tenant]
        assert subnet["inputs"]["networkId"] == DEVSTACK_SERVICE_NET
        (interface,) = registered(program, ROUTER_INTERFACE)
        assert interface["inputs"]["routerId"] == tenant_network(index)["router"]
        assert len(registered(program, INSTANCE)) == 1
        sizes = sorted(v["inputs"]["size"] for v in registered(program, VOLUME))
        assert sizes == ([2] if tenant == "tenant-01" else [3, 5])
        assert len(registered(program, COMMAND)) == len(sizes)

    # The table shows each tenant's export locations, as the stack outputs give them.
    row = run.rows()["tenant-02"]
    assert row[:3] == ["tenant-02", "up", "ok"]
    assert given["tenant-02"] in row
    assert row[-1].count(":/shares/") == 2


def test_a_second_up_changes_nothing_and_keeps_every_cidr(bed: Bed) -> None:
    tenants = str(two_tenants(bed))
    assert bed.fleet("up", tenants).code == EXIT_OK
    first = bed.ledger()

    again = bed.fleet("up", tenants)

    assert again.code == EXIT_OK
    assert bed.ledger() == first
    for tenant in ("tenant-01", "tenant-02"):
        assert again.rows()[tenant][3] == "none"  # the CHANGES column
        # Known tenants need no allocation: the ledger is read, no stack is asked.
        assert not [c for c in bed.calls() if c.command == ["stack", "ls"]][1:]


def test_a_stack_the_ledger_does_not_know_keeps_its_subnet(bed: Bed) -> None:
    # tenant-02's stack was built first (by `pulumi up`, another machine, or before the
    # ledger was lost); tenant-01 sorts before it but must not take its block.
    assert bed.fleet("up", str(bed.tenants([2]))).code == EXIT_OK
    built = bed.ledger()["tenant-02"]
    (bed.work / "service-subnets.json").unlink()
    seen = len(bed.calls())

    run = bed.fleet("preview", str(bed.tenants([1, 2])))

    assert run.code == EXIT_OK, run.stdout
    assert bed.ledger()["tenant-02"] == built
    assert pairwise_disjoint(bed.ledger().values())
    asked = [
        (c.command, c.stack)
        for c in bed.calls()[seen:]
        if c.command[0] == "stack" and not reads_a_service_network(c)
    ]
    # One listing, then only the existing stack's state is read.
    assert asked[:2] == [(["stack", "ls"], None), (["stack", "export"], "tenant-02")]


def test_a_stack_locked_by_another_run_is_reported_as_locked(bed: Bed) -> None:
    # tenant-01's operations wait (holding the stack's lock) until `release` exists. The
    # other run is on another machine (its own work root), sharing the state backend: only
    # Pulumi's stack lock stands between them.
    release = bed.tmp / "release"
    tenants = str(two_tenants(bed, hold={"tenant-01": str(release)}))
    lock = bed.state / ".pulumi" / "locks" / "manila-dhss" / "tenant-01" / "update.json"
    first: list[FleetRun] = []
    other_machine = replace(bed, work=bed.tmp / "work-of-the-other-machine")
    other_run = threading.Thread(
        target=lambda: first.append(other_machine.fleet("up", tenants, "--tenant", "tenant-01"))
    )
    other_run.start()
    deadline = time.monotonic() + 60
    while not lock.exists():
        assert time.monotonic() < deadline, "the first run never took the lock"
        time.sleep(0.05)

    second = bed.fleet("up", tenants)
    release.touch()
    other_run.join()

    assert second.code == EXIT_FAILED
    assert second.rows()["tenant-01"][2] == "locked by another run"
    assert re.search(r"tenant-01: held by \S+@\S+ \(pid \d+\)", second.stdout)
    assert second.rows()["tenant-02"][2] == "ok"
    assert "Traceback" not in second.stdout + second.stderr
    # The first run was not disturbed, and let go of its lock.
    assert first[0].code == EXIT_OK
    assert not lock.exists()


def test_two_fleets_on_one_machine_never_interleave_one_tenants_config_and_up(bed: Bed) -> None:
    # One work root, two processes' worth of runs: while the first is inside tenant-01's
    # `up` (its config set, Pulumi's lock held), the second previews every tenant from a
    # tenants file that changes tenant-01. A preview takes no Pulumi lock, so only the fleet's
    # own tenant lock keeps it from writing tenant-01's config under the running `up`.
    release = bed.tmp / "release"
    tenants = two_tenants(bed, hold={"tenant-01": str(release)})
    changed = yaml.safe_load(tenants.read_text())
    changed["tenants"]["tenant-01"]["shares"][0]["size"] = 99
    other_file = write_yaml(bed.tmp / "changed.yaml", changed)
    lock = bed.state / ".pulumi" / "locks" / "manila-dhss" / "tenant-01" / "update.json"
    first: list[FleetRun] = []
    running = threading.Thread(
        target=lambda: first.append(bed.fleet("up", str(tenants), "--tenant", "tenant-01"))
    )
    running.start()
    deadline = time.monotonic() + 60
    while not lock.exists():
        assert time.monotonic() < deadline, "the first run never took the lock"
        time.sleep(0.05)
    seen = len(bed.calls())

    second = bed.fleet("preview", str(other_file))
    during = bed.calls()[seen:]
    release.touch()
    running.join()

    assert second.code == EXIT_FAILED
    assert second.rows()["tenant-01"][2] == "locked by another run"
    assert re.search(r"tenant-01: another fleet run on this machine .*\(pid \d+\)", second.stdout)
    assert second.rows()["tenant-02"][2] == "ok"
    # Not one call for tenant-01 while the other run held it: its config is the first file's.
    assert [c.command for c in during if c.stack == "tenant-01"] == []
    assert first[0].code == EXIT_OK
    config = (bed.work / "stacks" / "tenant-01" / "Pulumi.tenant-01.yaml").read_text()
    assert '"size": 2' in config
    assert '"size": 99' not in config


def test_one_tenants_failure_is_its_own(bed: Bed) -> None:
    quota = "Quota exceeded for instances: Requested 1, but already used 10 of 10 instances"
    tenants = str(two_tenants(bed, fail={"tenant-01": {"ops": ["up"], "message": quota}}))

    run = bed.fleet("up", tenants)

    assert run.code == EXIT_FAILED
    assert run.rows()["tenant-01"][2] == "failed"
    assert run.rows()["tenant-02"][2] == "ok"
    assert f"tenant-01: share-server-instance-server: {quota}" in run.stdout
    log = next((bed.work / "logs").glob("*-up/tenant-01.log")).read_text()
    assert quota in log
    # Nothing of the failed update was committed; the other tenant's stack is whole.
    status = bed.fleet("status", tenants)
    assert status.rows()["tenant-01"][3] == "-"
    assert "last update failed" in status.stdout
    assert status.rows()["tenant-02"][-1].count(":/shares/") == 2


def test_secrets_are_set_as_secrets_and_never_shown(bed: Bed) -> None:
    tenants = two_tenants(bed)
    document = yaml.safe_load(tenants.read_text())
    document["backend"]["service_instance_password"] = {"env": "MANILA_SERVICE_PASSWORD"}
    write_yaml(tenants, document)
    os.environ["MANILA_SERVICE_PASSWORD"] = "s3cr3t-manila"  # monkeypatched env: see environ
    try:
        run = bed.fleet("up", str(tenants))
    finally:
        del os.environ["MANILA_SERVICE_PASSWORD"]

    assert run.code == EXIT_OK, run.stdout
    (set_all,) = [c for c in bed.calls() if c.command == ["config", "set-all"]][:1]
    backend, secret = config_sent(set_all)["dhss:backend"]
    assert secret
    assert json.loads(backend)["service_instance_password"] == "s3cr3t-manila"
    (program,) = programs(bed.cli, "tenant-01", "up")
    assert program["secret_keys"] == ["dhss:backend"]
    # Never in the stack's config file, the state, the logs or what the operator sees.
    for path in [*bed.work.rglob("*"), *bed.state.rglob("*")]:
        if path.is_file():
            assert "s3cr3t-manila" not in path.read_text(errors="replace"), path
    assert "s3cr3t-manila" not in run.stdout + run.stderr


def test_a_removed_cloud_override_stops_applying(bed: Bed) -> None:
    tenants = two_tenants(bed)
    document = yaml.safe_load(tenants.read_text())
    document["tenants"]["tenant-01"]["openstack:cloud"] = "other-region"
    write_yaml(tenants, document)
    assert bed.fleet("preview", str(tenants), "--tenant", "tenant-01").code == EXIT_OK
    (first,) = programs(bed.cli, "tenant-01", "preview")
    assert "openstack:cloud" in first["config_keys"]

    del document["tenants"]["tenant-01"]["openstack:cloud"]
    write_yaml(tenants, document)
    assert bed.fleet("preview", str(tenants), "--tenant", "tenant-01").code == EXIT_OK

    removed = [c for c in bed.calls() if c.command == ["config", "rm-all"]]
    assert [c.argv[-1] for c in removed] == ["openstack:cloud"]
    second = programs(bed.cli, "tenant-01", "preview")[-1]
    assert "openstack:cloud" not in second["config_keys"]
    # --tenant ran only that tenant; no other stack was touched.
    assert {c.stack for c in bed.calls() if not reads_a_service_network(c)} <= {"tenant-01", None}


def test_drift_check_finds_what_changed_in_the_cloud_and_a_refresh_takes_it_in(
    bed: Bed,
) -> None:
    tenants = str(two_tenants(bed))
    assert bed.fleet("up", tenants).code == EXIT_OK
    (built,) = programs(bed.cli, "tenant-02", "up")
    rule = next(r["name"] for r in registered(built, RULE) if "icmp" in r["name"])
    # Behind Pulumi's back: someone extends a volume by hand (two of its attributes move) and
    # deletes a security group rule. tenant-01's cloud is untouched.
    settings = json.loads((bed.cli / "standin.json").read_text())
    settings["cloud_changes"] = {
        "tenant-02": {
            "share-server-share-scratch-volume": {"size": 50, "updatedAt": "2026-09-01"},
            rule: "deleted",
        }
    }
    write_settings(bed.cli, settings)
    before = len(bed.calls())

    drift = bed.fleet("refresh", tenants, "--preview-only")

    assert drift.code == EXIT_DRIFT
    assert drift.rows()["tenant-01"][1:4] == ["drift", "ok", "none"]
    # One resource changed (however many of its attributes) and one is gone.
    assert drift.rows()["tenant-02"][1:4] == ["drift", "drift", "~1 -1"]
    refreshes = [c for c in bed.calls()[before:] if c.command == ["refresh"]]
    assert len(refreshes) == 2
    assert all("--preview-only" in c.argv for c in refreshes)
    # A drift check changes no config and no state.
    assert not [c for c in bed.calls()[before:] if c.command[0] == "config"]
    assert bed.fleet("refresh", tenants, "--preview-only").rows()["tenant-02"][2] == "drift"

    refreshed = bed.fleet("refresh", tenants)

    assert refreshed.code == EXIT_OK
    assert refreshed.rows()["tenant-02"][2:4] == ["ok", "~1 -1"]
    again = bed.fleet("refresh", tenants, "--preview-only")
    assert again.code == EXIT_OK, again.stdout
    assert {row[3] for row in again.rows().values()} == {"none"}


def test_destroy_keeps_protected_volumes_unless_asked(bed: Bed) -> None:
    tenants = str(two_tenants(bed))
    assert bed.fleet("up", tenants).code == EXIT_OK

    kept = bed.fleet("destroy", tenants)

    assert kept.code == EXIT_OK, kept.stdout
    assert "tenant-02: kept 2 protected resources (2 share volumes with their data)" in (
        kept.stdout
    )
    destroys = [c for c in bed.calls() if c.command == ["destroy"]]
    assert all("--exclude-protected" in c.argv for c in destroys)
    assert bed.ledger() == {}  # the subnets are gone: their blocks are free again

    gone = bed.fleet("destroy", tenants, "--include-protected", "--tenant", "tenant-02")

    assert gone.code == EXIT_OK
    unprotect = [c for c in bed.calls() if c.command == ["state", "unprotect"]]
    assert [(c.stack, "--all" in c.argv) for c in unprotect] == [("tenant-02", True)]
    last = [c for c in bed.calls() if c.command == ["destroy"]][-1]
    assert "--exclude-protected" not in last.argv
    assert "kept" not in gone.stdout


def test_an_object_store_backend_is_used_through_its_url(bed: Bed) -> None:
    tenants = str(two_tenants(bed))
    url = "s3://manila-state/fleet?endpoint=swift.example:8080&s3ForcePathStyle=true"
    options = [a if a != f"file://{bed.state}" else url for a in bed.options]

    run = run_fleet(["preview", tenants, *options], bed.environ)

    assert run.code == EXIT_OK, run.stdout + run.stderr
    project = yaml.safe_load((bed.work / "stacks" / "tenant-01" / "Pulumi.yaml").read_text())
    assert project["backend"]["url"] == url
    stored = bed.cli / "object-store" / "manila-state" / "fleet" / ".pulumi" / "stacks"
    # The tenants' stacks, and the one that reads the service network's subnets.
    assert sorted(p.name for p in (stored / "manila-dhss").iterdir()) == [
        f"{SERVICE_NETWORK_STACK_PREFIX}{DEVSTACK_SERVICE_NET}.json",
        "tenant-01.json",
        "tenant-02.json",
    ]


def test_the_passphrase_never_comes_from_the_tenants_file(
    bed: Bed, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE")
    tenants = two_tenants(bed)
    document = yaml.safe_load(tenants.read_text())
    document["passphrase"] = "oops"
    write_yaml(tenants, document)

    run = bed.fleet("up", str(tenants))

    assert run.code == EXIT_USAGE
    assert "passphrase: the secrets passphrase never goes in the tenants file" in run.stderr
    assert "PULUMI_CONFIG_PASSPHRASE" in run.stderr
    assert bed.calls() == []


def test_a_passphrase_file_works_with_the_cli_in_its_own_process(
    bed: Bed, monkeypatch: pytest.MonkeyPatch, standin_server: Path
) -> None:
    # The whole stand-in in the CLI's own interpreter (no server), as a CLI runs.
    install(bed.cli)
    tenants = str(two_tenants(bed))
    secret = bed.tmp / "passphrase"
    secret.write_text(PASSPHRASE + "\n")
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE")
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE_FILE", str(secret))

    run = bed.fleet("preview", tenants, "--tenant", "tenant-01")

    assert run.code == EXIT_OK, run.stdout + run.stderr
    assert all(c.env["PULUMI_CONFIG_PASSPHRASE_FILE"] == str(secret) for c in bed.calls())
    # A wrong passphrase is the CLI's error, not a crash: here the read of the service
    # network's subnets meets it first, and no tenant's stack is touched (back to the server,
    # which answers the same, faster).
    install(bed.cli, json.loads((bed.cli / "standin.json").read_text()), socket=standin_server)
    secret.write_text("wrong\n")
    seen = len(bed.calls())
    wrong = bed.fleet("preview", tenants, "--tenant", "tenant-01")
    assert wrong.code == EXIT_USAGE
    assert "incorrect passphrase" in wrong.stderr
    assert all(reads_a_service_network(c) for c in bed.calls()[seen:] if c.stack)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--pulumi-root", "/nonexistent"],
            "the Pulumi CLI was not found (/nonexistent/bin/pulumi)",
        ),
        (["--preview-only"], "--preview-only goes with refresh"),
        (["--parallel", "0"], "--parallel must be 1 or more"),
        (["--tenant", "tenant-9"], "--tenant tenant-9: no such tenant in the file"),
    ],
)
def test_what_stops_the_fleet_before_it_starts(bed: Bed, extra: list[str], message: str) -> None:
    tenants = str(two_tenants(bed))
    options = list(bed.options)
    if "--pulumi-root" in extra:
        del options[options.index("--pulumi-root") : options.index("--pulumi-root") + 2]

    run = run_fleet(["up", tenants, *options, *extra], bed.environ)

    assert run.code == EXIT_USAGE
    assert message in run.stderr
    assert bed.calls() == []


def test_without_central_allocation_two_new_tenants_collide(bed: Bed) -> None:
    """Why the fleet allocates: two new tenants' programs, each choosing its own block while
    the other does, pick the same one, and Neutron refuses the second subnet."""
    release = bed.tmp / "release"
    path = bed.tenants([1, 2], hold={"tenant-01": str(release), "tenant-02": str(release)})
    tenants = load_tenants_file(path)
    options = FleetOptions(
        operation="up",
        work_root=bed.work,
        log_dir=bed.tmp / "logs",
        backend_url=f"file://{bed.state}",
        parallel=2,
    )
    fleet = Fleet(tenants, options, PulumiCommand(root=str(bed.cli)), io.StringIO(), live=False)
    # The fleet's plan, minus the allocation: no block pinned, each program picks its own.
    plans = [
        TenantStack(tenant=t, work_dir=fleet.work_dir(t.name), config=tenant_config(t, None),
                   service_subnet_cidr=None)
        for t in tenants.tenants
    ]  # fmt: skip
    results: list[TenantResult] = []
    both = threading.Thread(target=lambda: results.extend(fleet.run(plans)))
    both.start()
    locks = bed.state / ".pulumi" / "locks" / "manila-dhss"
    deadline = time.monotonic() + 60
    while len(list(locks.glob("*/update.json"))) < 2:  # both ups started, neither has a subnet
        assert time.monotonic() < deadline, "the two ups never ran at once"
        time.sleep(0.05)
    release.touch()
    both.join()

    # Each real program, looking at the same cloud at the same time, chose the same block.
    chosen = {
        tenant: [
            r["inputs"]["cidr"] for r in registered(programs(bed.cli, tenant, "up")[0], SUBNET)
        ]
        for tenant in ("tenant-01", "tenant-02")
    }
    assert chosen == {"tenant-01": ["10.254.0.0/28"], "tenant-02": ["10.254.0.0/28"]}
    # Neutron took the first subnet and refused the second: one tenant failed, on its subnet.
    assert sorted(r.status.value for r in results) == ["failed", "ok"]
    (failed,) = [r for r in results if r.status is Status.FAILED]
    (ok,) = [r for r in results if r.status is Status.OK]
    assert failed.message.startswith("share-server-network-subnet: ")
    assert [s["stack"] for s in neutron_subnets(bed.cli).values()] == [ok.tenant]
