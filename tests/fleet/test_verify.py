"""The in-guest check (``verify``) against a fake service instance: a real sshd on a loopback
port with a host key of the test's own, answering ``share.sh check`` through a stand-in
(``fake_guest.py``), reached with the real OpenSSH client as the product reaches it.

What the operator would notice: each share's findings are reported under that share; drift
exits 3, a clean guest 0, a share that cannot be told 1; a machine offering another host key
is refused before anything runs on it; only ``check`` ever runs, and nothing of the
operator's ``~/.ssh`` is read or written.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import re
import shlex
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from dhss_components.blueprint import share_script_params
from dhss_components.config import StackSpec, parse_stack_config
from dhss_components.fleet.openssh import Completed, OpenSsh, SshTarget, SshUnavailable
from dhss_components.fleet.results import EXIT_FAILED
from dhss_components.fleet.verify import (
    EXIT_DRIFT,
    EXIT_OK,
    EXIT_UNKNOWN,
    ShareReport,
    ShareState,
    ShellFactory,
    exit_status,
    run_stack_check,
    share_report,
    stack_check,
    unverified_note,
)
from dhss_components.fleet.verify import main as verify_main
from dhss_components.share_script import render_check_command, share_script
from tests.fleet.fake_guest import FakeGuest, fake_guest, guest_options, sshd
from tests.fleet.fleet_env import Bed, write_yaml
from tests.local_sshd import keygen
from tests.stack_run import base_config

MEDIA = {
    "name": "media",
    "size": 2,
    "share_proto": "CIFS",
    "access_rules": [{"access_type": "ip", "access_to": "10.0.0.0/26", "access_level": "rw"}],
}
VOLUMES = {"projects": "vol-projects", "media": "vol-media"}
VOLUME = "openstack:blockstorage/volume:Volume"


@pytest.fixture
def guest(tmp_path: Path) -> Iterator[FakeGuest]:
    with fake_guest(tmp_path) as running:
        yield running


def config_for(guest_key: Path) -> dict[str, Any]:
    """The dev stack's config with two shares (NFS and CIFS), logging in as root with the
    fake guest's client key."""
    config = copy.deepcopy(base_config((guest_key.with_suffix(".pub"), guest_key)))
    config["backend"]["service_instance_user"] = "root"
    config["shares"].append(MEDIA)
    return config


def spec_of(config: dict[str, Any]) -> StackSpec:
    return parse_stack_config(config["backend"], config["shareNetwork"], config["shares"])


def outputs_for(host_key: str, *, checked: bool = True) -> dict[str, Any]:
    return {
        "share_server": {
            "ssh_address": "127.0.0.1",
            # As the tls provider gives it: with its newline.
            "host_key": host_key + "\n",
            "host_key_check": checked,
        },
        "shares": {name: {"volume_id": volume} for name, volume in VOLUMES.items()},
    }


def at_port(port: int, seen: list[SshTarget] | None = None) -> ShellFactory:
    """The real OpenSSH client, to the target the stack gives, on the test sshd's port (the
    program's commands always use 22)."""

    def shell(target: SshTarget) -> OpenSsh:
        if seen is not None:
            seen.append(target)
        return OpenSsh(replace(target, port=port))

    return shell


def check(guest: FakeGuest, host_key: str | None = None, **kwargs: Any) -> list[ShareReport]:
    spec = spec_of(config_for(guest.client_key))
    outputs = outputs_for(host_key or guest.host_key, **kwargs)
    return run_stack_check(stack_check(spec, outputs), at_port(guest.port))


def test_each_shares_findings_are_reported_under_it_and_drift_exits_3(guest: FakeGuest) -> None:
    guest.answer(
        "vol-projects",
        drift=[
            "exports: 10.0.0.0/26 is not exported (the config gives it rw)",
            "mount: /shares/projects is not mounted",
        ],
    )

    reports = check(guest)

    assert reports == [
        ShareReport("media", ShareState.OK),
        ShareReport(
            "projects",
            ShareState.DRIFT,
            (
                "exports: 10.0.0.0/26 is not exported (the config gives it rw)",
                "mount: /shares/projects is not mounted",
            ),
        ),
    ]
    assert exit_status(reports) == EXIT_DRIFT
    # The guest ran exactly each share's check command, with ensure's arguments and its own
    # volume, and the script it carried is share.sh as it is on disk; nothing else ran.
    spec = spec_of(config_for(guest.client_key))
    expected = {
        share.name: shlex.split(
            render_check_command(share_script_params(spec.backend, share), VOLUMES[share.name])
            .split("\n", 1)[0]
            .split("<<", 1)[0]
        )
        for share in spec.shares
    }
    ran = guest.ran()
    assert sorted(r["words"][r["words"].index("--name") + 1] for r in ran) == ["media", "projects"]
    for record in ran:
        name = record["words"][record["words"].index("--name") + 1]
        assert record["words"] == expected[name]
        assert record["action"] == "check"
        assert record["script_sha256"] == hashlib.sha256(share_script().encode()).hexdigest()


def test_a_guest_as_declared_exits_0(guest: FakeGuest) -> None:
    reports = check(guest)

    assert [(r.share, r.state, r.findings) for r in reports] == [
        ("media", ShareState.OK, ()),
        ("projects", ShareState.OK, ()),
    ]
    assert exit_status(reports) == EXIT_OK


def test_a_share_the_check_cannot_tell_exits_1_with_its_reason(guest: FakeGuest) -> None:
    guest.answer("vol-media", exit=1, stderr="share.sh media: ERROR: net conf list failed")

    reports = check(guest)

    assert reports[0] == ShareReport(
        "media", ShareState.UNKNOWN, ("share.sh media: ERROR: net conf list failed",)
    )
    assert exit_status(reports) == EXIT_UNKNOWN


def test_another_host_key_is_refused_before_anything_runs(guest: FakeGuest, tmp_path: Path) -> None:
    other = keygen(tmp_path / "another_machine")

    reports = check(guest, host_key=other)

    assert [r.state for r in reports] == [ShareState.UNKNOWN, ShareState.UNKNOWN]
    assert all("Host key verification failed" in r.findings[0] for r in reports)
    assert exit_status(reports) == EXIT_UNKNOWN
    assert guest.ran() == []
    # Only the config's own choice (host_key: unverified) lets any key through, and says so.
    config = config_for(guest.client_key)
    config["backend"]["service_instance_host_key"] = "unverified"
    unpinned = stack_check(spec_of(config), outputs_for(other, checked=False))
    assert exit_status(run_stack_check(unpinned, at_port(guest.port))) == EXIT_OK
    assert len(guest.ran()) == 2
    assert (
        unverified_note(unpinned) == "host key unverified (service_instance_host_key: unverified)"
    )


@pytest.mark.parametrize("outputs", ["no host_key", "empty host_key", "built unverified"])
def test_a_stack_that_pins_no_host_key_is_never_dialled(guest: FakeGuest, outputs: str) -> None:
    # A stack from before host keys were pinned, or built unverified while the config now
    # verifies: no key to pin. Dialling anyway would trust whatever answers at the address.
    given = outputs_for(guest.host_key, checked=outputs != "built unverified")
    if outputs == "no host_key":
        del given["share_server"]["host_key"]
    if outputs == "empty host_key":
        given["share_server"]["host_key"] = ""
    spec = spec_of(config_for(guest.client_key))

    reports = run_stack_check(stack_check(spec, given), at_port(guest.port))

    assert [r.state for r in reports] == [ShareState.UNKNOWN, ShareState.UNKNOWN]
    assert exit_status(reports) == EXIT_UNKNOWN
    assert all(
        "does not dial an instance without its pinned host key" in r.findings[0] for r in reports
    )
    assert all("service_instance_host_key: unverified" in r.findings[0] for r in reports)
    assert guest.ran() == []


def test_shares_the_config_and_the_stack_disagree_on_are_drift(guest: FakeGuest) -> None:
    config = config_for(guest.client_key)
    config["shares"] = [config["shares"][0], {**MEDIA, "name": "new"}]
    outputs = outputs_for(guest.host_key)

    reports = run_stack_check(stack_check(spec_of(config), outputs), at_port(guest.port))

    assert [(r.share, r.state, r.findings) for r in reports] == [
        (
            "media",
            ShareState.DRIFT,
            ("stack: in the stack but no longer in the config; up unexports it",),
        ),
        ("new", ShareState.DRIFT, ("stack: in the config but not in the stack; run up",)),
        ("projects", ShareState.OK, ()),
    ]
    assert [r["action"] for r in guest.ran()] == ["check"]


def test_nothing_of_the_operators_ssh_is_read_or_written(
    guest: FakeGuest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    # A config of the operator's that would send the check elsewhere, were it read.
    (home / ".ssh" / "config").write_text("Host *\n  Port 1\n  User nobody\n")
    monkeypatch.setenv("HOME", str(home))
    # A temporary directory of this test's own: the guest harness makes dhss-ssh-* in the
    # shared one too, and a test run beside this one must not count.
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))

    assert exit_status(check(guest)) == EXIT_OK

    assert sorted(p.name for p in (home / ".ssh").iterdir()) == ["config"]
    assert list(temp.iterdir()) == []


def test_a_password_login(tmp_path: Path) -> None:
    if subprocess.run(["unshare", "-m", "true"], check=False).returncode != 0:
        pytest.skip("no mount namespaces here (unshare -m): the password login is not tested")
    with fake_guest(tmp_path) as guest_with_key:
        client_key = guest_with_key.client_key  # only to build a valid config file below
    secret = "correct horse battery staple"
    hashed = subprocess.run(
        ["openssl", "passwd", "-6", secret], capture_output=True, text=True, check=True
    ).stdout.strip()
    shadow = tmp_path / "shadow"
    shadow.write_text(f"root:{hashed}:19000:0:99999:7:::\n")
    state = guest_with_key.state
    # Root's password is the test's in this sshd's own mount namespace only.
    wrap = ["unshare", "-m", "sh", "-c", 'mount --bind "$0" /etc/shadow && exec "$@"', str(shadow)]
    options = guest_options(state, PasswordAuthentication="yes", PermitRootLogin="yes")
    config = config_for(client_key)
    del config["backend"]["path_to_private_key"]  # a password, and no key to log in with
    with sshd(tmp_path, "password-guest", [], options, wrap=wrap) as server:
        for password, state_wanted in ((secret, ShareState.OK), ("wrong", ShareState.UNKNOWN)):
            config["backend"]["service_instance_password"] = password
            reports = run_stack_check(
                stack_check(spec_of(config), outputs_for(server.host_key)), at_port(server.port)
            )
            assert {r.state for r in reports} == {state_wanted}, reports
    ran = [r["action"] for r in FakeGuest(server, state, client_key).ran()]
    assert ran == ["check", "check"]  # the right password's two checks; the wrong one's none


def test_through_a_bastion_with_its_own_pinned_key(guest: FakeGuest, tmp_path: Path) -> None:
    bastion_key = tmp_path / "bastion_client"
    public = keygen(bastion_key)
    config = config_for(guest.client_key)
    jump = {"AllowTcpForwarding": "yes", "PasswordAuthentication": "no"}
    with sshd(tmp_path, "bastion", [public], jump) as bastion:
        config["backend"]["ssh_proxy"] = {
            "host": "127.0.0.1",
            "user": "root",
            "port": bastion.port,
            "path_to_private_key": str(bastion_key),
            "source_cidrs": ["192.0.2.10/32"],
            "host_key": bastion.host_key,
        }
        reports = run_stack_check(
            stack_check(spec_of(config), outputs_for(guest.host_key)), at_port(guest.port)
        )
        assert exit_status(reports) == EXIT_OK, reports
        # The bastion carried the connection to the instance's address and port.
        assert f"target 127.0.0.1 port {guest.port}" in bastion.log.read_text()
        assert len(guest.ran()) == 2

        config["backend"]["ssh_proxy"]["host_key"] = keygen(tmp_path / "not_the_bastion")
        refused = run_stack_check(
            stack_check(spec_of(config), outputs_for(guest.host_key)), at_port(guest.port)
        )
        assert {r.state for r in refused} == {ShareState.UNKNOWN}
        assert len(guest.ran()) == 2  # nothing more ran


# -- through the fleet, and for one stack made with pulumi up --------------------------------


def rerouted(port: int, seen: list[SshTarget]) -> ShellFactory:
    """To the fake guest, whatever address the stack gives (kept in ``seen``); its host key
    and logins stay the stack's."""

    def shell(target: SshTarget) -> OpenSsh:
        seen.append(target)
        return OpenSsh(replace(target, host="127.0.0.1", port=port))

    return shell


def fleet_on_the_guest(bed: Bed, guest: FakeGuest) -> str:
    """tenant-01 and tenant-02 built; tenant-01's instance holds the fake guest's host key,
    tenant-02's another one; both log in as root with the guest's client key."""
    real_key = {
        "public": guest.host_key + "\n",
        "private": guest.sshd.host_key_file.read_text(),
    }
    path = bed.tenants([1, 2], host_keys={"tenant-01": real_key})
    document = yaml.safe_load(path.read_text())
    backend = document["backend"]
    backend["service_instance_user"] = "root"
    backend["path_to_private_key"] = str(guest.client_key)
    backend["path_to_public_key"] = str(guest.client_key.with_suffix(".pub"))
    write_yaml(path, document)
    up = bed.fleet("up", str(path))
    assert up.code == EXIT_OK, up.stdout + up.stderr
    return str(path)


def volume_of(bed: Bed, tenant: str) -> str:
    (volume,) = [r["id"] for r in bed.resources(tenant) if r["type"] == VOLUME]
    return str(volume)


def ssh_address(bed: Bed, tenant: str) -> str:
    path = bed.state / ".pulumi" / "stacks" / "manila-dhss" / f"{tenant}.json"
    latest = json.loads(path.read_text())["checkpoint"]["latest"]
    return str(latest["outputs"]["share_server"]["value"]["ssh_address"])


def snapshot(*roots: Path) -> dict[str, bytes]:
    return {
        str(p): p.read_bytes() for root in roots for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_fleet_verify_reports_every_tenants_shares_and_changes_nothing(
    bed: Bed, guest: FakeGuest
) -> None:
    tenants = fleet_on_the_guest(bed, guest)
    guest.answer(volume_of(bed, "tenant-01"), drift=["mount: /shares/share0 is not mounted"])
    seen: list[SshTarget] = []
    calls = len(bed.calls())
    before = snapshot(bed.state, bed.work / "stacks", bed.work / "service-subnets.json")

    drift = bed.fleet("verify", tenants, "--tenant", "tenant-01", shell=rerouted(guest.port, seen))

    assert drift.code == EXIT_DRIFT, drift.stdout + drift.stderr
    assert drift.rows()["tenant-01"][1:3] == ["verify", "drift"]
    assert "tenant-01: 1 of 1 share drifted" in drift.stdout
    assert re.search(
        r"tenant-01 +share0 +drift +mount: /shares/share0 is not mounted", drift.stdout
    ), drift.stdout
    # The stack's own address, user and host key; the check its share's.
    (target,) = seen
    assert target.host == ssh_address(bed, "tenant-01")
    assert (target.user, target.host_key) == ("root", guest.host_key)
    (ran,) = guest.ran()
    assert ran["action"] == "check"
    assert ran["words"][ran["words"].index("--volume-id") + 1] == volume_of(bed, "tenant-01")

    # Every tenant: tenant-02's instance offers a key that is not its stack's, so it is refused
    # before anything runs there; tenant-01 is clean now.
    guest.answer(volume_of(bed, "tenant-01"))
    both = bed.fleet("verify", tenants, shell=rerouted(guest.port, seen))

    assert both.code == EXIT_FAILED
    rows = both.rows()
    assert (rows["tenant-01"][2], rows["tenant-02"][2]) == ("ok", "failed")
    assert "tenant-02: 1 of 1 share could not be checked" in both.stdout
    assert re.search(r"tenant-02 +share0 +cannot tell +Host key verification failed", both.stdout)
    assert re.search(r"tenant-01 +share0 +ok", both.stdout)
    assert len(guest.ran()) == 2  # tenant-01's second check; nothing on tenant-02's behalf

    # Read only: the CLI's version, stack select and output, nothing else; state, config and
    # ledger untouched.
    assert {tuple(c.command) for c in bed.calls()[calls:]} == {
        ("version",),
        ("stack", "select"),
        ("stack", "output"),
    }
    assert snapshot(bed.state, bed.work / "stacks", bed.work / "service-subnets.json") == before


def test_one_stack_made_with_pulumi_up_is_verified_from_its_project_directory(
    bed: Bed, guest: FakeGuest, monkeypatch: pytest.MonkeyPatch
) -> None:
    fleet_on_the_guest(bed, guest)
    guest.answer(volume_of(bed, "tenant-01"), drift=["exports: 10.101.0.0/24 is missing"])
    monkeypatch.setenv("PATH", f"{bed.cli / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("PULUMI_SKIP_UPDATE_CHECK", "true")
    out, err = io.StringIO(), io.StringIO()
    seen: list[SshTarget] = []

    code = verify_main(
        ["--stack", "tenant-01", "--cwd", str(bed.work / "stacks" / "tenant-01")],
        stdout=out,
        stderr=err,
        shell=rerouted(guest.port, seen),
    )

    assert code == EXIT_DRIFT, err.getvalue()
    assert out.getvalue() == "share0  drift  exports: 10.101.0.0/24 is missing\n"
    assert [t.host for t in seen] == [ssh_address(bed, "tenant-01")]

    unknown = verify_main(
        ["--stack", "tenant-99", "--cwd", str(bed.work / "stacks" / "tenant-01")],
        stdout=out,
        stderr=err,
    )
    assert unknown == 2
    assert "verify: stack tenant-99 cannot be read" in err.getvalue()


@pytest.mark.parametrize("check", [["verify"], ["refresh", "--preview-only"]])
def test_a_tenant_never_built_is_not_reported_as_declared(bed: Bed, check: list[str]) -> None:
    # The tenants file declares tenant-01 and tenant-02; neither stack exists. A check that
    # passes what it could not look at would tell a scheduled job that all is well.
    tenants = str(bed.tenants([1, 2]))

    run = bed.fleet(check[0], tenants, *check[1:])

    assert run.code == EXIT_DRIFT, run.stdout + run.stderr
    assert {row[2] for row in run.rows().values()} == {"drift"}
    assert "its stack does not exist: run up" in run.stdout


@pytest.mark.parametrize(
    ("host", "user"),
    [
        ("127.0.0.1", "-oProxyCommand=touch"),  # would be an option
        ("127.0.0.1", "ubuntu\n  ProxyCommand touch"),  # would be a line of its own
        ("127.0.0.1", "a%h"),  # would expand a token
        ("-oProxyCommand=touch", "root"),
        ("10.0.0.5 # comment", "root"),
    ],
)
def test_a_value_that_would_change_the_ssh_clients_config_is_never_written(
    host: str, user: str
) -> None:
    target = SshTarget(host=host, user=user, host_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA")

    refused = pytest.raises(SshUnavailable, match="cannot be given to the OpenSSH client")
    with refused, OpenSsh(target) as ssh:
        ssh.run("true")


@pytest.mark.parametrize(
    ("stdout", "state"),
    [
        ("ok projects\n", ShareState.OK),
        ("", ShareState.UNKNOWN),  # something exited 0 without running the check
        ("ok media\n", ShareState.UNKNOWN),  # another share's answer
        ("hello\n", ShareState.UNKNOWN),
        ("drift projects mount: not mounted\nok projects\n", ShareState.UNKNOWN),
    ],
)
def test_exit_0_is_ok_only_with_the_checks_own_ok_line(stdout: str, state: ShareState) -> None:
    report = share_report("projects", Completed(0, stdout, ""))
    assert report.state is state, report
