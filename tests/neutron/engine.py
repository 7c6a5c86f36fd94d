"""A minimal deployment engine: successive runs of the real program move a cloud like
``pulumi up`` and ``pulumi destroy`` would.

Pulumi's mocks only ever create. Here each registration is compared with the stack's state
from the previous run (by URN): a new resource is created, an unchanged one left alone, a
changed one updated in place, or replaced where the provider would force a new resource
(``force_new.py``): create the new one now and delete the old one at the end, or delete
first with ``deleteBeforeReplace``. Resources the run no longer declares, and replaced ones,
are deleted after the run in reverse dependency order. The state stays between runs, as a
stack's checkpoint does; a failed run keeps what it did and deletes nothing.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pulumi.runtime import MockCallArgs, MockResourceArgs, Mocks

from dhss_components.simulated_cloud import RecordingMonitor, run_program
from tests.stack_run import PROJECT

from .cloud import NeutronCloud
from .force_new import COMMANDS, FORCE_NEW, replaces

Op = Literal["create", "same", "update", "replace", "delete"]


class EngineError(Exception):
    """What the Pulumi engine itself would refuse (a protected resource's delete)."""


@dataclass
class ResourceState:
    """One resource in the stack's state."""

    urn: str
    type: str
    custom: bool
    id: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    dependencies: set[str]
    """URNs it depends on (its inputs' resources, depends_on, its parent)."""
    protect: bool
    retain_on_delete: bool = False
    """Deleted from the state only: the cloud keeps it (``retain_on_delete``)."""


@dataclass(frozen=True)
class Step:
    op: Op
    urn: str
    type: str
    changed: tuple[str, ...] = ()
    """The inputs whose change made an update or a replacement."""

    @property
    def name(self) -> str:
        return self.urn.split("::")[-1]


@dataclass
class UpResult:
    outputs: dict[str, Any]
    steps: list[Step]

    def changes(self) -> list[Step]:
        """Every step that touched the cloud."""
        return [step for step in self.steps if step.op != "same"]


class _RunMocks(Mocks):
    """The mocks of one run: registrations go to the engine, invokes to the cloud."""

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment
        self.request: Any = None

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        return self.deployment._register(self.request, args)

    def call(self, args: MockCallArgs) -> dict[str, Any]:  # type: ignore[override]
        return self.deployment.cloud.call(args)


class _EngineMonitor(RecordingMonitor):
    def __init__(self, mocks: _RunMocks) -> None:
        super().__init__(mocks)
        self.run_mocks = mocks

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 (gRPC method name)
        # The SDK sends registrations one at a time (one worker thread, see run_program).
        self.run_mocks.request = request
        return super().RegisterResource(request)


@dataclass
class Deployment:
    """One stack over successive runs: its state and the cloud it moves."""

    cloud: NeutronCloud
    stack: str = "dev"
    state: dict[str, ResourceState] = field(default_factory=dict)
    """By URN, in registration order."""
    pending_deletes: list[ResourceState] = field(default_factory=list)
    """Replaced resources whose old instance is deleted after the run."""
    steps: list[Step] = field(default_factory=list)
    monitor: RecordingMonitor | None = None
    """The last run's registrations."""
    _registered: set[str] = field(default_factory=set)

    # -- operations --------------------------------------------------------------------------

    def up(self, config: Mapping[str, Any]) -> UpResult:
        """Run the program with `config` and move the cloud to what it declares."""
        run = run_program(
            self.cloud,
            copy.deepcopy(dict(config)),
            project=PROJECT,
            stack=self.stack,
            monitor=self.start_run(),
        )
        self.finish_run()
        return UpResult(run.outputs, list(self.steps))

    def start_run(self) -> RecordingMonitor:
        """The monitor for one run of the program: its registrations come to this engine.
        (The fleet's stand-in CLI runs the program through the Automation API with it.)"""
        self.steps = []
        self._registered = set()
        self.monitor = _EngineMonitor(_RunMocks(self))
        return self.monitor

    def finish_run(self) -> None:
        """What a successful run does last: delete the replaced and the undeclared."""
        gone = [r for urn, r in self.state.items() if urn not in self._registered]
        self._delete([*self.pending_deletes, *gone])

    # -- kept between processes (the stand-in CLI's runs) --------------------------------------

    def to_json(self) -> dict[str, Any]:
        def one(r: ResourceState) -> dict[str, Any]:
            return {**r.__dict__, "dependencies": sorted(r.dependencies)}

        return {
            "state": [one(r) for r in self.state.values()],
            "pending_deletes": [one(r) for r in self.pending_deletes],
        }

    def load(self, saved: Mapping[str, Any]) -> None:
        def one(r: Mapping[str, Any]) -> ResourceState:
            return ResourceState(**{**r, "dependencies": set(r["dependencies"])})

        self.state = {r["urn"]: one(r) for r in saved.get("state", [])}
        self.pending_deletes = [one(r) for r in saved.get("pending_deletes", [])]

    def destroy(self) -> list[Step]:
        """Delete everything in the stack, dependents first."""
        self.steps = []
        self._delete([*self.pending_deletes, *self.state.values()])
        return list(self.steps)

    def resources(self, type_: str) -> list[ResourceState]:
        return [r for r in self.state.values() if r.type == type_]

    def one(self, type_: str, name_contains: str = "") -> ResourceState:
        found = [r for r in self.resources(type_) if name_contains in r.urn.split("::")[-1]]
        assert len(found) == 1, f"expected one {type_} named *{name_contains}*, found {found}"
        return found[0]

    # -- one registration --------------------------------------------------------------------

    def _register(self, request: Any, args: MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        assert self.monitor is not None
        urn = self.monitor.make_urn(request.parent, request.type, request.name)
        inputs: dict[str, Any] = dict(args.inputs)
        prior = self.state.get(urn)
        if prior is not None:
            for name in request.ignoreChanges:
                if name in prior.inputs:
                    inputs[name] = prior.inputs[name]
        dependencies = set(request.dependencies)
        if request.parent and "::pulumi:pulumi:Stack::" not in request.parent:
            dependencies.add(request.parent)
        if urn in self._registered:
            raise EngineError(f"Duplicate resource URN '{urn}'; try giving it a unique name")
        self._registered.add(urn)

        custom = bool(request.custom)
        if custom and request.type not in FORCE_NEW and request.type not in COMMANDS:
            raise EngineError(
                f"{request.type}: no ForceNew entry in tests/neutron/force_new.py; add the "
                "provider's table for it"
            )

        changed = set()
        if prior is not None:
            changed = {
                key
                for key in inputs.keys() | prior.inputs.keys()
                if inputs.get(key) != prior.inputs.get(key)
            }
        if prior is None:
            op: Op = "create"
            resource_id, outputs = self._create(request, inputs, custom)
        elif not changed:
            op, resource_id, outputs = "same", prior.id, prior.outputs
        elif not custom:
            op, resource_id, outputs = "update", prior.id, inputs
        elif replaces(request.type, changed, inputs, list(request.replaceOnChanges)):
            op = "replace"
            if request.deleteBeforeReplace:
                self._delete([prior])
            else:
                self.pending_deletes.append(prior)
            resource_id, outputs = self._create(request, inputs, custom)
        else:
            op = "update"
            resource_id = prior.id
            outputs = self.cloud.update(request.type, prior.id, inputs, changed, prior.outputs)

        self.state[urn] = ResourceState(
            urn=urn,
            type=request.type,
            custom=custom,
            id=resource_id,
            inputs=inputs,
            outputs=outputs,
            dependencies=dependencies,
            protect=bool(request.protect),
            retain_on_delete=bool(request.retainOnDelete),
        )
        self.steps.append(Step(op, urn, request.type, tuple(sorted(changed))))
        return (resource_id if custom else None), outputs

    def _create(
        self, request: Any, inputs: dict[str, Any], custom: bool
    ) -> tuple[str, dict[str, Any]]:
        if not custom:
            return "", inputs
        return self.cloud.create(request.type, request.name, inputs)

    # -- deletes -----------------------------------------------------------------------------

    def _delete(self, doomed: list[ResourceState]) -> None:
        protected = [r.urn for r in doomed if r.protect]
        if protected:
            raise EngineError(
                f"resource(s) {', '.join(protected)} cannot be deleted because they are "
                "protected; remove the `protect` option (here: dhss:backend.protect_volumes: "
                "false) and run up again"
            )
        for resource in _dependents_first(doomed):
            if resource.custom and not resource.retain_on_delete:
                self.cloud.delete(resource.type, resource.id, resource.outputs)
            if any(r is resource for r in self.pending_deletes):
                self.pending_deletes = [r for r in self.pending_deletes if r is not resource]
            elif self.state.get(resource.urn) is resource:
                del self.state[resource.urn]
            self.steps.append(Step("delete", resource.urn, resource.type))


def _dependents_first(doomed: list[ResourceState]) -> list[ResourceState]:
    """Reverse dependency order: nothing is deleted while something still to be deleted
    depends on it. Among the free ones, the last registered goes first."""
    remaining = list(doomed)
    ordered: list[ResourceState] = []
    while remaining:
        needed = {urn for r in remaining for urn in r.dependencies}
        free = [r for r in remaining if r.urn not in needed]
        if not free:
            raise EngineError(f"dependency cycle among {[r.urn for r in remaining]}")
        chosen = free[-1]
        ordered.append(chosen)
        remaining = [r for r in remaining if r is not chosen]
    return ordered
