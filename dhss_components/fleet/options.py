"""What one fleet run is asked to do, and the checks that stop it before it starts."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

PROJECT = "manila-dhss"
DEFAULT_BACKEND_URL = "file://~/.pulumi-manila-dhss"
"""The same local state as Pulumi.yaml: a stack made with `pulumi up` is the fleet's too."""
DEFAULT_WORK_ROOT = "~/.manila-dhss-fleet"
LEDGER_NAME = "service-subnets.json"
SERVICE_NETWORK_STACK_PREFIX = "manila-dhss-service-network-"
"""The read-only stacks that read a service network's subnets (survey.py); no tenant's."""

Operation = Literal["preview", "up", "refresh", "destroy", "status", "rebuild", "verify"]
OPERATIONS: tuple[Operation, ...] = (
    "preview",
    "up",
    "refresh",
    "destroy",
    "status",
    "rebuild",
    "verify",
)


class FleetSetupError(Exception):
    """Nothing can run (no CLI, no passphrase, a backend directory that cannot be made)."""


@dataclass(frozen=True)
class FleetOptions:
    operation: Operation
    work_root: Path
    log_dir: Path
    parallel: int = 4
    backend_url: str = DEFAULT_BACKEND_URL
    secrets_provider: str = "passphrase"
    preview_only: bool = False
    """refresh: a drift check that changes nothing."""
    include_protected: bool = False
    """destroy: also destroy protected resources (the shares' volumes and their data)."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Extra environment for the CLI (never secrets: a workspace prints its env in repr)."""

    @property
    def label(self) -> str:
        if self.operation == "refresh" and self.preview_only:
            return "drift"
        return self.operation


def check_environment(options: FleetOptions, environ: Mapping[str, str]) -> None:
    """Fail before any stack is touched when the secrets passphrase is not provided."""
    if options.secrets_provider != "passphrase":
        return
    if "PULUMI_CONFIG_PASSPHRASE" in environ:
        return
    path = environ.get("PULUMI_CONFIG_PASSPHRASE_FILE")
    if path is None:
        raise FleetSetupError(
            "the stacks' secrets use a passphrase: set PULUMI_CONFIG_PASSPHRASE, or "
            "PULUMI_CONFIG_PASSPHRASE_FILE to a file holding it (never the tenants file), "
            "or choose another --secrets-provider"
        )
    if not os.access(os.path.expanduser(path), os.R_OK):
        raise FleetSetupError(f"PULUMI_CONFIG_PASSPHRASE_FILE={path} cannot be read")


def local_backend_dir(url: str) -> Path | None:
    """The directory of a file:// backend (the CLI expands ~ the same way), else None."""
    if not url.startswith("file://"):
        return None
    return Path(os.path.expanduser(url.removeprefix("file://")))
