"""Test helpers for the fleet: tenants files, a cloud that has their networks, the stand-in
CLI's records, and a way to run the fleet command in-process."""

from __future__ import annotations

import io
import ipaddress
import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dhss_components.fleet.cli import main
from dhss_components.fleet.openssh import OpenSsh
from dhss_components.fleet.options import SERVICE_NETWORK_STACK_PREFIX
from dhss_components.fleet.verify import ShellFactory
from tests.clouds import DEVSTACK_SERVICE_NET
from tests.fleet.standin.install import write_settings
from tests.stack_run import base_config

_IDS = uuid.UUID("5b1e6f0a-9d8c-4b7a-8e6f-3c2d1b0a9f8e")
PASSPHRASE = "correct horse battery staple"


def _id(*parts: object) -> str:
    return str(uuid.uuid5(_IDS, "/".join(map(str, parts))))


def tenant_name(index: int) -> str:
    return f"tenant-{index:02d}"


def tenant_network(index: int) -> dict[str, str]:
    """Tenant ``index``'s own network, subnet (10.<100+index>.0.0/24) and router."""
    return {
        "name": f"{tenant_name(index)}-net",
        "net": _id("net", index),
        "subnet": _id("subnet", index),
        "cidr": f"10.{100 + index}.0.0/24",
        "router": _id("router", index),
    }


def shared_backend(keys: tuple[Path, Path]) -> dict[str, Any]:
    """The [generic1] section every tenant shares: one service network for all."""
    backend: dict[str, Any] = base_config(keys)["backend"]
    return backend


def tenant_entry(index: int, shares: int = 1) -> dict[str, Any]:
    net = tenant_network(index)
    return {
        "shareNetwork": {"neutron_net_id": net["net"], "neutron_subnet_id": net["subnet"]},
        "shares": [
            {
                "name": f"share{n}",
                "size": 1 + index + n,
                "share_proto": "NFS",
                "access_rules": [{"access_type": "ip", "access_to": net["cidr"]}],
            }
            for n in range(shares)
        ],
    }


def tenants_document(keys: tuple[Path, Path], indices: Iterable[int]) -> dict[str, Any]:
    return {
        "backend": shared_backend(keys),
        "tenants": {tenant_name(i): tenant_entry(i) for i in indices},
    }


def write_yaml(path: Path, document: Any) -> Path:
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def cloud_settings(indices: Iterable[int]) -> dict[str, Any]:
    return {"cloud": {"tenant_networks": [tenant_network(i) for i in indices]}}


@dataclass
class FleetRun:
    code: int
    stdout: str
    stderr: str

    def rows(self) -> dict[str, list[str]]:
        """The summary table's rows by tenant, split on runs of two spaces."""
        table = self.stdout.split("\n\n", 1)[0]  # notes and findings come after a blank line
        return {
            line.split()[0]: [cell.strip() for cell in line.split("  ") if cell.strip()]
            for line in table.splitlines()
            if line.startswith("tenant-")
        }


def run_fleet(
    args: list[str], environ: Mapping[str, str], shell: ShellFactory = OpenSsh
) -> FleetRun:
    out, err = io.StringIO(), io.StringIO()
    code = main(args, stdout=out, stderr=err, environ=environ, live=False, shell=shell)
    return FleetRun(code, out.getvalue(), err.getvalue())


@dataclass
class Bed:
    """One operator's setup: the stand-in CLI, a file backend, a work root, a key pair."""

    tmp: Path
    cli: Path
    state: Path
    work: Path
    keys: tuple[Path, Path]
    environ: Mapping[str, str]

    @property
    def options(self) -> list[str]:
        return [
            "--pulumi-root",
            str(self.cli),
            "--backend-url",
            f"file://{self.state}",
            "--work-root",
            str(self.work),
        ]

    def tenants(self, indices: Iterable[int], **settings: Any) -> Path:
        """A tenants file for these tenants, and a cloud that has their networks."""
        indices = list(indices)
        write_settings(self.cli, {**cloud_settings(indices), **settings})
        return write_yaml(self.tmp / "tenants.yaml", tenants_document(self.keys, indices))

    def fleet(self, *args: str, shell: ShellFactory = OpenSsh) -> FleetRun:
        return run_fleet([*args, *self.options], self.environ, shell)

    def ledger(self) -> dict[str, str]:
        path = self.work / "service-subnets.json"
        if not path.exists():
            return {}
        networks = json.loads(path.read_text())["service_networks"]
        return dict(networks.get(DEVSTACK_SERVICE_NET, {}))

    def calls(self) -> list[Call]:
        return calls(self.cli)

    def settings(self, **changes: Any) -> None:
        """Change the stand-in's settings (what the cloud holds, what it does)."""
        settings = json.loads((self.cli / "standin.json").read_text())
        write_settings(self.cli, {**settings, **changes})

    def resources(self, stack: str) -> list[dict[str, Any]]:
        """The stack's resources as its checkpoint holds them (outputs sealed, inputs plain but
        for secrets)."""
        path = self.state / ".pulumi" / "stacks" / "manila-dhss" / f"{stack}.json"
        found: list[dict[str, Any]] = json.loads(path.read_text())["checkpoint"]["latest"].get(
            "resources", []
        )
        return found

    def ssh_runs(self) -> list[dict[str, Any]]:
        """Every remote command the stand-in ran (nova.py): host, server, step, share."""
        path = self.cli / "ssh.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# -- what the stand-in recorded ------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    argv: list[str]
    cwd: str
    env: dict[str, str]
    start: float
    end: float
    exit: int

    @property
    def command(self) -> list[str]:
        """The subcommand words, e.g. ['stack', 'select'] or ['up']."""
        words: list[str] = []
        for arg in self.argv:
            if arg.startswith("-"):
                if words:
                    break
                continue
            words.append(arg)
        return words[:2]

    @property
    def stack(self) -> str | None:
        for flag, value in zip(self.argv, self.argv[1:], strict=False):
            if flag == "--stack":
                return value
        if self.argv[1:3] == ["stack", "init"]:
            return self.argv[3]
        return None


def reads_a_service_network(call: Call) -> bool:
    """A call for the read-only stack that reads a service network's subnets (survey.py)."""
    return (call.stack or "").startswith(SERVICE_NETWORK_STACK_PREFIX)


def config_sent(call: Call) -> dict[str, tuple[str, bool]]:
    """``config set-all`` arguments: key -> (value, secret)."""
    sent = {}
    for flag, pair in zip(call.argv, call.argv[1:], strict=False):
        if flag in ("--plaintext", "--secret"):
            key, _, value = pair.partition("=")
            sent[key] = (value, flag == "--secret")
    return sent


def calls(root: Path) -> list[Call]:
    path = root / "calls.jsonl"
    if not path.exists():
        return []
    return [
        Call(**{k: v for k, v in json.loads(line).items() if k in Call.__dataclass_fields__})
        for line in path.read_text().splitlines()
    ]


def max_overlap(intervals: Iterable[tuple[float, float]]) -> int:
    edges = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    best = current = 0
    for _, step in edges:
        current += step
        best = max(best, current)
    return best


def programs(
    root: Path, stack: str | None = None, operation: str | None = None
) -> list[dict[str, Any]]:
    """Every program run the stand-in hosted, oldest first."""
    folder = root / "programs"
    found = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        record = json.loads(path.read_text())
        if stack is not None and record["stack"] != stack:
            continue
        if operation is not None and record["operation"] != operation:
            continue
        found.append(record)
    return sorted(found, key=lambda r: r["start"])


def registered(record: Mapping[str, Any], typ: str) -> list[dict[str, Any]]:
    return [r for r in record["registrations"] if r["type"] == typ]


def neutron_subnets(root: Path) -> dict[str, dict[str, Any]]:
    path = root / "neutron.json"
    return json.loads(path.read_text()) if path.exists() else {}


def pairwise_disjoint(cidrs: Iterable[str]) -> bool:
    networks = [ipaddress.ip_network(c) for c in cidrs]
    return not any(a.overlaps(b) for i, a in enumerate(networks) for b in networks[i + 1 :])
