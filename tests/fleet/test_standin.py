"""The stand-in CLI is as strict as the real one: each command's own flags, and nothing else."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pulumi.automation.interface as generated
import pytest

from tests.fleet.fleet_env import PASSPHRASE
from tests.fleet.standin.cli import parse, run
from tests.fleet.standin.commands import COMMANDS, GLOBAL_BOOLS, GLOBAL_VALUES
from tests.fleet.standin.install import install
from tests.fleet.standin.state import CliError

# The generated interface's method for each command it has (pulumi 3.272.0).
GENERATED: dict[tuple[str, ...], str] = {
    ("refresh",): "refresh",
    ("config",): "config",
    ("config", "set-all"): "config_set_all",
    ("config", "rm-all"): "config_remove_all",
    ("config", "rm"): "config_remove",
    ("state", "unprotect"): "state_unprotect",
    ("state", "remove"): "state_remove",
    ("version",): "version",
}
NOT_IN_THE_INTERFACE: dict[tuple[str, ...], set[str]] = {("refresh",): {"--event-log"}}
"""Flags the SDK sends and the CLI defines (refresh.go) that the generated interface omits."""


def generated_flags(method: str) -> tuple[set[str], set[str]]:
    """(boolean flags, flags with a value) of one generated method."""
    source = Path(generated.__file__).read_text()
    body = re.search(rf"\n    def {method}\(.*?(?=\n    def |\Z)", source, re.S)
    assert body is not None, method
    bools = set(re.findall(r'__flags\.append\("(--[a-z-]+)"\)', body.group(0)))
    values = set(re.findall(r'__flags\.extend\(\["(--[a-z-]+)"', body.group(0)))
    return bools, values


@pytest.mark.parametrize("path", sorted(GENERATED))
def test_flags_are_exactly_the_generated_interfaces(path: tuple[str, ...]) -> None:
    bools, values = generated_flags(GENERATED[path])
    spec = COMMANDS[path]
    extra = NOT_IN_THE_INTERFACE.get(path, set())
    assert spec.bools | (GLOBAL_BOOLS & bools) == bools | spec.bools & extra
    assert (spec.values | GLOBAL_VALUES) - {"--cwd"} == values | extra


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        # up has no --preview-only (refresh and destroy have)
        (["up", "--yes", "--preview-only", "--stack", "s"], "unknown flag: --preview-only"),
        (["stack", "select", "--yes", "--stack", "s"], "unknown flag: --yes"),
        (["stack", "select", "-y", "--stack", "s"], "unknown shorthand flag: 'y' in -y"),
        # --run-program is a boolean: the next word is a positional argument
        (["refresh", "--run-program", "true", "--stack", "s"], 'unknown command "true" for '),
        (["up", "--stack"], "flag needs an argument: --stack"),
        (["stack", "frobnicate"], 'unknown command "frobnicate" for "pulumi stack"'),
        (["config", "rm-all", "--stack", "s"], "requires at least 1 arg(s), only received 0"),
        (["up", "--yes=maybe"], 'invalid argument "maybe" for "--yes" flag'),
    ],
)
def test_what_the_real_cli_refuses_is_refused(argv: list[str], message: str) -> None:
    with pytest.raises(CliError) as caught:
        parse(["--non-interactive", *argv])
    assert str(caught.value).startswith(message)


def test_a_boolean_takes_its_value_only_after_an_equals_sign() -> None:
    args = parse(["refresh", "--run-program=true", "--preview-only", "--stack", "s"])
    assert {"--run-program", "--preview-only"} <= args.flags
    assert args.words == []
    assert "--run-program" not in parse(["refresh", "--run-program=false"]).flags
    # What the SDK sends to each command parses as that command's flags.
    sent = "--non-interactive up --yes --skip-preview --client=127.0.0.1:1 --exec-kind auto.inline"
    up = parse([*sent.split(), "--stack", "t", "--event-log", "tcp://x"])
    assert up.command == ("up",)
    assert up.value("--exec-kind") == "auto.inline"
    assert parse(["config", "remove-all", "--stack", "t", "a:b"]).command == ("config", "rm-all")


@pytest.fixture
def cli(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    root = install(tmp_path / "cli")
    state = tmp_path / "state"
    state.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    (work / "Pulumi.yaml").write_text(
        f"name: p\nruntime: python\nbackend:\n  url: file://{state}\n"
    )
    env = {"STANDIN_ROOT": str(root), "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE}
    return work, env


def call(cli: tuple[Path, dict[str, str]], *argv: str) -> tuple[int, str, str]:
    work, env = cli
    out, err = io.StringIO(), io.StringIO()
    code = run(["--non-interactive", *argv], cwd=work, env=env, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_errors_are_printed_and_exit_as_the_clis(cli: tuple[Path, dict[str, str]]) -> None:
    assert call(cli, "up", "--preview-only") == (1, "", "error: unknown flag: --preview-only\n")
    code, _, err = call(cli, "stack", "select", "--stack", "missing")
    assert (code, err) == (6, "error: no stack named 'missing' found\n")
    assert call(cli, "stack", "init", "s")[0] == 0
    code, _, err = call(cli, "up", "--stack", "s")
    assert code == 2
    assert err.startswith("error: --yes or --skip-preview or --preview-only must be passed")


def test_json_only_with_json(cli: tuple[Path, dict[str, str]]) -> None:
    assert call(cli, "stack", "init", "s")[0] == 0
    assert call(cli, "config", "set-all", "--stack", "s", "--plaintext", "a:b=c")[0] == 0

    _, as_json, _ = call(cli, "config", "--json", "--stack", "s")
    _, as_text, _ = call(cli, "config", "--stack", "s")
    assert json.loads(as_json) == {"a:b": {"value": "c", "secret": False}}
    with pytest.raises(json.JSONDecodeError):
        json.loads(as_text)
    assert "a:b" in as_text
    _, listed, _ = call(cli, "stack", "ls")
    with pytest.raises(json.JSONDecodeError):
        json.loads(listed)
    assert json.loads(call(cli, "stack", "ls", "--json")[1]) == [{"name": "s", "current": False}]
