"""The stand-in's Neutron: the service subnets every stack made, shared by all of them.

A stack's program runs against a cloud of its own making (``build_cloud``), but subnets on one
service network are shared: like Neutron, the stand-in refuses a subnet that overlaps another
stack's, whatever order the stacks run in. ``<root>/neutron.json`` holds them, under a lock.
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dhss_components.simulated_cloud import SimulatedCloud
from tests.clouds import devstack_cloud

SUBNET_TYPE = "openstack:networking/subnet:Subnet"


@contextmanager
def subnets(root: Path) -> Iterator[dict[str, Any]]:
    """The shared cloud's subnets: {subnet name: {stack, network, cidr}}, locked."""
    path = root / "neutron.json"
    with open(root / "neutron.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = json.loads(path.read_text()) if path.exists() else {}
        yield data
        path.write_text(json.dumps(data, indent=2))
        fcntl.flock(lock, fcntl.LOCK_UN)


def build_cloud(root: Path, settings: dict[str, Any], stack: str) -> SimulatedCloud:
    """The cloud as this stack's program will find it: DevStack, the tenants' networks, and
    the service subnets other stacks already made; ``host_keys: {stack: {public, private}}``
    gives a stack's instance a real SSH host key."""
    cloud = devstack_cloud()
    host_key = settings.get("host_keys", {}).get(stack)
    if host_key is not None:
        # A real key pair for the instance's SSH host key (a fake guest's sshd holds it), in
        # place of the simulated cloud's placeholder bytes.
        cloud._handlers["tls:index/privateKey:PrivateKey"] = lambda args, resource_id: {
            "publicKeyOpenssh": host_key["public"],
            "privateKeyOpenssh": host_key["private"],
        }
    for net in settings.get("cloud", {}).get("tenant_networks", []):
        cloud.add_network(net["name"], net["net"])
        cloud.add_subnet(net["net"], net["cidr"], name=net["name"], subnet_id=net["subnet"])
        cloud.add_router(net["subnet"], net["router"])
        # More subnets on the tenant's router (``router_subnets: [{net, subnet, cidr}]``), each
        # joined by its gateway address, as `openstack router add subnet` does.
        for extra in net.get("router_subnets", []):
            cloud.add_network(f"{net['name']}-{extra['cidr']}", extra["net"])
            cloud.add_subnet(extra["net"], extra["cidr"], subnet_id=extra["subnet"])
            gateway = cloud.subnets[extra["subnet"]].gateway_ip
            cloud.add_port(
                extra["net"],
                [(extra["subnet"], gateway)],
                device_id=net["router"],
                device_owner="network:router_interface",
            )
    with subnets(root) as held:
        for name, subnet in held.items():
            if subnet["stack"] != stack:
                cloud.add_subnet(
                    subnet["network"], subnet["cidr"], name=name, subnet_id=subnet["id"]
                )
    return cloud


def claim(root: Path, stack: str, registrations: list[dict[str, Any]]) -> str | None:
    """Neutron's overlap check across stacks on one network, with the message Neutron's API
    answers (400 InvalidInput); the stack's subnets on success."""
    mine = {r["inputs"]["name"]: r for r in registrations if r["type"] == SUBNET_TYPE}
    with subnets(root) as held:
        for record in mine.values():
            cidr = ipaddress.ip_network(record["inputs"]["cidr"])
            network = record["inputs"]["networkId"]
            for other in held.values():
                if other["stack"] == stack or other["network"] != network:
                    continue
                if cidr.overlaps(ipaddress.ip_network(other["cidr"])):
                    return (
                        "Bad request with: [POST /v2.0/subnets], error message: "
                        '{"NeutronError": {"type": "InvalidInput", "message": "Invalid input '
                        f"for operation: Requested subnet with cidr: {cidr} for network: "
                        f'{network} overlaps with another subnet.", "detail": ""}}}}'
                    )
        for name in [n for n, s in held.items() if s["stack"] == stack]:
            del held[name]
        for name, record in mine.items():
            held[name] = {
                "stack": stack,
                "network": record["inputs"]["networkId"],
                "cidr": record["inputs"]["cidr"],
                "id": f"{stack}-{name}"[:36],
            }
    return None


def release(root: Path, stack: str) -> None:
    with subnets(root) as held:
        for name in [n for n, s in held.items() if s["stack"] == stack]:
            del held[name]
