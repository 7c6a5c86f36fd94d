"""Enough of GitHub Actions to test what a workflow does, not only how it reads.

- `evaluate`: GitHub's expression language (the subset workflows use: literals, context
  paths, `!`, `==`, `!=`, `&&`, `||`, parentheses and a few functions), with GitHub's rules:
  a missing property is null, strings compare without case, `&&`/`||` yield an operand.
- `run_step`: runs one `run:` step the way the runner does: the shell GitHub starts for the
  workflow's `shell:` setting, the step's `env:` with its `${{ }}` evaluated against a given
  context, and GITHUB_OUTPUT, GITHUB_STEP_SUMMARY and RUNNER_TEMP as files of the test's own.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<number>-?\d+(?:\.\d+)?)"
    r"|(?P<op>==|!=|&&|\|\||[!().,\[\]])|(?P<name>[A-Za-z_][A-Za-z0-9_-]*))"
)


class ExpressionError(ValueError):
    """An expression this subset does not know: the test must learn it, not guess."""


def _tokens(text: str) -> list[tuple[str, Any]]:
    tokens: list[tuple[str, Any]] = []
    position = 0
    text = text.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise ExpressionError(f"cannot read {text[position:]!r} in {text!r}")
        position = match.end()
        if match["string"] is not None:
            tokens.append(("value", match["string"][1:-1].replace("''", "'")))
        elif match["number"] is not None:
            tokens.append(("value", float(match["number"])))
        elif match["op"] is not None:
            tokens.append(("op", match["op"]))
        else:
            tokens.append(("name", match["name"]))
    return tokens


def _number(value: Any) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        if value.strip() == "":
            return 0.0
        try:
            return float(value)
        except ValueError:
            return math.nan
    return math.nan


def _equal(left: Any, right: Any) -> bool:
    if isinstance(left, str) and isinstance(right, str):
        return left.casefold() == right.casefold()
    if type(left) is type(right):
        return bool(left == right)
    # Different types compare as numbers (null is 0, a non-numeric string is NaN).
    return _number(left) == _number(right)


def truthy(value: Any) -> bool:
    if value is None or value is False or value == "":
        return False
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value != 0 and not math.isnan(value)
    return True


def as_string(value: Any) -> str:
    """How `${{ }}` puts a value into a string."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


@dataclass
class _Parser:
    tokens: list[tuple[str, Any]]
    context: dict[str, Any]
    status: str
    position: int = 0

    def peek(self) -> tuple[str, Any] | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self, op: str | None = None) -> tuple[str, Any]:
        token = self.peek()
        if token is None or (op is not None and token != ("op", op)):
            raise ExpressionError(f"expected {op or 'more'} at token {self.position}")
        self.position += 1
        return token

    def parse(self) -> Any:
        value = self.or_()
        if self.peek() is not None:
            raise ExpressionError(f"unexpected {self.peek()}")
        return value

    def or_(self) -> Any:
        value = self.and_()
        while self.peek() == ("op", "||"):
            self.take()
            right = self.and_()
            value = value if truthy(value) else right
        return value

    def and_(self) -> Any:
        value = self.equality()
        while self.peek() == ("op", "&&"):
            self.take()
            right = self.equality()
            value = right if truthy(value) else value
        return value

    def equality(self) -> Any:
        value = self.unary()
        while self.peek() in (("op", "=="), ("op", "!=")):
            _, op = self.take()
            right = self.unary()
            value = _equal(value, right) if op == "==" else not _equal(value, right)
        return value

    def unary(self) -> Any:
        if self.peek() == ("op", "!"):
            self.take()
            return not truthy(self.unary())
        return self.primary()

    def primary(self) -> Any:
        kind, value = self.take()
        if kind == "value":
            return value
        if (kind, value) == ("op", "("):
            inner = self.or_()
            self.take(")")
            return inner
        if kind != "name":
            raise ExpressionError(f"unexpected {value!r}")
        if value in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[value]
        if self.peek() == ("op", "("):
            return self.call(value)
        current: Any = self.context.get(value)
        while self.peek() in (("op", "."), ("op", "[")):
            _, op = self.take()
            if op == ".":
                _, key = self.take()
            else:
                key = self.or_()
                self.take("]")
            current = current.get(key) if isinstance(current, dict) else None
        return current

    def call(self, name: str) -> Any:
        self.take("(")
        args: list[Any] = []
        while self.peek() != ("op", ")"):
            args.append(self.or_())
            if self.peek() == ("op", ","):
                self.take()
        self.take(")")
        match name:
            case "format":
                return re.sub(r"\{(\d+)\}", lambda m: as_string(args[1 + int(m[1])]), args[0])
            case "fromJSON":
                return json.loads(args[0])
            case "contains":
                return as_string(args[1]).casefold() in as_string(args[0]).casefold()
            case "startsWith":
                return as_string(args[0]).casefold().startswith(as_string(args[1]).casefold())
            case "success":
                return self.status == "success"
            case "failure":
                return self.status == "failure"
            case "cancelled":
                return self.status == "cancelled"
            case "always":
                return True
        raise ExpressionError(f"unknown function {name}()")


def evaluate(expression: str, context: dict[str, Any], status: str = "success") -> Any:
    """The value of a GitHub expression (with or without its `${{ }}`)."""
    text = expression.strip()
    if text.startswith("${{") and text.endswith("}}"):
        text = text[3:-2]
    return _Parser(_tokens(text), context, status).parse()


def condition(expression: str | None, context: dict[str, Any], status: str = "success") -> bool:
    """Whether a job or step with this `if:` runs (GitHub adds `success() &&` when the
    expression calls no status function)."""
    if expression is None:
        return status == "success"
    text = str(expression)
    if not re.search(r"\b(success|failure|cancelled|always)\(", text):
        text = f"success() && ({text.strip().removeprefix('${{').removesuffix('}}')})"
    return truthy(evaluate(text, context, status))


def interpolate(text: str, context: dict[str, Any]) -> str:
    """A string with each `${{ expression }}` replaced by its value."""
    return re.sub(r"\$\{\{(.*?)\}\}", lambda m: as_string(evaluate(m[1], context)), text)


# `shell: bash` as GitHub runs it, and bash when no shell is set (ubuntu runners).
SHELLS = {
    "bash": ["bash", "--noprofile", "--norc", "-eo", "pipefail"],
    None: ["bash", "-e"],
}


def step_shell(workflow: dict[str, Any], job: dict[str, Any], step: dict[str, Any]) -> list[str]:
    shell = (
        step.get("shell")
        or job.get("defaults", {}).get("run", {}).get("shell")
        or workflow.get("defaults", {}).get("run", {}).get("shell")
    )
    if shell not in SHELLS:
        raise ExpressionError(f"no runner shell for {shell!r}")
    return SHELLS[shell]


@dataclass
class StepRun:
    """What a step left: its exit status, output and the runner's files."""

    returncode: int
    stdout: str
    stderr: str
    summary: str
    outputs: str
    runner_temp: Path


def run_step(
    workflow: dict[str, Any],
    job_name: str,
    step_id: str,
    *,
    context: dict[str, Any],
    workspace: Path,
    runner: Path,
    path: tuple[Path, ...] = (),
    extra_env: dict[str, str] | None = None,
    shell: list[str] | None = None,
) -> StepRun:
    """Run the step with id `step_id` of `job_name` in `workspace`.

    `runner` is a directory for the runner's own files (RUNNER_TEMP, the summary, the
    outputs), which stay there for the test to read; `path` goes in front of PATH (fake
    commands).
    """
    job = workflow["jobs"][job_name]
    step = find_step(workflow, job_name, step_id)
    script = step["run"]
    if "${{" in script:
        raise ExpressionError(f"{job_name}/{step_id}: expressions inside run: are not run here")
    runner_temp = runner / "temp"
    runner_temp.mkdir(parents=True, exist_ok=True)
    summary = runner / "summary.md"
    outputs = runner / "outputs"
    summary.touch()
    outputs.touch()
    env = {
        "PATH": os.pathsep.join([*map(str, path), os.environ["PATH"]]),
        "HOME": str(runner / "home"),
        "LANG": "C.UTF-8",
        "GITHUB_WORKSPACE": str(workspace),
        "GITHUB_STEP_SUMMARY": str(summary),
        "GITHUB_OUTPUT": str(outputs),
        "RUNNER_TEMP": str(runner_temp),
    }
    for scope in (workflow.get("env", {}), job.get("env", {}), step.get("env", {})):
        env.update({k: interpolate(str(v), context) for k, v in scope.items()})
    env.update(extra_env or {})
    script_file = runner / f"{step_id}.sh"
    script_file.write_text(script)
    result = subprocess.run(
        [*(shell or step_shell(workflow, job, step)), str(script_file)],
        cwd=workspace,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return StepRun(
        result.returncode,
        result.stdout,
        result.stderr,
        summary.read_text(),
        outputs.read_text(),
        runner_temp,
    )


def find_step(workflow: dict[str, Any], job_name: str, step_id: str) -> dict[str, Any]:
    """The step with this id; a clear failure when it is gone (so is what it promised)."""
    job = workflow["jobs"].get(job_name)
    assert job is not None, f"there is no job {job_name!r}"
    matches = [s for s in job.get("steps", []) if s.get("id") == step_id]
    assert len(matches) == 1, f"job {job_name!r} has no step with id {step_id!r}"
    step: dict[str, Any] = matches[0]
    return step
