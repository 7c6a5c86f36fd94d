"""The offline plan as data: what a stack would declare, ready to be rendered."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PlannedResource:
    name: str
    type: str
    parent: str | None
    """The name of the component it belongs to (None for the stack's root component)."""
    custom: bool
    """A cloud resource (True) or a component grouping others (False)."""
    inputs: dict[str, Any]
    """The inputs that matter, secrets shown as [secret], cloud ids as <id of NAME>."""
    depends_on: tuple[str, ...]
    """Every resource it waits for, as the engine receives them."""
    protect: bool
    delete_before_replace: bool
    ignore_changes: tuple[str, ...]


@dataclass(frozen=True)
class ShareCommands:
    share: str
    resource: str
    create: str
    update: str | None
    delete: str | None


@dataclass(frozen=True)
class Plan:
    project: str
    stack: str
    notices: tuple[str, ...]
    """What the plan substituted or assumed, to be read before anything else."""
    resources: tuple[PlannedResource, ...]
    edges: tuple[tuple[str, str], ...]
    """(dependency, dependent) between cloud resources, without edges implied by others."""
    security_rules: tuple[dict[str, Any], ...]
    share_server: dict[str, Any]
    shares: dict[str, Any]
    share_commands: tuple[ShareCommands, ...]
    host_commands: tuple[ShareCommands, ...]
