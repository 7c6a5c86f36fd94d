"""What the offline plan runs against: the stack file, stand-ins, and a cloud to match.

The stack file is read as the Pulumi CLI reads it (the ``dhss:*`` keys of ``config:``).
What this machine cannot have is replaced, and every replacement is reported: key files that
are not here become throwaway keys, encrypted values placeholders. The simulated cloud holds
exactly what the config refers to, with what it had to assume said in so many words.
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .config import NAMESPACE, Problem, StackSpec
from .simulated_cloud import SimulatedCloud

DEFAULT_TENANT_SUBNET_CIDR = "10.0.0.0/26"
"""DevStack's private subnet; a stack file does not say its tenant subnet's CIDR."""
DEFAULT_ADMIN_SUBNET_CIDR = "192.0.2.0/24"
"""A documentation range standing in for the admin subnet's CIDR."""
SECRET_PLACEHOLDER = "plan-placeholder-secret"
SIMULATED_ROUTER_ID = "<id of the tenant subnet's router>"


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
    try:
        if project_file.is_file():
            project = str(_load_yaml(project_file).get("name") or project)
        document = _load_yaml(path)
    except yaml.YAMLError as exc:
        raise PlanError(f"{exc}: not valid YAML; fix the file") from None
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
    document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(document, dict):
        raise PlanError(f"{path}: expected a YAML mapping at the top")
    return document


# -- what cannot be had on this machine ----------------------------------------------------------


def placeholder_key_pair(directory: Path) -> tuple[Path, Path]:
    """A well-formed, fixed ed25519 public key and a PEM-shaped private key.

    They log in nowhere: they only let the config checks and the program run. Fixed bytes,
    so two plans of the same stack print the same keypair input.
    """
    key_type = b"ssh-ed25519"
    body = hashlib.sha256(b"manila-dhss offline plan placeholder key").digest()
    blob = struct.pack(">I", len(key_type)) + key_type + struct.pack(">I", len(body)) + body
    public = directory / "placeholder_ed25519.pub"
    public.write_text(f"ssh-ed25519 {base64.b64encode(blob).decode()} manila-dhss-plan\n")
    private = directory / "placeholder_ed25519"
    private.write_text(
        "-----BEGIN OPENSSH PRIVATE KEY-----\n"
        + base64.b64encode(body * 3).decode()
        + "\n-----END OPENSSH PRIVATE KEY-----\n"
    )
    return public, private


def _is_secure(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"secure"}


def substitute(config: Mapping[str, Any], directory: Path) -> tuple[dict[str, Any], list[str]]:
    """The config with encrypted values and missing key files replaced; what was replaced."""
    notices: list[str] = []
    public, private = placeholder_key_pair(directory)

    def _key_file(key: str, value: Any, where: str) -> Any:
        if key not in ("path_to_public_key", "path_to_private_key") or not isinstance(value, str):
            return value
        if Path(os.path.expanduser(value)).exists():
            return value
        notices.append(
            f"`{where}` names {value}, which does not exist on this machine; "
            "a throwaway placeholder key stands in for it."
        )
        return str(public if key == "path_to_public_key" else private)

    def walk(value: Any, where: str) -> Any:
        if _is_secure(value):
            notices.append(
                f"`{where}` is encrypted in the stack file; the plan uses a placeholder "
                "(it never decrypts secrets)."
            )
            return SECRET_PLACEHOLDER
        if isinstance(value, dict):
            result = {}
            for key, item in value.items():
                path = f"{where}.{key}"
                result[key] = walk(_key_file(key, item, path), path)
            return result
        if isinstance(value, list):
            return [walk(item, f"{where}[{index}]") for index, item in enumerate(value)]
        return value

    result = {key: walk(value, f"{NAMESPACE}:{key}") for key, value in config.items()}
    return result, notices


def simulated_cloud_for(
    spec: StackSpec, *, tenant_subnet_cidr: str, admin_subnet_cidr: str
) -> tuple[SimulatedCloud, list[str]]:
    """A cloud holding exactly what the config refers to, and what was assumed about it."""
    backend, share_network = spec.backend, spec.share_network
    cloud = SimulatedCloud()
    assumed = []
    cloud.add_network("tenant", share_network.neutron_net_id)
    cloud.add_subnet(
        share_network.neutron_net_id,
        tenant_subnet_cidr,
        name="tenant-subnet",
        subnet_id=share_network.neutron_subnet_id,
    )
    assumed.append(
        f"tenant subnet {share_network.neutron_subnet_id} is {tenant_subnet_cidr} "
        "(--tenant-subnet-cidr)"
    )
    if not backend.connect_share_server_to_tenant_network:
        cloud.add_router(share_network.neutron_subnet_id, SIMULATED_ROUTER_ID)
        assumed.append("a router holds its gateway")
    if backend.admin_network_id and backend.admin_subnet_id:
        cloud.add_network("admin", backend.admin_network_id)
        cloud.add_subnet(
            backend.admin_network_id,
            admin_subnet_cidr,
            name="admin-subnet",
            subnet_id=backend.admin_subnet_id,
        )
        assumed.append(
            f"admin subnet {backend.admin_subnet_id} is {admin_subnet_cidr} (--admin-subnet-cidr)"
        )
    if backend.service_network_id:
        cloud.add_network(backend.service_network_name, backend.service_network_id)
        assumed.append(
            f"service network {backend.service_network_id} holds no other service subnet yet"
        )
    cloud.add_image(
        backend.service_image_name, image_id=f"<id of image {backend.service_image_name}>"
    )
    assumed.append(f"exactly one active image is named {backend.service_image_name}")
    return cloud, assumed
