"""What the offline plan stands in for what this machine cannot have, and says so.

Key files that are not here become throwaway keys, encrypted values placeholders, and the
simulated cloud holds exactly what the config refers to, with what it had to assume said in
so many words.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..config import NAMESPACE, StackSpec
from ..simulated_cloud import SimulatedCloud
from ..ssh_keys import PublicKey, stand_in_private_key

DEFAULT_TENANT_SUBNET_CIDR = "10.0.0.0/26"
"""DevStack's private subnet; a stack file does not say its tenant subnet's CIDR."""
DEFAULT_ADMIN_SUBNET_CIDR = "192.0.2.0/24"
"""A documentation range standing in for the admin subnet's CIDR."""
SECRET_PLACEHOLDER = "plan-placeholder-secret"
SIMULATED_ROUTER_ID = "<id of the tenant subnet's router>"


# -- what cannot be had on this machine ----------------------------------------------------------


def placeholder_key_pair(directory: Path) -> tuple[Path, Path]:
    """A well-formed, fixed ed25519 public key and a PEM-shaped private key.

    They log in nowhere: they only let the config checks and the program run. Fixed bytes,
    so two plans of the same stack print the same keypair input.
    """
    key_type = b"ssh-ed25519"
    body = hashlib.sha256(b"manila-dhss offline plan placeholder key").digest()
    blob = struct.pack(">I", len(key_type)) + key_type + struct.pack(">I", len(body)) + body
    key = PublicKey("ssh-ed25519", blob)
    public = directory / "placeholder_ed25519.pub"
    public.write_text(f"{key.line} manila-dhss-plan\n")
    private = directory / "placeholder_ed25519"
    private.write_text(stand_in_private_key(key, body * 2))
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
    zone = backend.backend_availability_zone or backend.storage_availability_zone
    cloud = SimulatedCloud(
        flavors=(backend.service_instance_flavor_id,), zones=(zone,) if zone else ("nova",)
    )
    assumed = [f"flavor {backend.service_instance_flavor_id} exists"]
    if zone:
        assumed.append(f"Nova and Cinder have availability zone {zone}")
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
    mode = backend.network_mode
    if mode.router:
        cloud.add_router(share_network.neutron_subnet_id, SIMULATED_ROUTER_ID)
        assumed.append("a router holds its gateway")
    if "admin" in mode.nics and backend.admin_network_id and backend.admin_subnet_id:
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
