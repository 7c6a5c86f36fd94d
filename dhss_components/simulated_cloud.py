"""A simulated OpenStack cloud that answers the program like Neutron, Nova, Cinder and Glance.

It is a ``pulumi.runtime.Mocks``: the real program, with the real SDK and provider types, runs
against it with no credentials and no CLI. It behaves like the cloud where the program can
notice: subnets hand out addresses from their allocation pools, a router interface is a port
holding the subnet's gateway address, images are found by name and status, and what one run
creates is there for the next run to find (as it would be in the cloud and in the state).
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import json
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pulumi
from google.protobuf import json_format
from pulumi.runtime import MockCallArgs, MockResourceArgs, Mocks
from pulumi.runtime.mocks import MockMonitor

_NAMESPACE = uuid.UUID("0e1f7a5c-93a2-4c47-8b1e-0f6a7c2d9b31")


class CloudError(Exception):
    """What the cloud answers to an impossible request (like a Neutron 409)."""


@dataclass
class SimSubnet:
    id: str
    name: str
    network_id: str
    cidr: str
    gateway_ip: str | None
    pool: tuple[str, str] | None = None
    used: set[str] = field(default_factory=set)

    def allocate(self, address: str | None = None) -> str:
        network = ipaddress.ip_network(self.cidr)
        if address is not None:
            if ipaddress.ip_address(address) not in network:
                raise CloudError(f"IP address {address} is not a valid IP for subnet {self.id}")
            if address in self.used:
                raise CloudError(f"IP address {address} already allocated in subnet {self.id}")
            self.used.add(address)
            return address
        if self.pool:
            start, end = (ipaddress.ip_address(a) for a in self.pool)
            candidates: Iterator[Any] = (
                ipaddress.ip_address(i) for i in range(int(start), int(end) + 1)
            )
        else:
            candidates = network.hosts()
        for candidate in candidates:
            text = str(candidate)
            if text not in self.used and text != self.gateway_ip:
                self.used.add(text)
                return text
        raise CloudError(f"No more IP addresses available on subnet {self.id}")


@dataclass
class SimPort:
    id: str
    network_id: str
    fixed_ips: list[tuple[str, str]]  # (subnet id, address)
    device_id: str = ""
    device_owner: str = ""
    mac_address: str = ""


@dataclass
class SimImage:
    id: str
    name: str
    status: str = "active"


@dataclass
class Recorded:
    typ: str
    name: str
    id: str
    inputs: dict[str, Any]
    state: dict[str, Any]


class SimulatedCloud(Mocks):
    """An OpenStack cloud in memory, and a record of what the program asked of it."""

    def __init__(self) -> None:
        self.networks: dict[str, str] = {}
        self.subnets: dict[str, SimSubnet] = {}
        self.ports: dict[str, SimPort] = {}
        self.images: list[SimImage] = []
        self.routers: set[str] = set()
        self.resources: dict[tuple[str, str, str], Recorded] = {}
        self.invokes: list[MockCallArgs] = []
        self._macs = itertools.count(1)
        self._handlers: dict[str, Callable[[MockResourceArgs, str], dict[str, Any]]] = {
            "openstack:networking/network:Network": self._network,
            "openstack:networking/subnet:Subnet": self._subnet,
            "openstack:networking/port:Port": self._port,
            "openstack:networking/routerInterface:RouterInterface": self._router_interface,
            "openstack:compute/instance:Instance": self._instance,
            "openstack:compute/keypair:Keypair": self._keypair,
            "openstack:compute/volumeAttach:VolumeAttach": self._volume_attach,
        }

    # -- building the cloud -------------------------------------------------------------

    def _id(self, *parts: str) -> str:
        return str(uuid.uuid5(_NAMESPACE, "/".join(parts)))

    def add_network(self, name: str, network_id: str | None = None) -> str:
        network_id = network_id or self._id("network", name)
        self.networks[network_id] = name
        return network_id

    def add_subnet(
        self,
        network_id: str,
        cidr: str,
        *,
        name: str = "",
        subnet_id: str | None = None,
        gateway: bool = True,
    ) -> str:
        subnet_id = subnet_id or self._id("subnet", network_id, cidr)
        network = ipaddress.ip_network(cidr)
        for other in self.subnets.values():
            if other.network_id == network_id and network.overlaps(
                ipaddress.ip_network(other.cidr)
            ):
                raise CloudError(
                    f"Invalid input for operation: Requested subnet with cidr: {cidr} for "
                    f"network: {network_id} overlaps with another subnet ({other.cidr})."
                )
        gateway_ip = str(next(network.hosts())) if gateway else None
        self.subnets[subnet_id] = SimSubnet(subnet_id, name, network_id, str(network), gateway_ip)
        return subnet_id

    def add_port(
        self,
        network_id: str,
        fixed_ips: list[tuple[str, str | None]],
        *,
        device_id: str = "",
        device_owner: str = "",
        port_id: str | None = None,
    ) -> SimPort:
        port_id = port_id or self._id("port", network_id, str(len(self.ports)))
        allocated = [(sid, self.subnets[sid].allocate(ip)) for sid, ip in fixed_ips]
        mac = "fa:16:3e:{:02x}:{:02x}:{:02x}".format(*next(self._macs).to_bytes(3, "big"))
        port = SimPort(port_id, network_id, allocated, device_id, device_owner, mac)
        self.ports[port_id] = port
        return port

    def add_router(self, subnet_id: str, router_id: str | None = None) -> str:
        """A router with an interface on the subnet: the port holding its gateway address."""
        router_id = router_id or self._id("router", subnet_id)
        self.routers.add(router_id)
        subnet = self.subnets[subnet_id]
        assert subnet.gateway_ip, "a router interface needs the subnet's gateway address"
        self.add_port(
            subnet.network_id,
            [(subnet_id, subnet.gateway_ip)],
            device_id=router_id,
            device_owner="network:router_interface",
        )
        return router_id

    def add_image(self, name: str, status: str = "active", image_id: str | None = None) -> str:
        image_id = image_id or self._id("image", name, str(len(self.images)))
        self.images.append(SimImage(image_id, name, status))
        return image_id

    # -- what the program created --------------------------------------------------------

    def created(self, typ: str) -> list[Recorded]:
        return [r for r in self.resources.values() if r.typ == typ]

    def one(self, typ: str, name_contains: str = "") -> Recorded:
        found = [r for r in self.created(typ) if name_contains in r.name]
        assert len(found) == 1, f"expected one {typ} named *{name_contains}*, found {found}"
        return found[0]

    # -- Mocks ---------------------------------------------------------------------------

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        stack = pulumi.get_stack()
        key = (stack, args.typ, args.name)
        previous = self.resources.get(key)
        if previous is not None and previous.inputs == args.inputs:
            # The same resource with the same inputs on a re-run: nothing changes in the cloud.
            return previous.id, previous.state
        resource_id = previous.id if previous else self._id(stack, args.typ, args.name)
        handler = self._handlers.get(args.typ)
        if previous is None:
            extra = handler(args, resource_id) if handler else {}
        elif handler:
            # Changed inputs on a resource that exists: its computed attributes stay.
            extra = {k: v for k, v in previous.state.items() if k not in args.inputs}
        else:
            extra = {}
        state = {**args.inputs, **extra}
        if args.custom:
            state.setdefault("id", resource_id)
        self.resources[key] = Recorded(args.typ, args.name, resource_id, args.inputs, state)
        return resource_id, state

    def _network(self, args: MockResourceArgs, resource_id: str) -> dict[str, Any]:
        self.add_network(args.inputs.get("name", args.name), resource_id)
        return {}

    def _subnet(self, args: MockResourceArgs, resource_id: str) -> dict[str, Any]:
        inputs = args.inputs
        self.add_subnet(
            inputs["networkId"],
            inputs["cidr"],
            name=inputs.get("name", ""),
            subnet_id=resource_id,
            gateway=not inputs.get("noGateway", False),
        )
        subnet = self.subnets[resource_id]
        pools = inputs.get("allocationPools") or []
        if pools:
            subnet.pool = (pools[0]["start"], pools[0]["end"])
        # Neutron's DHCP port takes the first free pool address.
        self.add_port(subnet.network_id, [(resource_id, None)], device_owner="network:dhcp")
        return {"gatewayIp": subnet.gateway_ip or ""}

    def _port(self, args: MockResourceArgs, resource_id: str) -> dict[str, Any]:
        inputs = args.inputs
        fixed = [(f["subnetId"], f.get("ipAddress") or None) for f in inputs.get("fixedIps", [])]
        port = self.add_port(
            inputs["networkId"],
            fixed,
            device_id=inputs.get("deviceId", ""),
            device_owner=inputs.get("deviceOwner", ""),
            port_id=resource_id,
        )
        return {
            "macAddress": port.mac_address,
            "allFixedIps": [address for _, address in port.fixed_ips],
            "allSecurityGroupIds": inputs.get("securityGroupIds", []),
        }

    def _router_interface(self, args: MockResourceArgs, resource_id: str) -> dict[str, Any]:
        router_id, subnet_id = args.inputs["routerId"], args.inputs["subnetId"]
        if router_id not in self.routers:
            raise CloudError(f"Router {router_id} could not be found")
        subnet = self.subnets[subnet_id]
        if subnet.gateway_ip is None:
            raise CloudError(f"Bad router request: Subnet {subnet_id} does not have a gateway IP")
        port = self.add_port(
            subnet.network_id,
            [(subnet_id, subnet.gateway_ip)],
            device_id=router_id,
            device_owner="network:router_interface",
        )
        return {"portId": port.id}

    def _instance(self, args: MockResourceArgs, resource_id: str) -> dict[str, Any]:
        networks = []
        for nic in args.inputs.get("networks", []):
            port = self.ports[nic["port"]]
            port.device_id, port.device_owner = resource_id, "compute:nova"
            networks.append({**nic, "uuid": port.network_id, "fixedIpV4": port.fixed_ips[0][1]})
        first = networks[0]["fixedIpV4"] if networks else ""
        return {"accessIpV4": first, "networks": networks, "powerState": "active"}

    def _keypair(self, args: MockResourceArgs, resource_id: str) -> dict[str, Any]:
        return {"fingerprint": "e3:9c:7f:" + resource_id[:8]}

    def _volume_attach(self, args: MockResourceArgs, resource_id: str) -> dict[str, Any]:
        # Nova's guess, which the share script never trusts.
        return {"device": "/dev/vdb"}

    def call(self, args: MockCallArgs) -> dict[str, Any]:  # type: ignore[override]
        self.invokes.append(args)
        a = args.args
        token = args.token
        if token == "openstack:networking/getSubnet:getSubnet":
            subnet = self.subnets.get(a.get("subnetId", ""))
            if subnet is None:
                raise CloudError(f"Your query returned no results (subnet {a.get('subnetId')})")
            return {
                "id": subnet.id,
                "subnetId": subnet.id,
                "name": subnet.name,
                "cidr": subnet.cidr,
                "gatewayIp": subnet.gateway_ip or "",
                "networkId": subnet.network_id,
                "ipVersion": ipaddress.ip_network(subnet.cidr).version,
            }
        if token == "openstack:networking/getSubnetIdsV2:getSubnetIdsV2":
            ids = [
                s.id
                for s in self.subnets.values()
                if s.network_id == a.get("networkId") and ("name" not in a or s.name == a["name"])
            ]
            return {"id": "subnets", "ids": ids}
        if token == "openstack:networking/getPortIds:getPortIds":
            ids = [
                p.id
                for p in self.ports.values()
                if p.network_id == a.get("networkId")
                and any(ip == a.get("fixedIp") for _, ip in p.fixed_ips)
            ]
            return {"id": "ports", "ids": ids}
        if token == "openstack:networking/getPort:getPort":
            port = self.ports[a["portId"]]
            return {
                "id": port.id,
                "portId": port.id,
                "networkId": port.network_id,
                "deviceId": port.device_id,
                "deviceOwner": port.device_owner,
                "macAddress": port.mac_address,
                "allFixedIps": [ip for _, ip in port.fixed_ips],
            }
        if token == "openstack:images/getImageIds:getImageIds":
            # Like the provider: only active images are listed.
            ids = [i.id for i in self.images if i.name == a.get("name") and i.status == "active"]
            return {"id": "images", "ids": ids}
        raise CloudError(f"the simulated cloud does not answer {token}")


# -- a DevStack-like cloud, with the ids of Pulumi.dev.yaml ---------------------------------

DEVSTACK_TENANT_NET = "9ab1d3f4-2c1e-4f53-9d53-6c2c1a7e0a11"
DEVSTACK_TENANT_SUBNET = "5f0c7e2a-8d3b-4b6e-a1f4-3c9d2e7b8a21"
DEVSTACK_ADMIN_NET = "dd07dbd2-cb02-4ef3-a8c0-5b3e75013c92"
DEVSTACK_ADMIN_SUBNET = "2c745913-7766-45b3-abfc-33a527e5185b"
DEVSTACK_SERVICE_NET = "b7d1a0c3-4e5f-4a6b-8c7d-9e0f1a2b3c41"


def devstack_cloud() -> SimulatedCloud:
    """The seed's DevStack: a private tenant network behind router1, an admin network, the
    manila_service_network, and one active manila-service-image-master."""
    cloud = SimulatedCloud()
    cloud.add_network("private", DEVSTACK_TENANT_NET)
    cloud.add_subnet(
        DEVSTACK_TENANT_NET, "10.0.0.0/26", name="private-subnet", subnet_id=DEVSTACK_TENANT_SUBNET
    )
    cloud.add_router(DEVSTACK_TENANT_SUBNET, "4c9e2a10-6b7d-4f3e-9a8c-1d2e3f4a5b61")
    cloud.add_network("admin_net", DEVSTACK_ADMIN_NET)
    cloud.add_subnet(
        DEVSTACK_ADMIN_NET, "10.2.5.0/24", name="admin_subnet", subnet_id=DEVSTACK_ADMIN_SUBNET
    )
    cloud.add_network("manila_service_network", DEVSTACK_SERVICE_NET)
    cloud.add_image("manila-service-image-master")
    cloud.add_image("cirros-0.6.2-x86_64-disk")
    return cloud


# -- what the engine would see -----------------------------------------------------------------

SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"


@dataclass
class Registration:
    """One RegisterResource request as the engine receives it: options, graph, raw inputs."""

    urn: str
    type: str
    name: str
    custom: bool
    parent: str
    dependencies: list[str]
    protect: bool
    ignore_changes: list[str]
    delete_before_replace: bool
    replace_on_changes: list[str]
    custom_timeouts: dict[str, str]
    raw_inputs: dict[str, Any]
    """Inputs as serialized for the engine, secrets still wrapped (the 4dabf1... signature)."""


class RecordingMonitor(MockMonitor):
    """A mock resource monitor that keeps every registration the program sends."""

    def __init__(self, mocks: Mocks) -> None:
        super().__init__(mocks)
        self.registrations: dict[str, Registration] = {}

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 (gRPC method name)
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        if request.type != "pulumi:pulumi:Stack":
            timeouts = request.customTimeouts
            self.registrations[response.urn] = Registration(
                urn=response.urn,
                type=request.type,
                name=request.name,
                custom=request.custom,
                parent=request.parent,
                dependencies=list(request.dependencies),
                protect=request.protect,
                ignore_changes=list(request.ignoreChanges),
                delete_before_replace=request.deleteBeforeReplace,
                replace_on_changes=list(request.replaceOnChanges),
                custom_timeouts={
                    k: v
                    for k, v in (
                        ("create", timeouts.create),
                        ("update", timeouts.update),
                        ("delete", timeouts.delete),
                    )
                    if v
                },
                raw_inputs=json_format.MessageToDict(request.object),
            )
        return response

    def named(self, name: str) -> Registration:
        found = [r for r in self.registrations.values() if r.name == name]
        assert len(found) == 1, f"expected one resource named {name}, found {len(found)}"
        return found[0]


# -- running the real program against it ------------------------------------------------------


@dataclass
class ProgramRun:
    monitor: RecordingMonitor
    outputs: dict[str, Any]
    """The stack outputs, resolved (empty in a preview, where they are unknown)."""
    invokes: list[MockCallArgs]
    """The provider invokes this run made: an API call each, in every preview."""


@contextmanager
def _own_event_loop() -> Iterator[None]:
    # Pulumi's pending work must never resolve on a loop that outlives this run. One worker
    # thread for the SDK's calls to the (mock) engine: the simulated cloud then sees the
    # resources in the same order on every run, so it hands out the same addresses.
    loop = asyncio.new_event_loop()
    loop.set_default_executor(ThreadPoolExecutor(max_workers=1))
    asyncio.set_event_loop(loop)
    try:
        yield
    finally:
        loop.close()
        asyncio.set_event_loop(None)


def run_program(
    cloud: SimulatedCloud,
    config: Mapping[str, Any],
    *,
    project: str = "manila-dhss",
    stack: str = "dev",
    secret_keys: tuple[str, ...] = (),
    preview: bool = False,
    monitor: RecordingMonitor | None = None,
) -> ProgramRun:
    """Run the real program once against `cloud`, with `config` as the ``dhss:*`` keys."""
    from .program import share_server_program

    monitor = monitor or RecordingMonitor(cloud)
    first_invoke = len(cloud.invokes)
    outputs: dict[str, Any] = {}
    with _own_event_loop():
        # set_mocks makes a root stack resource only when this context has none: without the
        # reset, the first run in a process would name the stack of every later run.
        pulumi.runtime.settings.ROOT.set(None)
        pulumi.runtime.set_mocks(
            cloud, project=project, stack=stack, preview=preview, monitor=monitor
        )
        pulumi.runtime.set_all_config(
            {f"dhss:{key}": json.dumps(value) for key, value in config.items()},
            secret_keys=[f"dhss:{key}" for key in secret_keys],
        )

        def program() -> pulumi.Output[Any]:
            server = share_server_program()
            return pulumi.Output.all(server.share_server, server.shares).apply(
                lambda values: outputs.update(share_server=values[0], shares=values[1])
            )

        try:
            pulumi.runtime.test(program)()  # type: ignore[no-untyped-call]
        finally:
            pulumi.runtime.settings.ROOT.set(None)  # and leave none behind
    return ProgramRun(monitor, outputs, cloud.invokes[first_invoke:])
