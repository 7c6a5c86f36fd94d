"""What Neutron holds for a stack, read back from the server, for the tests' assertions."""

from __future__ import annotations

from typing import Any, NamedTuple

from .client import BOOKKEEPING, NeutronClient
from .engine import Deployment
from .mapping import PORT, RESOURCES, ROUTER_INTERFACE

INSTANCE = "openstack:compute/instance:Instance"


class Rule(NamedTuple):
    protocol: str | None
    port: int | None
    remote_ip_prefix: str | None


def without_bookkeeping(dump: dict[str, Any]) -> dict[str, Any]:
    """A dump without the fields Neutron bumps on a parent when a child comes or goes."""
    return {
        collection: {
            object_id: {k: v for k, v in found.items() if k not in BOOKKEEPING}
            for object_id, found in objects.items()
        }
        for collection, objects in dump.items()
    }


def ingress_rules(neutron: NeutronClient, group_id: str) -> set[Rule]:
    return {
        Rule(rule["protocol"], rule["port_range_min"], rule["remote_ip_prefix"])
        for rule in neutron.list("security-group-rules", security_group_id=group_id)
        if rule["direction"] == "ingress"
    }


def _matches(declared: Any, held: Any) -> bool:
    """Every declared field holds the declared value (Neutron adds fields of its own)."""
    if isinstance(declared, dict):
        return isinstance(held, dict) and all(
            _matches(value, held.get(key)) for key, value in declared.items()
        )
    if isinstance(declared, list):
        return (
            isinstance(held, list)
            and len(declared) == len(held)
            and all(_matches(d, h) for d, h in zip(declared, held, strict=True))
        )
    return bool(declared == held)


def declared_mismatches(deployment: Deployment, neutron: NeutronClient) -> list[str]:
    """Where Neutron does not hold a stack's Neutron resource exactly as the program declared
    it (the request body the mapping made from its inputs); empty when it does."""
    servers = {r.id for r in deployment.resources(INSTANCE)}
    problems = []
    for resource in deployment.state.values():
        mapping = RESOURCES.get(resource.type)
        if mapping is None:
            continue
        if resource.type == ROUTER_INTERFACE:
            port = neutron.show("ports", resource.id)
            subnets = [ip["subnet_id"] for ip in port["fixed_ips"]]
            if port["device_id"] != resource.inputs["routerId"] or subnets != [
                resource.inputs["subnetId"]
            ]:
                problems.append(f"{resource.urn}: router port {port}")
            continue
        assert mapping.collection is not None
        held = neutron.show(mapping.collection, resource.id)
        declared = mapping.create_request(resource.inputs)
        if resource.type == PORT and held["device_id"] in servers:
            # Nova binds the port to the server it boots with it.
            declared = {**declared, "device_owner": "compute:nova"}
            declared.pop("device_id", None)
        if held.get("tenant_id") != deployment.cloud.project_id:
            problems.append(f"{resource.urn}: project {held.get('tenant_id')}")
        if not _matches(declared, held):
            wrong = {
                k: (v, held.get(k)) for k, v in declared.items() if not _matches(v, held.get(k))
            }
            problems.append(f"{resource.urn}: declared vs held {wrong}")
    return problems
