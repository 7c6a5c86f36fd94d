"""Run the real program against the simulated cloud, as `pulumi up` would run it."""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dhss_components.simulated_cloud import RecordingMonitor, SimulatedCloud, run_program
from dhss_components.ssh_keys import PublicKey, stand_in_private_key
from tests.clouds import (
    DEVSTACK_ADMIN_NET,
    DEVSTACK_ADMIN_SUBNET,
    DEVSTACK_SERVICE_NET,
    DEVSTACK_TENANT_NET,
    DEVSTACK_TENANT_SUBNET,
)

PROJECT = "manila-dhss"


def write_key_pair(directory: Path) -> tuple[Path, Path]:
    """A well-formed ed25519 key pair: the private file holds the public key it pairs with
    (its secret bytes are random: it is never used to log in)."""
    key_type = b"ssh-ed25519"
    blob = struct.pack(">I", len(key_type)) + key_type + struct.pack(">I", 32) + os.urandom(32)
    key = PublicKey("ssh-ed25519", blob)
    public = directory / "id_ed25519.pub"
    public.write_text(f"{key.line} operator@host\n")
    private = directory / "id_ed25519"
    private.write_text(stand_in_private_key(key, os.urandom(64)))
    return public, private


def base_config(keys: tuple[Path, Path]) -> dict[str, Any]:
    """The dev stack's shape: router mode, one NFS share."""
    public, private = keys
    return {
        "backend": {
            "share_backend_name": "GENERIC1",
            "driver_handles_share_servers": True,
            "share_driver": "manila.share.drivers.generic.GenericShareDriver",
            "service_image_name": "manila-service-image-master",
            "service_instance_user": "manila",
            "path_to_public_key": str(public),
            "path_to_private_key": str(private),
            "service_network_id": DEVSTACK_SERVICE_NET,
            "service_network_host": "devstack",
        },
        "shareNetwork": {
            "neutron_net_id": DEVSTACK_TENANT_NET,
            "neutron_subnet_id": DEVSTACK_TENANT_SUBNET,
        },
        "shares": [
            {
                "name": "projects",
                "size": 10,
                "share_proto": "NFS",
                "access_rules": [
                    {"access_type": "ip", "access_to": "10.0.0.0/26", "access_level": "rw"}
                ],
            }
        ],
    }


def with_admin(config: dict[str, Any]) -> dict[str, Any]:
    config["backend"]["admin_network_id"] = DEVSTACK_ADMIN_NET
    config["backend"]["admin_subnet_id"] = DEVSTACK_ADMIN_SUBNET
    return config


@dataclass
class StackRun:
    cloud: SimulatedCloud
    monitor: RecordingMonitor
    outputs: dict[str, Any]

    def inputs(self, typ: str, name_contains: str = "") -> dict[str, Any]:
        return self.cloud.one(typ, name_contains).inputs


def run_stack(
    cloud: SimulatedCloud,
    config: dict[str, Any],
    *,
    stack: str = "dev",
    secret_keys: tuple[str, ...] = (),
) -> StackRun:
    """Run the program once; raise what it raises. Outputs are the stack outputs, resolved."""
    run = run_program(cloud, config, project=PROJECT, stack=stack, secret_keys=secret_keys)
    return StackRun(cloud, run.monitor, run.outputs)
