"""The engine half of the stand-in: run an inline program for real, as the CLI does.

The Automation API serves the program as a LanguageRuntime on ``--client``. The engine hosts a
ResourceMonitor and an Engine service, then calls ``Run`` on that runtime with the stack's
config; the program's resources, invokes and logs come back over gRPC. Here the monitor is
the repository's ``RecordingMonitor`` over a ``SimulatedCloud``, so the program meets an
OpenStack-shaped cloud and every registration is kept, with its raw inputs, for the tests.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime import settings
from pulumi.runtime.proto import (
    engine_pb2,
    engine_pb2_grpc,
    events_pb2,
    events_pb2_grpc,
    language_pb2,
    language_pb2_grpc,
    resource_pb2,
    resource_pb2_grpc,
)

from dhss_components.simulated_cloud import FORCE_NEW, RecordingMonitor, SimulatedCloud

from . import nova
from .state import SECRET_SIG, SECRET_SIG_KEY, strip_secrets

STACK_TYPE = "pulumi:pulumi:Stack"


@dataclass(frozen=True)
class Prior:
    """A resource as the stack's checkpoint has it."""

    inputs: dict[str, Any]
    id: str
    outputs: dict[str, Any]


def step_op(
    type_: str,
    inputs: Mapping[str, Any],
    prior: Prior | None,
    *,
    replace_on_changes: Sequence[str] = (),
    ignore_changes: Sequence[str] = (),
) -> str:
    """What the engine does with a registration: create, same, update or replace (an input the
    provider cannot update in place changed: ``FORCE_NEW``, or one named in
    ``replace_on_changes``)."""
    if prior is None:
        return "create"
    before, after = strip_secrets(prior.inputs), strip_secrets(dict(inputs))
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    changed -= set(ignore_changes)
    if not changed:
        return "same"
    if changed & (FORCE_NEW.get(type_, frozenset()) | set(replace_on_changes)):
        return "replace"
    return "update"


@dataclass
class Diagnostic:
    severity: str
    message: str
    urn: str


@dataclass
class ProgramRun:
    """What the program declared, in order, and what it exported."""

    registrations: list[dict[str, Any]] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    error: str = ""
    root_urn: str = ""


class _Monitor(resource_pb2_grpc.ResourceMonitorServicer):
    """gRPC face of the mock monitor. Each handler runs on a gRPC thread, where Pulumi's
    context (stack, project) is unset: it is set again for every call."""

    def __init__(
        self,
        *,
        mock: RecordingMonitor,
        project: str,
        stack: str,
        run: ProgramRun,
        on_register: Callable[[dict[str, Any]], None],
        prior: Mapping[str, Prior],
        nova_ids: bool = True,
    ) -> None:
        self.nova_ids = nova_ids
        """Give new servers and attachments Nova's ids here (the simulated cloud's are fixed)."""
        self.prior = prior
        self.mock = mock
        self.project = project
        self.stack = stack
        self.run = run
        self.on_register = on_register
        self._lock = threading.Lock()

    def _context(self) -> None:
        settings._set_project(self.project)
        settings._set_stack(self.stack)

    def SupportsFeature(self, request: Any, context: Any) -> Any:  # noqa: N802
        self._context()
        answer = self.mock.SupportsFeature(request)  # type: ignore[no-untyped-call]
        return resource_pb2.SupportsFeatureResponse(hasSupport=answer.hasSupport)

    def GetDeploymentInfo(self, request: Any, context: Any) -> Any:  # noqa: N802
        return self.mock.GetDeploymentInfo(request)  # type: ignore[no-untyped-call]

    def Invoke(self, request: Any, context: Any) -> Any:  # noqa: N802
        self._context()
        return self.mock.Invoke(request)  # type: ignore[no-untyped-call]

    def RegisterResource(self, request: Any, context: Any) -> Any:  # noqa: N802
        self._context()
        with self._lock:
            response = self.mock.RegisterResource(request)
        inputs = json_format.MessageToDict(request.object)
        prior = self.prior.get(response.urn)
        op = step_op(
            request.type,
            inputs,
            prior,
            replace_on_changes=list(request.replaceOnChanges),
            ignore_changes=list(request.ignoreChanges),
        )
        if prior is not None and op != "replace":
            # Like the engine: the resource keeps its id; unchanged inputs make no provider
            # call, and the outputs in the state stand (the cloud would not hand out a new
            # MAC address on a re-run).
            outputs = prior.outputs if op == "same" else json_format.MessageToDict(response.object)
            response = resource_pb2.RegisterResourceResponse(
                urn=response.urn,
                id=prior.id,
                object=json_format.ParseDict(outputs, struct_pb2.Struct()),
            )
        elif self.nova_ids and request.type in (nova.INSTANCE, nova.VOLUME_ATTACH):
            # A new server is a new Nova server (a new id), a new attachment the provider's
            # <server>/<volume>.
            made = (
                nova.new_server_id()
                if request.type == nova.INSTANCE
                else nova.attachment_id(nova.plain(inputs))
            )
            response = resource_pb2.RegisterResourceResponse(
                urn=response.urn, id=made, object=response.object
            )
        if request.type == nova.INSTANCE and isinstance(self.mock.mocks, SimulatedCloud):
            # The cloud of this run knows the server by the id the program will attach to.
            self.mock.mocks.instances.add(response.id)
        record = {
            "op": op,
            "delete_before_replace": request.deleteBeforeReplace,
            "urn": response.urn,
            "type": request.type,
            "name": request.name,
            "parent": request.parent,
            "custom": request.custom,
            "protect": request.protect,
            "dependencies": list(request.dependencies),
            "inputs": inputs,
            "id": response.id,
            "outputs": json_format.MessageToDict(response.object),
        }
        if request.type == STACK_TYPE:
            self.run.root_urn = response.urn
        with self._lock:
            self.run.registrations.append(record)
        self.on_register(record)
        return response

    def RegisterResourceOutputs(self, request: Any, context: Any) -> Any:  # noqa: N802
        if request.urn == self.run.root_urn:
            self.run.outputs = json_format.MessageToDict(request.outputs)
        return empty_pb2.Empty()

    def ReadResource(self, request: Any, context: Any) -> Any:  # noqa: N802
        self._context()
        return self.mock.ReadResource(request)  # type: ignore[no-untyped-call]

    def RegisterPackage(self, request: Any, context: Any) -> Any:  # noqa: N802
        return self.mock.RegisterPackage(request)  # type: ignore[no-untyped-call]

    def SignalAndWaitForShutdown(self, request: Any, context: Any) -> Any:  # noqa: N802
        return empty_pb2.Empty()

    def RegisterStackTransform(self, request: Any, context: Any) -> Any:  # noqa: N802
        return empty_pb2.Empty()

    def RegisterStackInvokeTransform(self, request: Any, context: Any) -> Any:  # noqa: N802
        return empty_pb2.Empty()

    def RegisterResourceHook(self, request: Any, context: Any) -> Any:  # noqa: N802
        return empty_pb2.Empty()

    def RegisterErrorHook(self, request: Any, context: Any) -> Any:  # noqa: N802
        return empty_pb2.Empty()


_SEVERITY = {
    engine_pb2.DEBUG: "debug",
    engine_pb2.INFO: "info",
    engine_pb2.WARNING: "warning",
    engine_pb2.ERROR: "error",
}


class _Engine(engine_pb2_grpc.EngineServicer):
    def __init__(self, run: ProgramRun) -> None:
        self.run = run
        self.root = ""

    def Log(self, request: Any, context: Any) -> Any:  # noqa: N802
        severity = _SEVERITY.get(request.severity, "info")
        if severity != "debug":
            self.run.diagnostics.append(Diagnostic(severity, request.message, request.urn))
        return empty_pb2.Empty()

    def GetRootResource(self, request: Any, context: Any) -> Any:  # noqa: N802
        return engine_pb2.GetRootResourceResponse(urn=self.root)

    def SetRootResource(self, request: Any, context: Any) -> Any:  # noqa: N802
        self.root = request.urn
        return engine_pb2.SetRootResourceResponse()

    def RequirePulumiVersion(self, request: Any, context: Any) -> Any:  # noqa: N802
        return engine_pb2.RequirePulumiVersionResponse()


def run_program(
    *,
    client: str,
    cloud: SimulatedCloud | RecordingMonitor,
    project: str,
    stack: str,
    pwd: str,
    config: dict[str, str],
    secret_keys: list[str],
    dry_run: bool,
    parallel: int,
    on_register: Callable[[dict[str, Any]], None],
    prior: Mapping[str, Prior],
) -> ProgramRun:
    """Host the monitor and engine, call Run on the client's LanguageRuntime, return what the
    program did. ``Run`` returns when the program has finished."""
    settings._set_project(project)
    settings._set_stack(stack)
    run = ProgramRun()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    resource_pb2_grpc.add_ResourceMonitorServicer_to_server(
        _Monitor(
            # A cloud is answered by the simulated cloud's mocks; a monitor is an engine's own
            # (the real Neutron's, real_neutron.py).
            mock=cloud if isinstance(cloud, RecordingMonitor) else RecordingMonitor(cloud),
            nova_ids=not isinstance(cloud, RecordingMonitor),
            project=project,
            stack=stack,
            run=run,
            on_register=on_register,
            prior=prior,
        ),
        server,
    )
    engine_pb2_grpc.add_EngineServicer_to_server(_Engine(run), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(client) as channel:
            response = language_pb2_grpc.LanguageRuntimeStub(channel).Run(
                language_pb2.RunRequest(
                    project=project,
                    stack=stack,
                    pwd=pwd,
                    program=".",
                    args=[f"127.0.0.1:{port}"],
                    config=config,
                    configSecretKeys=secret_keys,
                    dryRun=dry_run,
                    parallel=parallel,
                    monitor_address=f"127.0.0.1:{port}",
                    organization="organization",
                )
            )
        run.error = response.error
    finally:
        server.stop(0)
    return run


def plain_outputs(raw: dict[str, Any]) -> dict[str, tuple[Any, bool]]:
    """Stack outputs as sent by the SDK -> name: (value, secret)."""

    def unwrap(value: Any) -> tuple[Any, bool]:
        if isinstance(value, dict):
            if value.get(SECRET_SIG_KEY) == SECRET_SIG:
                inner, _ = unwrap(value.get("value"))
                return inner, True
            items = {k: unwrap(v) for k, v in value.items()}
            return {k: v for k, (v, _) in items.items()}, any(s for _, s in items.values())
        if isinstance(value, list):
            items_list = [unwrap(v) for v in value]
            return [v for v, _ in items_list], any(s for _, s in items_list)
        return value, False

    return {name: unwrap(value) for name, value in raw.items()}


class EventStream:
    """Engine events to the Automation API's event log (gRPC since CLI 3.206, else a file)."""

    def __init__(self, target: str | None) -> None:
        self.target = target
        self.sequence = 0
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._file = None
        if target and target.startswith("tcp://"):
            self._channel = grpc.insecure_channel(target.removeprefix("tcp://"))
            stub = events_pb2_grpc.EventsStub(self._channel)
            self._thread = threading.Thread(
                target=lambda: stub.StreamEvents(self._requests()), daemon=True
            )
            self._thread.start()
        elif target:
            self._file = open(target, "a", encoding="utf-8")  # noqa: SIM115

    def _requests(self) -> Iterator[Any]:
        while (item := self._queue.get()) is not None:
            yield events_pb2.EventRequest(event=item)

    def send(self, **event: Any) -> None:

        self.sequence += 1
        line = json.dumps({"sequence": self.sequence, "timestamp": int(time.time()), **event})
        if self._thread is not None:
            self._queue.put(line)
        elif self._file is not None:
            self._file.write(line + "\n")
            self._file.flush()

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(10)
            self._channel.close()
            self._thread = None
        if self._file is not None:
            self._file.close()
            self._file = None
