"""A simulated OpenStack cloud that answers the program like Neutron, Nova, Cinder and Glance.

It is a ``pulumi.runtime.Mocks``: the real program, with the real SDK and provider types, runs
against it with no credentials and no CLI. It behaves like the cloud where the program can
notice: subnets hand out addresses from their allocation pools, a router interface is a port
holding the subnet's gateway address, images are found by name and status, and what one run
creates is there for the next run to find (as it would be in the cloud and in the state).

It refuses what Neutron, Nova and Cinder refuse, with their messages: a subnet's network or
broadcast address, or an address already held, as a fixed IP; a security group rule identical
to one the group has (409 SecurityGroupRuleExists); a router interface whose subnet overlaps
one already on the router; a key pair name that exists; a volume smaller than 1 GiB, or shrunk;
an attachment to an instance or of a volume that does not exist. A re-run with changed inputs
updates in place what the provider updates in place and replaces what it replaces
(``FORCE_NEW``), as Pulumi would: a replacement of a protected resource fails with the engine's
message, and a resource no longer declared is deleted (unless protected).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import ipaddress
import itertools
import json
import struct
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


NO_RESULTS = "Your query returned no results. Please change your search criteria and try again."
"""What the provider answers when a lookup by id finds nothing."""


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
            ip = ipaddress.ip_address(address)
            # Neutron (InvalidIpForSubnet): an address outside the subnet, or the subnet's own
            # network or broadcast address, is no host's.
            if ip not in network or (
                network.version == 4
                and network.prefixlen < 31
                and ip in (network.network_address, network.broadcast_address)
            ):
                raise CloudError(
                    f"IP address {address} is not a valid IP for the specified subnet."
                )
            if address in self.used:
                # Neutron's 409 IpAddressAlreadyAllocated
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
    protect: bool = False


@dataclass(frozen=True)
class Options:
    """The resource options of the registration being answered (the engine's view)."""

    protect: bool = False
    delete_before_replace: bool = False
    ignore_changes: tuple[str, ...] = ()
    replace_on_changes: tuple[str, ...] = ()


# The inputs whose change makes the provider replace the resource (terraform-provider-openstack
# v3.4.0, ``ForceNew: true`` in each resource's schema, openstack/resource_openstack_*.go, by
# their Pulumi names; pulumi-command: ``triggers``, "Trigger a resource replacement on changes to
# any of these values"). Every other input is updated in place: a volume's size is a Cinder
# extend, a port's fixed IPs and groups an update, a server's name, flavor and metadata too.
FORCE_NEW: dict[str, frozenset[str]] = {
    typ: frozenset(names.split())
    for typ, names in {
        "openstack:networking/network:Network": (
            "region tenantId valueSpecs availabilityZoneHints transparentVlan"
        ),
        "openstack:networking/subnet:Subnet": (
            "region networkId cidr prefixLength tenantId ipVersion ipv6AddressMode ipv6RaMode "
            "subnetpoolId valueSpecs"
        ),
        "openstack:networking/port:Port": (
            "region networkId macAddress tenantId deviceOwner deviceId valueSpecs"
        ),
        "openstack:networking/routerInterface:RouterInterface": "region routerId subnetId portId",
        "openstack:networking/secGroup:SecGroup": "region tenantId deleteDefaultRules",
        "openstack:networking/secGroupRule:SecGroupRule": (
            "region description direction ethertype portRangeMin portRangeMax protocol "
            "remoteGroupId remoteIpPrefix remoteAddressGroupId securityGroupId tenantId"
        ),
        "openstack:compute/keypair:Keypair": "region name publicKey valueSpecs userId",
        "openstack:compute/instance:Instance": (
            "region userData availabilityZoneHints availabilityZone networkMode networks "
            "hypervisorHostname configDrive keyPair blockDevices schedulerHints"
        ),
        "openstack:blockstorage/volume:Volume": (
            "region availabilityZone snapshotId sourceVolId imageId backupId consistencyGroupId "
            "sourceReplica schedulerHints"
        ),
        "openstack:compute/volumeAttach:VolumeAttach": (
            "region instanceId volumeId multiattach tag vendorOptions"
        ),
        "command:remote:Command": "triggers",
        "command:local:Command": "triggers",
    }.items()
}


class SimulatedCloud(Mocks):
    """An OpenStack cloud in memory, and a record of what the program asked of it."""

    def __init__(
        self, *, flavors: tuple[str, ...] = ("100",), zones: tuple[str, ...] = ("nova",)
    ) -> None:
        # By default what a cloud with Manila's DevStack plugin has: flavor 100 (Manila's
        # default service_instance_flavor_id) and the one zone, nova.
        self.flavors = set(flavors)
        self.zones = set(zones)
        self.networks: dict[str, str] = {}
        self.subnets: dict[str, SimSubnet] = {}
        self.ports: dict[str, SimPort] = {}
        self.images: list[SimImage] = []
        self.routers: set[str] = set()
        self.resources: dict[tuple[str, str, str], Recorded] = {}
        self.invokes: list[MockCallArgs] = []
        self.instances: set[str] = set()
        self.volumes: dict[str, int] = {}
        self.snapshots: dict[str, int] = {}
        """Cinder snapshots the cloud holds (id -> size in GiB)."""
        self.security_groups: set[str] = set()
        self.keypairs: dict[str, str] = {}
        self.rules: dict[str, tuple[Any, ...]] = {}
        self.updated: list[str] = []
        """Resources updated in place, as ``<type>::<name>``, in order."""
        self.replaced: list[str] = []
        """Resources replaced (deleted and made anew, with a new id), in order."""
        self.deleted: list[str] = []
        """Resources deleted because a run no longer declared them."""
        self.next_options = Options()
        """The options of the registration being answered (set by RecordingMonitor)."""
        self._declared: set[tuple[str, str, str]] = set()
        self._generations = itertools.count(1)
        self._handlers: dict[str, Callable[[MockResourceArgs, str], dict[str, Any]]] = {
            "openstack:networking/network:Network": self._network,
            "openstack:networking/subnet:Subnet": self._subnet,
            "openstack:networking/port:Port": self._port,
            "openstack:networking/routerInterface:RouterInterface": self._router_interface,
            "openstack:networking/secGroup:SecGroup": self._security_group,
            "openstack:networking/secGroupRule:SecGroupRule": self._security_group_rule,
            "openstack:compute/instance:Instance": self._instance,
            "openstack:compute/keypair:Keypair": self._keypair,
            "openstack:blockstorage/volume:Volume": self._volume,
            "openstack:compute/volumeAttach:VolumeAttach": self._volume_attach,
            "tls:index/privateKey:PrivateKey": self._private_key,
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
        # From the port's id, not from a counter: a plan must not change with the order in
        # which the engine happened to register two ports.
        mac = "fa:16:3e:" + ":".join(
            f"{b:02x}" for b in hashlib.sha256(port_id.encode()).digest()[:3]
        )
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

    def add_snapshot(self, size: int, snapshot_id: str | None = None) -> str:
        """A Cinder snapshot of some volume, as `openstack volume snapshot create` leaves it."""
        snapshot_id = snapshot_id or self._id("snapshot", str(len(self.snapshots)))
        self.snapshots[snapshot_id] = size
        return snapshot_id

    def add_volume(self, size: int, volume_id: str | None = None) -> str:
        """A volume the program did not make (a source to copy from)."""
        volume_id = volume_id or self._id("volume", str(len(self.volumes)))
        self.volumes[volume_id] = size
        return volume_id

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
        self._declared.add(key)
        options, self.next_options = self.next_options, Options()
        previous = self.resources.get(key)
        inputs = dict(args.inputs)
        if previous is not None:
            # ignore_changes: the engine keeps the old value of an ignored input.
            for name in options.ignore_changes:
                if name in previous.inputs:
                    inputs[name] = previous.inputs[name]
                else:
                    inputs.pop(name, None)
        if previous is not None and previous.inputs == inputs:
            # The same resource with the same inputs on a re-run: nothing changes in the cloud.
            previous.protect = options.protect
            return previous.id, previous.state
        handler = self._handlers.get(args.typ)
        label = f"{args.typ}::{args.name}"
        if previous is None:
            resource_id = self._id(stack, args.typ, args.name)
            extra = handler(args, resource_id) if handler else {}
        else:
            changed = {
                k for k in {*inputs, *previous.inputs} if inputs.get(k) != previous.inputs.get(k)
            }
            replacing = changed & (
                FORCE_NEW.get(args.typ, frozenset()) | set(options.replace_on_changes)
            )
            if replacing and (previous.protect or options.protect):
                urn = f"urn:pulumi:{stack}::{pulumi.get_project()}::{args.typ}::{args.name}"
                raise CloudError(
                    f"unable to replace resource {urn!r}\nas it is currently marked for "
                    "protection. To unprotect the resource, remove the `protect` flag from the "
                    f"resource in your Pulumi program and run `pulumi up` (changed: "
                    f"{', '.join(sorted(replacing))})"
                )
            if replacing:
                resource_id = self._id(stack, args.typ, args.name, str(next(self._generations)))
                # Pulumi creates the replacement first unless delete_before_replace: a fixed
                # address the old one still holds is then refused, as Neutron would.
                if options.delete_before_replace:
                    self._release(previous)
                extra = handler(args, resource_id) if handler else {}
                if not options.delete_before_replace:
                    self._release(previous)
                self.replaced.append(label)
            else:
                resource_id = previous.id
                if handler:
                    self._update(args.typ, previous, inputs)
                # An update keeps the computed attributes the inputs do not set.
                extra = {k: v for k, v in previous.state.items() if k not in inputs}
                self.updated.append(label)
        state = {**inputs, **extra}
        if args.custom:
            state.setdefault("id", resource_id)
        self.resources[key] = Recorded(
            args.typ, args.name, resource_id, inputs, state, options.protect
        )
        return resource_id, state

    def start_run(self) -> None:
        self._declared = set()

    def finish_run(self, stack: str) -> None:
        """What a successful ``up`` does last: delete what the program no longer declares."""
        for key in [k for k in self.resources if k[0] == stack and k not in self._declared]:
            recorded = self.resources[key]
            if recorded.protect:
                raise CloudError(
                    f"unable to delete resource {recorded.typ}::{recorded.name}\nas it is "
                    "currently marked for protection"
                )
            self._release(recorded)
            del self.resources[key]
            self.deleted.append(f"{recorded.typ}::{recorded.name}")

    def _update(self, typ: str, previous: Recorded, inputs: dict[str, Any]) -> None:
        """The cloud's side of an update in place, where the cloud can refuse it."""
        if typ == "openstack:blockstorage/volume:Volume":
            old, new = previous.inputs.get("size"), inputs.get("size")
            if isinstance(old, int | float) and isinstance(new, int | float) and new < old:
                # Cinder's extend: volume_api.extend refuses anything but a bigger size.
                raise CloudError(
                    "Invalid input received: New size for extend must be greater than current "
                    f"size. (current: {int(old)}, extended: {int(new)})."
                )
            if isinstance(new, int | float):
                self.volumes[previous.id] = int(new)

    def _release(self, recorded: Recorded) -> None:
        """Delete a resource from the cloud: what it held becomes free."""
        resource_id = recorded.id
        if recorded.typ in ("openstack:networking/port:Port",):
            self._release_port(resource_id)
        elif recorded.typ == "openstack:networking/routerInterface:RouterInterface":
            self._release_port(str(recorded.state.get("portId", "")))
        elif recorded.typ == "openstack:networking/subnet:Subnet":
            for port_id in [p.id for p in self.ports.values() if p.fixed_ips
                            and p.fixed_ips[0][0] == resource_id]:  # fmt: skip
                self._release_port(port_id)
            self.subnets.pop(resource_id, None)
        elif recorded.typ == "openstack:networking/secGroupRule:SecGroupRule":
            self.rules.pop(resource_id, None)
        elif recorded.typ == "openstack:networking/secGroup:SecGroup":
            self.security_groups.discard(resource_id)
        elif recorded.typ == "openstack:compute/instance:Instance":
            self.instances.discard(resource_id)
        elif recorded.typ == "openstack:blockstorage/volume:Volume":
            self.volumes.pop(resource_id, None)
        elif recorded.typ == "openstack:compute/keypair:Keypair":
            self.keypairs.pop(str(recorded.inputs.get("name", "")), None)
        elif recorded.typ == "openstack:networking/network:Network":
            self.networks.pop(resource_id, None)

    def _release_port(self, port_id: str) -> None:
        port = self.ports.pop(port_id, None)
        if port is None:
            return
        for subnet_id, address in port.fixed_ips:
            subnet = self.subnets.get(subnet_id)
            if subnet is not None:
                subnet.used.discard(address)

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
        if inputs["networkId"] not in self.networks:
            raise CloudError(f"Network {inputs['networkId']} could not be found.")
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
        cidr = ipaddress.ip_network(subnet.cidr)
        for port in self.ports.values():
            if port.device_id != router_id or port.device_owner != "network:router_interface":
                continue
            for other_id, _ in port.fixed_ips:
                other = ipaddress.ip_network(self.subnets[other_id].cidr)
                if cidr.overlaps(other):
                    # Neutron's l3_db _check_for_dup_router_subnets
                    raise CloudError(
                        f"Bad router request: Cidr {cidr} of subnet {subnet_id} overlaps with "
                        f"cidr {other} of subnet {other_id}."
                    )
        port = self.add_port(
            subnet.network_id,
            [(subnet_id, subnet.gateway_ip)],
            device_id=router_id,
            device_owner="network:router_interface",
        )
        return {"portId": port.id}

    def _security_group(self, args: MockResourceArgs, resource_id: str) -> dict[str, Any]:
        self.security_groups.add(resource_id)
        return {}

    def _security_group_rule(self, args: MockResourceArgs, resource_id: str) -> dict[str, Any]:
        inputs = args.inputs
        group = inputs["securityGroupId"]
        if group not in self.security_groups:
            raise CloudError(f"Security group {group} does not exist")
        # What Neutron compares to find a duplicate (the description is not part of it).
        content = tuple(
            inputs.get(k)
            for k in (
                "securityGroupId", "direction", "ethertype", "protocol", "portRangeMin",
                "portRangeMax", "remoteIpPrefix", "remoteGroupId",
            )
        )  # fmt: skip
        for rule_id, existing in self.rules.items():
            if existing == content:
                # 409 SecurityGroupRuleExists
                raise CloudError(f"Security group rule already exists. Rule id is {rule_id}.")
        self.rules[resource_id] = content
        return {}

    def _volume(self, args: MockResourceArgs, resource_id: str) -> dict[str, Any]:
        size = args.inputs.get("size")
        if not isinstance(size, int | float) or size < 1 or size != int(size):
            # Cinder's API schema: a volume's size is an integer of at least 1 (GiB).
            raise CloudError(
                f"Invalid input for field/attribute size. Value: {size}. "
                f"{size} is less than the minimum of 1"
            )
        for key, known, what in (
            ("snapshotId", self.snapshots, "Snapshot"),
            ("sourceVolId", self.volumes, "Volume"),
        ):
            source = args.inputs.get(key)
            if source is None:
                continue
            if source not in known:
                raise CloudError(f"{what} {source} could not be found.")  # Cinder's 404
            if size < known[source]:
                # Cinder's volume API: a volume is at least as big as what it is made from.
                raise CloudError(
                    f"Invalid input received: Volume size '{int(size)}'GB cannot be smaller "
                    f"than the {what.lower()} size {known[source]}GB. They must be >= original "
                    f"{what.lower()} size."
                )
        self.volumes[resource_id] = int(size)
        return {"attachments": []}

    def _instance(self, args: MockResourceArgs, resource_id: str) -> dict[str, Any]:
        self.instances.add(resource_id)
        networks = []
        for nic in args.inputs.get("networks", []):
            port = self.ports[nic["port"]]
            port.device_id, port.device_owner = resource_id, "compute:nova"
            networks.append({**nic, "uuid": port.network_id, "fixedIpV4": port.fixed_ips[0][1]})
        first = networks[0]["fixedIpV4"] if networks else ""
        return {"accessIpV4": first, "networks": networks, "powerState": "active"}

    def _keypair(self, args: MockResourceArgs, resource_id: str) -> dict[str, Any]:
        name = args.inputs.get("name", "")
        if name in self.keypairs:
            # Nova's 409 KeyPairExists: key pairs are named per user, and every stack's
            # program runs as the same admin user.
            raise CloudError(f"Key pair '{name}' already exists.")
        self.keypairs[name] = resource_id
        return {"fingerprint": "e3:9c:7f:" + resource_id[:8]}

    def _private_key(self, args: MockResourceArgs, resource_id: str) -> dict[str, Any]:
        # The provider's attribute shapes, with key bytes derived from the resource's name (no
        # cryptography here: nothing ever logs in with them; the same on every simulated cloud).
        body = hashlib.sha256(f"{pulumi.get_stack()}/{args.name}".encode()).digest()
        blob = struct.pack(">I", 11) + b"ssh-ed25519" + struct.pack(">I", 32) + body
        public = f"ssh-ed25519 {base64.b64encode(blob).decode()}\n"
        private = (
            "-----BEGIN OPENSSH PRIVATE KEY-----\n"
            f"{base64.b64encode(body * 4).decode()}\n"
            "-----END OPENSSH PRIVATE KEY-----\n"
        )
        return {"publicKeyOpenssh": public, "privateKeyOpenssh": private}

    def _volume_attach(self, args: MockResourceArgs, resource_id: str) -> dict[str, Any]:
        instance_id, volume_id = args.inputs.get("instanceId"), args.inputs.get("volumeId")
        if instance_id not in self.instances:
            raise CloudError(f"Instance {instance_id} could not be found.")  # Nova's 404
        if volume_id not in self.volumes:
            raise CloudError(f"Volume {volume_id} could not be found.")  # Cinder's 404
        # Nova's guess, which the share script never trusts.
        return {"device": "/dev/vdb"}

    def call(self, args: MockCallArgs) -> dict[str, Any]:  # type: ignore[override]
        self.invokes.append(args)
        a = args.args
        token = args.token
        if token == "openstack:networking/getSubnet:getSubnet":
            subnet = self.subnets.get(a.get("subnetId", ""))
            if subnet is None:
                raise CloudError(NO_RESULTS)
            return {
                "id": subnet.id,
                "subnetId": subnet.id,
                "name": subnet.name,
                "cidr": subnet.cidr,
                "gatewayIp": subnet.gateway_ip or "",
                "networkId": subnet.network_id,
                "ipVersion": ipaddress.ip_network(subnet.cidr).version,
            }
        if token == "openstack:networking/getNetwork:getNetwork":
            network_id = a.get("networkId", "")
            if network_id not in self.networks:
                raise CloudError(NO_RESULTS)
            return {"id": network_id, "networkId": network_id, "name": self.networks[network_id]}
        if token == "openstack:networking/getSubnetIdsV2:getSubnetIdsV2":
            ids = [
                s.id
                for s in self.subnets.values()
                if s.network_id == a.get("networkId")
                and a.get("name", s.name) == s.name
                and a.get("gatewayIp", s.gateway_ip) == s.gateway_ip
                and a.get("cidr", s.cidr) == s.cidr
            ]
            return {"id": "subnets", "ids": ids}
        if token == "openstack:networking/getPortIds:getPortIds":
            ids = [
                p.id
                for p in self.ports.values()
                if a.get("networkId", p.network_id) == p.network_id
                and a.get("deviceId", p.device_id) == p.device_id
                and a.get("deviceOwner", p.device_owner) == p.device_owner
                and ("fixedIp" not in a or any(ip == a["fixedIp"] for _, ip in p.fixed_ips))
            ]
            return {"id": "ports", "ids": ids}
        if token == "openstack:networking/getPort:getPort":
            port = self.ports.get(a.get("portId", ""))
            if port is None:
                raise CloudError(NO_RESULTS)
            return {
                "id": port.id,
                "portId": port.id,
                "networkId": port.network_id,
                "deviceId": port.device_id,
                "deviceOwner": port.device_owner,
                "macAddress": port.mac_address,
                "allFixedIps": [ip for _, ip in port.fixed_ips],
            }
        if token == "openstack:compute/getFlavor:getFlavor":
            if a.get("flavorId") not in self.flavors:
                raise CloudError("No Flavor found")  # the data source's own words
            return {
                "id": a["flavorId"],
                "flavorId": a["flavorId"],
                "name": f"flavor-{a['flavorId']}",
            }
        if token in (
            "openstack:compute/getAvailabilityZones:getAvailabilityZones",
            "openstack:blockstorage/getAvailabilityZonesV3:getAvailabilityZonesV3",
        ):
            return {"id": "zones", "names": sorted(self.zones), "state": "available"}
        if token == "openstack:images/getImageIds:getImageIds":
            # Like the provider: only active images are listed.
            ids = [i.id for i in self.images if i.name == a.get("name") and i.status == "active"]
            return {"id": "images", "ids": ids}
        raise CloudError(f"the simulated cloud does not answer {token}")


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
        if isinstance(self.mocks, SimulatedCloud):
            self.mocks.next_options = Options(
                protect=request.protect,
                delete_before_replace=request.deleteBeforeReplace,
                ignore_changes=tuple(request.ignoreChanges),
                replace_on_changes=tuple(request.replaceOnChanges),
            )
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

        cloud.start_run()
        try:
            pulumi.runtime.test(program)()  # type: ignore[no-untyped-call]
            if not preview:
                cloud.finish_run(stack)
        finally:
            pulumi.runtime.settings.ROOT.set(None)  # and leave none behind
    return ProgramRun(monitor, outputs, cloud.invokes[first_invoke:])
