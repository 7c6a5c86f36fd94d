"""Each reader of an operator file, fed any bytes: it returns its value or raises its own
error (the one its command line turns into exit status 2 and one line), nothing else."""

from __future__ import annotations

import ipaddress
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dhss_components.fleet.ledger import LedgerError, LedgerFile
from dhss_components.fleet.results import EXIT_USAGE
from dhss_components.fleet.tenants import InvalidTenantsFile, load_tenants_file
from dhss_components.manila_conf import ManilaConfError, import_backend, read_manila_conf
from dhss_components.plan.__main__ import main as plan_main
from dhss_components.plan.stack_file import PlanError, read_stack_file
from tests.fleet.fleet_env import run_fleet
from tests.test_operator_files import (
    BILLION_LAUGHS,
    JSON_PIECES,
    YAML_TEXT,
    outcome,
    plain_size,
)

BOMB_REFUSED = (
    "line 6, column 16: more than 200000 values once its aliases are expanded (an alias "
    "bomb?); write the values out, or alias less"
)


# -- the command lines: exit status 2 and one line ------------------------------------------------


def test_the_plan_refuses_an_alias_bomb_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = tmp_path / "Pulumi.bomb.yaml"
    stack.write_bytes(BILLION_LAUGHS)

    code = plan_main(["--stack", "bomb", "--cwd", str(tmp_path)])

    assert code == 2
    assert capsys.readouterr().err == f"plan: {stack}, {BOMB_REFUSED}; fix the file\n"


def test_the_fleet_refuses_an_alias_bomb_in_one_line(tmp_path: Path) -> None:
    tenants = tmp_path / "tenants.yaml"
    tenants.write_bytes(BILLION_LAUGHS)

    run = run_fleet(["preview", str(tenants), "--work-root", str(tmp_path / "work")], {})

    assert run.code == EXIT_USAGE
    assert run.stderr == f"fleet: {tenants}, {BOMB_REFUSED}; no stack was touched\n"
    assert not (tmp_path / "work").exists()


def test_the_plan_never_shows_the_stack_file_line_that_holds_a_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "Pulumi.dev.yaml").write_text(
        'config:\n  dhss:backend:\n    service_instance_password: "hunter2\n'
    )

    code = plan_main(["--cwd", str(tmp_path)])

    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"plan: {tmp_path}/Pulumi.dev.yaml, line 4, column 1: not valid YAML")
    assert err.count("\n") == 1
    assert "hunter2" not in err


def test_a_stack_file_may_use_anchors_and_merge_keys(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.dev.yaml").write_text(
        "config:\n"
        "  dhss:shareNetwork: &net {neutron_net_id: n1, neutron_subnet_id: s1}\n"
        "  dhss:shares:\n"
        "    - &nfs {name: projects, size: 10, share_proto: NFS}\n"
        "    - {<<: *nfs, name: homes}\n"
    )

    config = read_stack_file(tmp_path, "dev").config

    assert config["shares"] == [
        {"name": "projects", "size": 10, "share_proto": "NFS"},
        {"name": "homes", "size": 10, "share_proto": "NFS"},
    ]


# -- any bytes ----------------------------------------------------------------------------------

INI_PIECES = st.sampled_from(
    ["[generic1]", "[DEFAULT]", "[", "]", "\n", " ", "=", ":", "#", ";",
     "driver_handles_share_servers", "True", "maybe", "service_instance_password",
     "service_password", "hunter2", "share_driver", "max_time_to_attach", "1" * 5000,
     "%(x)s", "\t", "\xff", "\x00"]
)  # fmt: skip

ANY_FILE = st.binary(max_size=300) | YAML_TEXT.map(lambda t: t.encode("utf-8", "replace"))


def read_as(name: str, data: bytes, read: Callable[[Path], Any], error: type[Exception]) -> Any:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / name
        path.write_bytes(data)
        return outcome(lambda: read(path), error)


@given(data=ANY_FILE)
def test_any_stack_file_is_read_or_refused_with_a_plan_error(data: bytes) -> None:
    result = read_as(
        "Pulumi.fuzz.yaml", data, lambda path: read_stack_file(path.parent, "fuzz"), PlanError
    )
    if isinstance(result, PlanError):
        assert "\n" not in str(result)
    else:
        plain_size(result.config)


@given(data=ANY_FILE)
def test_any_tenants_file_is_read_or_refused_with_invalid_tenants_file(data: bytes) -> None:
    result = read_as("tenants.yaml", data, load_tenants_file, InvalidTenantsFile)
    if isinstance(result, InvalidTenantsFile):
        assert result.problems
    else:
        assert all(t.name not in (".", "..") for t in result.tenants)


@given(
    data=st.binary(max_size=300) | st.lists(INI_PIECES, max_size=40).map("".join).map(str.encode)
)
def test_any_manila_conf_is_imported_or_refused_with_a_manila_conf_error(data: bytes) -> None:
    def read(path: Path) -> Any:
        return import_backend(read_manila_conf(path), "generic1", hostname="manila-share-1")

    result = read_as("manila.conf", data, read, ManilaConfError)
    if isinstance(result, ManilaConfError):
        assert "\n" not in str(result)
    else:
        assert result.backend["driver_handles_share_servers"] is True


@given(
    data=st.binary(max_size=300) | st.lists(JSON_PIECES, max_size=60).map("".join).map(str.encode)
)
def test_any_ledger_is_read_or_refused_with_a_ledger_error(data: bytes) -> None:
    result = read_as("service-subnets.json", data, lambda p: LedgerFile(p).read(), LedgerError)
    if isinstance(result, LedgerError):
        assert "\n" not in str(result)
    else:
        for blocks in result.values():
            assert all(ipaddress.IPv4Network(cidr) for cidr in blocks.values())
