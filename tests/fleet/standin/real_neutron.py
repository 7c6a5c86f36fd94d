"""The stand-in's cloud on a real Neutron API server (``neutron`` in standin.json).

With ``neutron: {endpoint, project, image, log}``, each stack's program meets the real
``neutron-server`` of tests/neutron instead of the simulated network: its lookups are Neutron's
answers, and an ``up`` creates, updates, replaces and deletes its networks, subnets, router
interfaces, ports, security groups and rules in Neutron, through the engine of tests/neutron
(``Deployment``: the provider's ForceNew table, delete-before-replace, deletes after the run),
under the service project. Nova, Cinder and Glance stay simulated (``NeutronCloud``). So
whatever Neutron refuses (an overlapping subnet, above all) fails that stack's ``up`` with
Neutron's own message, whoever made the other subnet.

The engine's state is kept per stack in ``<root>/deployments/<stack>.json``, beside the
checkpoint (the checkpoint is what the CLI shows; this is what the engine knows of the cloud,
inputs in the clear), and a failed ``up`` keeps what it made, as Pulumi's state does. A
``preview`` makes no request but the lookups.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pulumi.runtime import MockCallArgs, MockResourceArgs, Mocks

from dhss_components.simulated_cloud import RecordingMonitor
from tests.neutron.client import Body, NeutronClient
from tests.neutron.cloud import NeutronCloud
from tests.neutron.engine import Deployment
from tests.neutron.mapping import SUBNET

INSTANCE = "openstack:compute/instance:Instance"
VOLUME = "openstack:blockstorage/volume:Volume"
KEYPAIR = "openstack:compute/keypair:Keypair"


def enabled(settings: dict[str, Any]) -> bool:
    return "neutron" in settings


def _path(root: Path, stack: str) -> Path:
    return root / "deployments" / f"{stack}.json"


class _HeldNeutronCloud(NeutronCloud):
    """Neutron, with a pause before the stack's service subnet is made (``hold_subnet``)."""

    def __init__(self, client: NeutronClient, project: str, before_subnet: Callable[[], None]):
        super().__init__(client, project)
        self.before_subnet = before_subnet

    def create(self, type_: str, name: str, inputs: Mapping[str, Any]) -> tuple[str, Body]:
        if type_ == SUBNET:
            self.before_subnet()
        return super().create(type_, name, inputs)


def deployment(
    root: Path,
    settings: dict[str, Any],
    stack: str,
    *,
    before_subnet: Callable[[], None] = lambda: None,
) -> Deployment:
    """The stack's engine, with the state its last runs left, on a cloud that knows it."""
    config = settings["neutron"]
    client = NeutronClient(config["endpoint"], Path(config["log"]) if config.get("log") else None)
    cloud = _HeldNeutronCloud(client, config["project"], before_subnet)
    cloud.add_image(config["image"])
    found = Deployment(cloud, stack=stack)
    path = _path(root, stack)
    if path.exists():
        found.load(json.loads(path.read_text()))
    # What the simulated Nova and Cinder made in earlier runs (each run is a new process's).
    for resource in found.state.values():
        if resource.type == INSTANCE:
            cloud.instances.add(resource.id)
        elif resource.type == VOLUME:
            cloud.volumes[resource.id] = int(resource.inputs.get("size", 1))
        elif resource.type == KEYPAIR:
            cloud.keypairs[str(resource.inputs.get("name", ""))] = resource.id
    return found


def save(root: Path, stack: str, engine: Deployment) -> None:
    path = _path(root, stack)
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(engine.to_json()))


class _Planning(Mocks):
    """A preview: lookups are Neutron's answers; nothing is made (ids are unknown)."""

    def __init__(self, cloud: NeutronCloud) -> None:
        self.cloud = cloud

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        return None, dict(args.inputs)

    def call(self, args: MockCallArgs) -> dict[str, Any]:  # type: ignore[override]
        return self.cloud.call(args)


def monitor(engine: Deployment, *, preview: bool) -> RecordingMonitor:
    if preview:
        return RecordingMonitor(_Planning(engine.cloud))
    return engine.start_run()


def destroy(root: Path, stack: str, engine: Deployment, kept: set[str]) -> None:
    """Delete in Neutron (and the simulated rest) everything but ``kept`` (by URN)."""
    doomed = [r for urn, r in engine.state.items() if urn not in kept]
    try:
        engine._delete([*engine.pending_deletes, *doomed])
    finally:
        save(root, stack, engine)  # what was deleted is gone, whatever failed after it
