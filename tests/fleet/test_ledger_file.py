"""The service subnet ledger on disk: a damaged one stops the fleet in one line, before any
stack is touched, and says how to recover."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dhss_components.fleet.ledger import LedgerError, LedgerFile
from dhss_components.fleet.results import EXIT_USAGE
from tests.fleet.fleet_env import Bed

FIX = (
    "restore it from a backup, or remove it: the fleet then relearns each tenant's block from "
    "its stack's state"
)
NET = "b7d1a0c3-4e5f-4a6b-8c7d-9e0f1a2b3c41"


def ledger_json(networks: object, version: int = 1) -> bytes:
    return json.dumps({"version": version, "service_networks": networks}).encode()


@pytest.mark.parametrize(
    ("content", "where", "why"),
    [
        (b"{not json", ", line 1, column 2", "not valid JSON: Expecting property name"),
        (b'{"version": 1, "version": 1}', "", "duplicate key 'version'; keep one"),
        (b"[" * 40, ", line 1, column 33", "nested more than 32 deep"),
        (b'{"version": 1, "x": "\xe9"}', ", line 1, column 22", "not UTF-8 text (byte 0xe9)"),
        (ledger_json({}, version=2), "", "not a version 1 ledger"),
        (ledger_json(["10.254.0.0/28"]), "", "service_networks is not an object"),
        (ledger_json({NET: "10.254.0.0/28"}), "", f"service_networks.{NET} is not an object"),
        (
            ledger_json({NET: {"acme": "10.254.0.1/28"}}),
            "",
            f"service_networks.{NET}.acme is not an IPv4 subnet in CIDR form",
        ),
        (
            ledger_json({NET: {"acme": 28}}),
            "",
            f"service_networks.{NET}.acme is not an IPv4 subnet in CIDR form",
        ),
    ],
)
def test_a_damaged_ledger_is_one_line_with_the_way_out(
    tmp_path: Path, content: bytes, where: str, why: str
) -> None:
    path = tmp_path / "service-subnets.json"
    path.write_bytes(content)

    with pytest.raises(LedgerError) as caught:
        LedgerFile(path).read()

    message = str(caught.value)
    assert message.startswith(f"{path}{where}: {why}")
    assert message.endswith(f"; {FIX}")
    assert "\n" not in message


def test_what_is_written_is_read_back(tmp_path: Path) -> None:
    ledger = LedgerFile(tmp_path / "service-subnets.json")
    assert ledger.read() == {}  # none yet: nothing given

    ledger.write({NET: {"acme": "10.254.0.0/28", "globex": "10.254.0.16/28"}})

    assert ledger.read() == {NET: {"acme": "10.254.0.0/28", "globex": "10.254.0.16/28"}}


@pytest.mark.parametrize("operation", ["preview", "up", "destroy"])
def test_a_damaged_ledger_stops_the_fleet_before_any_stack_is_touched(
    bed: Bed, operation: str
) -> None:
    tenants = str(bed.tenants([1, 2]))
    bed.work.mkdir()
    ledger = bed.work / "service-subnets.json"
    ledger.write_text('{"version": 1, "service_networks": []}')

    run = bed.fleet(operation, tenants)

    assert run.code == EXIT_USAGE
    assert run.stderr == f"fleet: {ledger}: service_networks is not an object; {FIX}\n"
    # The CLI was asked its version, and nothing else: no stack selected, changed or destroyed.
    assert [c.command for c in bed.calls()] == [["version"]]
