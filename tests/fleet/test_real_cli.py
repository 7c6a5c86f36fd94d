"""The fleet against the real Pulumi CLI, where one is installed.

The CLI cannot be installed on the machines these tests were written on (no download from
get.pulumi.com), so there the stand-in tests carry the Automation API paths and this test is
skipped. Where ``pulumi`` is on PATH it checks what the stand-in imitates: stack creation,
config, the passphrase, the errors the SDK classifies, and a destroy that leaves no stack
broken. No cloud is needed, and none is there: the preview must fail for that tenant (its
program's first lookup cannot reach a cloud), as that tenant's failure with the CLI's one-line
reason, never the fleet's crash.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from dhss_components.fleet.results import EXIT_FAILED, EXIT_OK
from tests.fleet.fleet_env import PASSPHRASE, run_fleet, tenants_document, write_yaml
from tests.stack_run import write_key_pair

pytestmark = pytest.mark.skipif(
    shutil.which("pulumi") is None,
    reason="the Pulumi CLI is not on PATH (it cannot be installed here: no access to "
    "get.pulumi.com); tests/fleet/test_automation.py drives the same paths with the stand-in",
)


def test_the_fleet_drives_the_real_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", PASSPHRASE)
    monkeypatch.delenv("PULUMI_BACKEND_URL", raising=False)
    state = tmp_path / "state"
    state.mkdir()
    tenants = write_yaml(
        tmp_path / "tenants.yaml", tenants_document(write_key_pair(tmp_path), [1, 2])
    )
    options = [str(tenants), "--backend-url", f"file://{state}", "--work-root", str(tmp_path)]

    before = run_fleet(["status", *options], os.environ)
    assert before.code == EXIT_OK, before.stdout + before.stderr
    assert {row[2] for row in before.rows().values()} == {"no stack"}

    for name in ("OS_CLOUD", "OS_AUTH_URL", "OS_CLIENT_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no clouds.yaml to find

    preview = run_fleet(["preview", *options, "--tenant", "tenant-01"], os.environ)
    assert preview.code == EXIT_FAILED, preview.stdout + preview.stderr
    assert preview.rows()["tenant-01"][2] == "failed"
    reason = preview.stdout.split("  tenant-01: ", 1)[1].split("\n", 1)[0]
    # The CLI's own error line, and where to read more.
    assert reason.split(" (log: ", 1)[0].strip()
    assert " (log: " in reason
    assert "Traceback" not in preview.stdout + preview.stderr

    after = run_fleet(["status", *options], os.environ)
    assert after.rows()["tenant-01"][2] == "ok"  # the stack exists now, with no update
    assert after.rows()["tenant-02"][2] == "no stack"
    config = (tmp_path / "stacks" / "tenant-01" / "Pulumi.tenant-01.yaml").read_text()
    assert "encryptionsalt" in config
    ledger = (tmp_path / "service-subnets.json").read_text()
    assert "10.254.0.0/28" in ledger
    assert '"service_subnet_cidr": "10.254.0.0/28"' in config  # the block pinned in its config

    destroy = run_fleet(["destroy", *options, "--tenant", "tenant-01"], os.environ)
    assert destroy.code == EXIT_OK, destroy.stdout + destroy.stderr
    assert destroy.rows()["tenant-01"][2] == "ok"
