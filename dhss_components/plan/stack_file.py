"""The stack file the offline plan reads, as the Pulumi CLI reads it.

Only the ``dhss:*`` keys of ``config:`` matter (and the project's name in ``Pulumi.yaml``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import NAMESPACE, Problem
from ..operator_files import OperatorFileError, load_yaml


class PlanError(Exception):
    """The plan cannot be made; the message says why and what to do. Exit code 2."""

    def __init__(self, message: str, problems: Sequence[Problem] = ()) -> None:
        super().__init__(message)
        self.problems = tuple(problems)


# -- the stack file ----------------------------------------------------------------------------


@dataclass(frozen=True)
class StackFile:
    project: str
    stack: str
    path: Path
    config: dict[str, Any]
    """The ``dhss:*`` keys without namespace: backend, shareNetwork, shares."""


def read_stack_file(project_dir: Path, stack: str) -> StackFile:
    path = project_dir / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        found = sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in stack_files(project_dir))
        known = f"stacks here: {', '.join(found)}" if found else "no Pulumi.<stack>.yaml here"
        raise PlanError(f"{path}: no such stack file ({known}); pass --stack or --cwd")
    project = "manila-dhss"
    project_file = project_dir / "Pulumi.yaml"
    if project_file.is_file():
        name = _load_yaml(project_file).get("name")
        project = name if isinstance(name, str) and name else project
    document = _load_yaml(path)
    raw = document.get("config") or {}
    if not isinstance(raw, dict):
        raise PlanError(f"{path}: `config:` must be a mapping of keys to values")
    config = {
        key.split(":", 1)[1]: value
        for key, value in raw.items()
        if isinstance(key, str) and key.startswith(f"{NAMESPACE}:")
    }
    return StackFile(project=project, stack=stack, path=path, config=config)


def stack_files(project_dir: Path) -> list[Path]:
    return sorted(p for p in project_dir.glob("Pulumi.*.yaml") if p.name != "Pulumi.yaml")


def _load_yaml(path: Path) -> dict[str, Any]:
    """A Pulumi project or stack file, read within operator_files' limits."""
    try:
        document = load_yaml(path)
    except OperatorFileError as exc:
        raise PlanError(f"{exc}; fix the file") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise PlanError(f"{path}: expected a YAML mapping at the top (config: ...)")
    return document
