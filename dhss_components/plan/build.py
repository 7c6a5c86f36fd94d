"""The offline plan: what a stack would declare, from its stack file alone.

``make_plan`` reads ``Pulumi.<stack>.yaml``, builds a simulated cloud that holds what the
config refers to (the tenant network and subnet, their router, the admin and service
networks, the service image), runs the real program (``share_server_program``) against it
under Pulumi's mocks, and turns what it declared into a ``Plan``: the resources, their
dependency graph, the security rules, the export locations and the script each share runs.

What the plan cannot know it says at the top: key files that are not on this machine are
replaced by throwaway keys, encrypted config values by placeholders, and the tenant and admin
subnets' CIDRs are assumed (``--tenant-subnet-cidr``, ``--admin-subnet-cidr``). Addresses,
MACs and ids are the simulated cloud's; ids appear as ``<id of NAME>``.
"""

from __future__ import annotations

import ipaddress
import itertools
import shlex
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..config import InvalidStackConfig, parse_stack_config
from ..simulated_cloud import SECRET_SIG, RecordingMonitor, SimulatedCloud
from ..simulated_cloud import run_program as run_simulated
from .model import Plan, PlannedResource, ShareCommands
from .stack_file import PlanError, StackFile, read_stack_file
from .stand_ins import (
    DEFAULT_ADMIN_SUBNET_CIDR,
    DEFAULT_TENANT_SUBNET_CIDR,
    simulated_cloud_for,
    substitute,
)

SECRET_KEY = "4dabf18193072939515e22adb298388d"
"""The key under which the engine marks a secret value (with SECRET_SIG as its value)."""

# The inputs a reviewer looks at, per resource type. Other inputs are left out of the table
# (they are defaults or bookkeeping); the JSON keeps the same selection.
IMPORTANT_INPUTS: dict[str, tuple[str, ...]] = {
    "openstack:networking/network:Network": ("name", "adminStateUp"),
    "openstack:networking/subnet:Subnet": (
        "name",
        "networkId",
        "cidr",
        "noGateway",
        "enableDhcp",
        "allocationPools",
    ),
    "openstack:networking/routerInterface:RouterInterface": ("routerId", "subnetId"),
    "openstack:networking/port:Port": (
        "networkId",
        "fixedIps",
        "deviceId",
        "deviceOwner",
        "binding",
        "portSecurityEnabled",
        "securityGroupIds",
    ),
    "openstack:networking/secGroup:SecGroup": ("name",),
    "openstack:networking/secGroupRule:SecGroupRule": (
        "securityGroupId",
        "direction",
        "ethertype",
        "protocol",
        "portRangeMin",
        "portRangeMax",
        "remoteIpPrefix",
        "description",
    ),
    "openstack:compute/keypair:Keypair": ("name", "publicKey"),
    "openstack:compute/instance:Instance": (
        "name",
        "imageId",
        "flavorId",
        "keyPair",
        "networks",
        "availabilityZone",
        "stopBeforeDestroy",
    ),
    "openstack:blockstorage/volume:Volume": (
        "name",
        "size",
        "volumeType",
        "availabilityZone",
        "enableOnlineResize",
        "snapshotId",
        "sourceVolId",
    ),
    "openstack:compute/volumeAttach:VolumeAttach": ("instanceId", "volumeId"),
    "command:remote:Command": ("connection", "create", "update", "delete", "triggers", "logging"),
    "command:local:Command": ("create", "delete", "triggers"),
}
COMMAND_TYPES = ("command:remote:Command", "command:local:Command")
SHARE_COMPONENT = "manila-dhss:index:Share"
SECURITY_RULE = "openstack:networking/secGroupRule:SecGroupRule"
# What of an SSH connection a reviewer needs; credentials are never shown.
CONNECTION_FIELDS = ("host", "port", "user", "dialErrorLimit", "perDialTimeout")
CREDENTIAL_FIELDS = ("privateKey", "password", "privateKeyPassword")
UNVERIFIED = "UNVERIFIED: any machine answering on this address is trusted"


# -- running the real program ------------------------------------------------------------------


def run_program(
    cloud: SimulatedCloud, config: Mapping[str, Any], *, project: str, stack: str
) -> tuple[RecordingMonitor, dict[str, Any]]:
    """The real program once, under mocks; its registrations and its resolved stack outputs."""
    run = run_simulated(cloud, config, project=project, stack=stack)
    return run.monitor, run.outputs


# -- from registrations to a plan ----------------------------------------------------------------


def _number(value: Any) -> Any:
    """Protobuf numbers are floats; 10.0 is printed as 10."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _clean(value: Any, names_by_id: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        if value.get(SECRET_KEY) == SECRET_SIG:
            return "[secret]"
        # Sorted: the engine's maps carry no order.
        return {key: _clean(value[key], names_by_id) for key in sorted(value)}
    if isinstance(value, list):
        return [_clean(item, names_by_id) for item in value]
    if isinstance(value, str):
        for resource_id, name in names_by_id.items():
            if resource_id in value:
                value = value.replace(resource_id, f"<id of {name}>")
        return value
    return _number(value)


def _connection(value: Any, names_by_id: Mapping[str, str]) -> Any:
    """Where the commands SSH to, as a reviewer needs it; never a credential."""
    if isinstance(value, dict) and value.get(SECRET_KEY) == SECRET_SIG:
        value = value.get("value")
    if not isinstance(value, dict):
        return "[secret]"
    shown: dict[str, Any] = {k: _number(value[k]) for k in CONNECTION_FIELDS if k in value}
    # Which server the commands will accept: the pinned host key, or a loud "unverified".
    shown["hostKey"] = value.get("hostKey") or UNVERIFIED
    for key in CREDENTIAL_FIELDS:
        if value.get(key):
            shown[key] = "[secret]"
    if isinstance(value.get("proxy"), dict):
        shown["proxy"] = _connection(value["proxy"], names_by_id)
    return _clean(shown, names_by_id)


def _important_inputs(
    typ: str, inputs: Mapping[str, Any], names_by_id: Mapping[str, str]
) -> dict[str, Any]:
    keys = IMPORTANT_INPUTS.get(typ, tuple(inputs))
    result: dict[str, Any] = {}
    for key in keys:
        if key not in inputs or inputs[key] in (None, "", [], {}):
            continue
        if key == "connection":
            result[key] = _connection(inputs[key], names_by_id)
        else:
            result[key] = _clean(inputs[key], names_by_id)
    return result


def reduced_edges(depends_on: Mapping[str, Sequence[str]]) -> list[tuple[str, str]]:
    """(dependency, dependent) pairs, leaving out any edge that another path already implies."""

    def reachable(start: str, skip: str) -> set[str]:
        seen: set[str] = set()
        stack = [d for d in depends_on.get(start, ()) if d != skip]
        while stack:
            node = stack.pop()
            if node not in seen:
                seen.add(node)
                stack.extend(depends_on.get(node, ()))
        return seen

    edges = []
    for node, dependencies in depends_on.items():
        for dependency in dict.fromkeys(dependencies):
            if dependency not in reachable(node, skip=dependency):
                edges.append((dependency, node))
    return edges


def creation_order(depends_on: Mapping[str, Sequence[str]]) -> list[str]:
    """Every node after what it depends on; ties by name, so the order never varies by run."""
    waiting = {node: set(deps) & set(depends_on) for node, deps in depends_on.items()}
    order: list[str] = []
    while waiting:
        ready = sorted(node for node, deps in waiting.items() if not deps) or sorted(waiting)[:1]
        node = ready[0]
        order.append(node)
        del waiting[node]
        for deps in waiting.values():
            deps.discard(node)
    return order


def _share_name(command_text: str) -> str | None:
    """``--name X`` on the command's first line (share_script's contract)."""
    words = shlex.split(command_text.split("\n", 1)[0].split("<<", 1)[0])
    for flag, value in itertools.pairwise(words):
        if flag == "--name":
            return value
    return None


def build_plan(
    stack_file: StackFile,
    notices: Sequence[str],
    monitor: RecordingMonitor,
    cloud: SimulatedCloud,
    outputs: Mapping[str, Any],
) -> Plan:
    registrations = list(monitor.registrations.values())
    name_by_urn = {r.urn: r.name for r in registrations}
    type_by_name = {r.name: r.type for r in registrations}
    recorded = {
        (rec.typ, rec.name): rec
        for (stack, _, _), rec in cloud.resources.items()
        if stack == stack_file.stack
    }
    names_by_id = {rec.id: rec.name for rec in recorded.values()}

    resources = []
    commands: list[ShareCommands] = []
    host_commands: list[ShareCommands] = []
    depends_on: dict[str, list[str]] = {}
    for registration in registrations:
        rec = recorded.get((registration.type, registration.name))
        inputs = rec.inputs if rec else {}
        custom = bool(rec and "id" in rec.state)
        parent = name_by_urn.get(registration.parent)
        deps = tuple(
            sorted({name_by_urn[u] for u in registration.dependencies if u in name_by_urn})
        )
        resources.append(
            PlannedResource(
                name=registration.name,
                type=registration.type,
                parent=parent,
                custom=custom,
                inputs=_important_inputs(registration.type, inputs, names_by_id) if custom else {},
                depends_on=deps,
                protect=registration.protect,
                delete_before_replace=registration.delete_before_replace,
                ignore_changes=tuple(registration.ignore_changes),
            )
        )
        if custom:
            depends_on[registration.name] = [d for d in deps if d in names_by_id.values()]
        if registration.type in COMMAND_TYPES and isinstance(inputs.get("create"), str):
            create = _clean(inputs["create"], names_by_id)
            update, delete = (
                _clean(inputs[k], names_by_id) if isinstance(inputs.get(k), str) else None
                for k in ("update", "delete")
            )
            if parent and type_by_name.get(parent) == SHARE_COMPONENT:
                share = _share_name(create) or parent
                commands.append(ShareCommands(share, registration.name, create, update, delete))
            else:
                host_commands.append(
                    ShareCommands(registration.name, registration.name, create, update, delete)
                )

    rank = {name: index for index, name in enumerate(creation_order(depends_on))}
    resources.sort(key=lambda r: (rank.get(r.name, -1), r.name))
    edges = sorted(reduced_edges(depends_on), key=lambda e: (rank[e[1]], rank[e[0]]))
    rules = tuple(
        {
            key: r.inputs.get(key)
            for key in IMPORTANT_INPUTS["openstack:networking/secGroupRule:SecGroupRule"]
            if key != "securityGroupId"
        }
        for r in resources
        if r.type == SECURITY_RULE
    )
    rules = tuple(
        sorted(
            rules,
            key=lambda rule: (
                ipaddress.ip_network(str(rule["remoteIpPrefix"] or "0.0.0.0/0")),
                str(rule["protocol"]),
                rule["portRangeMin"] or 0,
            ),
        )
    )
    return Plan(
        project=stack_file.project,
        stack=stack_file.stack,
        notices=tuple(notices),
        resources=tuple(resources),
        edges=tuple(edges),
        security_rules=rules,
        share_server=_clean(dict(outputs.get("share_server") or {}), names_by_id),
        shares=_clean(dict(outputs.get("shares") or {}), names_by_id),
        share_commands=tuple(commands),
        host_commands=tuple(host_commands),
    )


def make_plan(
    project_dir: Path,
    stack: str,
    *,
    tenant_subnet_cidr: str = DEFAULT_TENANT_SUBNET_CIDR,
    admin_subnet_cidr: str = DEFAULT_ADMIN_SUBNET_CIDR,
) -> Plan:
    """Everything above, in order. Raises PlanError (bad stack file, invalid config)."""
    for flag, cidr in (
        ("--tenant-subnet-cidr", tenant_subnet_cidr),
        ("--admin-subnet-cidr", admin_subnet_cidr),
    ):
        try:
            ipaddress.IPv4Network(cidr)
        except ValueError as exc:
            raise PlanError(
                f"{flag} {cidr!r}: {exc}; give an IPv4 network such as 10.0.0.0/24"
            ) from None
    stack_file = read_stack_file(project_dir, stack)
    with tempfile.TemporaryDirectory(prefix="dhss-plan-") as directory:
        config, notices = substitute(stack_file.config, Path(directory))
        try:
            spec = parse_stack_config(
                config.get("backend"), config.get("shareNetwork"), config.get("shares")
            )
        except InvalidStackConfig as exc:
            raise PlanError(
                f"{stack_file.path}: the stack config has problems; nothing was planned",
                exc.problems,
            ) from None
        cloud, assumed = simulated_cloud_for(
            spec, tenant_subnet_cidr=tenant_subnet_cidr, admin_subnet_cidr=admin_subnet_cidr
        )
        monitor, outputs = run_program(
            cloud, config, project=stack_file.project, stack=stack_file.stack
        )
    unverified = [
        f"`{key}: unverified`"
        for key, value in (
            ("dhss:backend.service_instance_host_key", spec.backend.service_instance_host_key),
            (
                "dhss:backend.ssh_proxy.host_key",
                spec.backend.ssh_proxy.host_key if spec.backend.ssh_proxy else None,
            ),
        )
        if value == "unverified"
    ]
    if unverified:
        notices.append(
            f"SSH host keys are NOT verified ({', '.join(unverified)}): whoever answers on "
            "the address gets the share commands and their credentials."
        )
    notices = [
        *notices,
        "The cloud is simulated; it holds what the config names: " + "; ".join(assumed) + ".",
        "Addresses, MAC addresses and ids are the simulated cloud's; Neutron, Nova and Cinder "
        "choose the real ones (from the same pools). Cloud-assigned ids appear as <id of NAME>.",
    ]
    return build_plan(stack_file, notices, monitor, cloud, outputs)
