"""A tenant's program, reduced to what the fleet notices, without running it.

For the many tenants of a scale test whose programs need not all run (a real run costs about
a second of CPU each): built from the config the CLI holds for the stack, it declares the
service subnet, the share volumes and the outputs that the real program would. The tests
say which tenants ran for real (their records have ``synthesized: false``).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Mapping
from typing import Any

from .engine import STACK_TYPE, ProgramRun


def synthesize_program(
    *,
    project: str,
    stack: str,
    config: Mapping[str, str],
    on_register: Callable[[dict[str, Any]], None],
) -> ProgramRun:
    """The program's registrations and outputs, as far as the fleet can notice them."""
    backend = json.loads(config.get("dhss:backend", "{}"))
    share_network = json.loads(config.get("dhss:shareNetwork", "{}"))
    shares = json.loads(config.get("dhss:shares", "[]"))
    run = ProgramRun()
    root = f"urn:pulumi:{stack}::{project}::pulumi:pulumi:Stack::{project}-{stack}"
    server = f"urn:pulumi:{stack}::{project}::manila-dhss:index:ShareServer::share-server"
    run.root_urn = root

    def register(urn: str, typ: str, name: str, inputs: dict[str, Any], **extra: Any) -> None:
        record = {
            "urn": urn,
            "type": typ,
            "name": name,
            "parent": extra.get("parent", root if urn != root else ""),
            "custom": extra.get("custom", True),
            "protect": extra.get("protect", False),
            "dependencies": [],
            "inputs": inputs,
            "id": f"{stack}-{name}" if extra.get("custom", True) else "",
            "outputs": inputs,
        }
        run.registrations.append(record)
        on_register(record)

    register(root, STACK_TYPE, f"{project}-{stack}", {}, custom=False)
    register(server, "manila-dhss:index:ShareServer", "share-server", {}, custom=False)
    cidr = share_network.get("service_subnet_cidr")
    address = "-"
    if cidr:
        subnet_type = "openstack:networking/subnet:Subnet"
        register(
            f"{server.rsplit('::', 1)[0]}$manila-dhss:index:ServiceNetwork${subnet_type}"
            "::share-server-network-subnet",
            subnet_type,
            "share-server-network-subnet",
            {
                "cidr": cidr,
                "networkId": backend.get("service_network_id"),
                "name": "service_subnet_for_handling_of_share_server_for_tenant_subnet_"
                + share_network.get("neutron_subnet_id", ""),
            },
            parent=server,
        )
        address = str(next(ipaddress.ip_network(cidr).hosts()) + 2)
    outputs_shares = {}
    for share in shares:
        name = share["name"]
        volume_type = "openstack:blockstorage/volume:Volume"
        register(
            f"{server.rsplit('::', 1)[0]}$manila-dhss:index:Share${volume_type}"
            f"::share-server-share-{name}-volume",
            volume_type,
            f"share-server-share-{name}-volume",
            {"size": float(share["size"]), "name": name},
            parent=server,
            protect=backend.get("protect_volumes", True),
        )
        outputs_shares[name] = {
            "share_proto": share["share_proto"],
            "size": share["size"],
            "export_locations": [
                {"path": f"{address}:/shares/{name}", "preferred": True, "is_admin_only": False}
            ],
        }
    run.outputs = {
        "share_server": {"service_subnet_cidr": cidr, "service_ip": address},
        "shares": outputs_shares,
    }
    return run
