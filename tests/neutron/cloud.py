"""A cloud whose network half is a real Neutron and whose Nova, Cinder and Glance are simulated.

The engine (``engine.py``) asks it to create, update and delete resources; the program's
lookups come to ``call``. Neutron's resources and lookups go to the Neutron server through the
mapping (``mapping.py``), with the inputs exactly as declared, under the deploying project;
whatever Neutron refuses raises ``NeutronError`` with Neutron's message. The other types are
the simulated cloud's, except that the simulated Nova works on Neutron's ports as Nova does.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from pulumi.runtime import MockCallArgs, MockResourceArgs

from dhss_components.simulated_cloud import CloudError, SimulatedCloud

from .client import Body, NeutronClient, NeutronError
from .mapping import LOOKUPS, RESOURCES, ROUTER_INTERFACE, NeutronResource

NEUTRON_TOKEN_PREFIX = "openstack:networking/"


class NeutronCloud(SimulatedCloud):
    """Neutron (real) for the network half; the simulated cloud for the rest."""

    def __init__(self, neutron: NeutronClient, project_id: str) -> None:
        super().__init__()
        self.neutron = neutron
        self.project_id = project_id
        """The project the stack deploys as (Manila's service project): every create's
        tenant_id, as the provider's token would give it."""
        self.neutron_writes = 0
        """POST, PUT and DELETE requests sent to Neutron (a re-run that changes nothing sends
        none)."""

    # -- the provider, as the engine sees it ---------------------------------------------

    def create(self, type_: str, name: str, inputs: Mapping[str, Any]) -> tuple[str, Body]:
        resource = RESOURCES.get(type_)
        if resource is not None:
            return self._create_in_neutron(resource, inputs)
        if type_.startswith(NEUTRON_TOKEN_PREFIX):
            raise CloudError(f"{type_} has no row in tests/neutron/mapping.py")
        resource_id = str(uuid.uuid4())
        handler = self._handlers.get(type_)
        extra = handler(MockResourceArgs(type_, name, dict(inputs)), resource_id) if handler else {}
        return resource_id, {**inputs, **extra}

    def update(
        self,
        type_: str,
        resource_id: str,
        inputs: Mapping[str, Any],
        changed: set[str],
        outputs: Mapping[str, Any],
    ) -> Body:
        resource = RESOURCES.get(type_)
        if resource is None:
            # Simulated: the new inputs, and the computed outputs the cloud gave before.
            return {**{k: v for k, v in outputs.items() if k not in changed}, **inputs}
        assert resource.collection is not None, f"{type_} is never updated in place"
        body = resource.update_request(inputs, changed)
        if body:
            self._write()
            found = self.neutron.update(resource.collection, resource_id, body)
        else:
            found = self.neutron.show(resource.collection, resource_id)
        return {**inputs, **resource.read(found)}

    def delete(self, type_: str, resource_id: str, outputs: Mapping[str, Any]) -> None:
        resource = RESOURCES.get(type_)
        if resource is None:
            if type_ == "openstack:compute/instance:Instance":
                self._release_ports(resource_id, outputs)
                self.instances.discard(resource_id)
            return
        self._write()
        try:
            if resource.collection is None:
                # Only the subnet when there is one (the port may carry other interfaces).
                self.neutron.remove_router_interface(
                    outputs["routerId"],
                    {"subnet_id": outputs["subnetId"]}
                    if outputs.get("subnetId")
                    else {"port_id": outputs["portId"]},
                )
            else:
                self.neutron.delete(resource.collection, resource_id)
        except NeutronError as error:
            if error.status != 404:  # the provider counts a 404 as deleted
                raise

    # -- Neutron ---------------------------------------------------------------------------

    def _write(self) -> None:
        self.neutron_writes += 1

    def _create_in_neutron(
        self, resource: NeutronResource, inputs: Mapping[str, Any]
    ) -> tuple[str, Body]:
        body = resource.create_request(inputs)
        self._write()
        if resource.collection is None:
            assert resource.token == ROUTER_INTERFACE
            router_id = body.pop("router_id")
            interface = self.neutron.add_router_interface(router_id, body)
            # The provider's id for an interface is its port's.
            return interface["port_id"], {**inputs, **resource.read(interface)}
        created = self.neutron.create(resource.collection, {**body, "tenant_id": self.project_id})
        return created["id"], {**inputs, **resource.read(created)}

    # -- the simulated Nova, on Neutron's ports ----------------------------------------------

    def _instance(self, args: MockResourceArgs, resource_id: str) -> dict[str, Any]:
        self.instances.add(resource_id)  # what the simulated Cinder/Nova attach looks for
        networks = []
        for nic in args.inputs.get("networks", []):
            port = self.neutron.show("ports", nic["port"])
            if port["device_id"]:
                # nova/network/neutron.py _validate_requested_port_ids: PortInUse.
                raise CloudError(f"Port {port['id']} is still in use.")
            # Nova binds the port to the server (device_id, owner compute:<zone>).
            self._write()
            self.neutron.update(
                "ports", port["id"], {"device_id": resource_id, "device_owner": "compute:nova"}
            )
            networks.append(
                {
                    **nic,
                    "uuid": port["network_id"],
                    "fixedIpV4": port["fixed_ips"][0]["ip_address"],
                }
            )
        first = networks[0]["fixedIpV4"] if networks else ""
        return {"accessIpV4": first, "networks": networks, "powerState": "active"}

    def _release_ports(self, server_id: str, outputs: Mapping[str, Any]) -> None:
        # Nova unbinds the ports it did not create when the server goes (_unbind_ports).
        for nic in outputs.get("networks", []):
            try:
                port = self.neutron.show("ports", nic["port"])
            except NeutronError as error:
                if error.status == 404:
                    continue
                raise
            if port["device_id"] == server_id:
                self._write()
                self.neutron.update("ports", port["id"], {"device_id": "", "device_owner": ""})

    # -- lookups ---------------------------------------------------------------------------

    def call(self, args: MockCallArgs) -> dict[str, Any]:  # type: ignore[override]
        lookup = LOOKUPS.get(args.token)
        if lookup is not None:
            self.invokes.append(args)
            return lookup(self.neutron, args.args)
        if args.token.startswith(NEUTRON_TOKEN_PREFIX):
            raise CloudError(f"{args.token} has no row in tests/neutron/mapping.py")
        return super().call(args)
