"""From the OpenStack provider's inputs to Neutron's API, for what the program declares.

Pulumi's mocks receive a resource's inputs under the provider's names (camelCase:
``networkId``, ``fixedIps``); Neutron takes its own (``network_id``, ``fixed_ips``). Each
resource and lookup the program uses has one row here: the provider's input names it knows,
and the Neutron fields each one sets, following what terraform-provider-openstack (behind
pulumi-openstack) sends: ``openstack/resource_openstack_networking_*_v2.go`` and
``data_source_openstack_networking_*_v2.go``. An input without a row is an error, never
dropped: ``tests/neutron/test_mapping.py`` checks every name against the provider's Python SDK.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi_openstack as openstack

from .client import Body, NeutronClient

NETWORK = "openstack:networking/network:Network"
SUBNET = "openstack:networking/subnet:Subnet"
ROUTER_INTERFACE = "openstack:networking/routerInterface:RouterInterface"
PORT = "openstack:networking/port:Port"
SEC_GROUP = "openstack:networking/secGroup:SecGroup"
SEC_GROUP_RULE = "openstack:networking/secGroupRule:SecGroupRule"


class UnmappedInput(Exception):
    """The program sent an input the mapping does not know: map it, never drop it."""


def _reject_unknown(where: str, given: Mapping[str, Any], known: Mapping[str, Any]) -> None:
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise UnmappedInput(
            f"{where}: input(s) {', '.join(unknown)} have no Neutron field in "
            "tests/neutron/mapping.py; map them (checked against the provider's SDK there), "
            "never drop them"
        )


@dataclass(frozen=True)
class Nested:
    """An input made of objects (a list of them, or one): the provider's names inside."""

    args: type
    """The SDK's Args class of one element (the schema check reads its names)."""
    fields: Mapping[str, str]
    """Provider name -> Neutron field."""
    convert: Mapping[str, Callable[[Any], Any]] = field(default_factory=dict)
    """Value conversions, by provider name."""

    def to_neutron(self, where: str, value: Mapping[str, Any]) -> Body:
        _reject_unknown(where, value, self.fields)
        return {
            self.fields[name]: self.convert.get(name, _same)(item) for name, item in value.items()
        }


def _same(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class Input:
    """One provider input and the Neutron request fields it sets."""

    neutron: str | None
    """The Neutron field; None when `nested` fields go straight into the body (binding)."""
    nested: Nested | None = None
    many: bool = False
    """A list of `nested` objects."""
    send: Callable[[Any], bool] = lambda value: True
    """Whether the provider's create sends the field for this value at all."""
    value: Callable[[Any], Any] = _same
    sent_on_update: bool = False
    """The provider's update sends the field whatever its value (`send` is for create)."""

    def to_neutron(self, where: str, given: Any, *, update: bool = False) -> Body:
        if not self.send(given) and not (update and self.sent_on_update):
            return {}
        if self.nested is None:
            assert self.neutron is not None
            return {self.neutron: self.value(given)}
        if self.many:
            assert self.neutron is not None
            return {self.neutron: [self.nested.to_neutron(where, item) for item in given]}
        flat = self.nested.to_neutron(where, given)
        return flat if self.neutron is None else {self.neutron: flat}


def same(name: str) -> Input:
    return Input(name)


@dataclass(frozen=True)
class NeutronResource:
    """How one resource type of the provider lives in Neutron."""

    token: str
    args: type
    """The SDK's Args class: every name in `inputs` must be one of its inputs."""
    resource: type
    """The SDK's resource class: every name `outputs` gives must be one of its outputs."""
    collection: str | None
    """Neutron's collection; None for a router interface (an action on a router)."""
    inputs: Mapping[str, Input]
    outputs: Outputs
    """The computed outputs the provider reads back from Neutron's object."""

    def read(self, found: Body) -> Body:
        """The provider's computed outputs from Neutron's object."""
        return {name: get(found) for name, get in self.outputs.items()}

    def create_request(self, inputs: Mapping[str, Any]) -> Body:
        """Neutron's create body for `inputs`."""
        _reject_unknown(self.token, inputs, self.inputs)
        body: Body = {}
        for name, value in inputs.items():
            body.update(self.inputs[name].to_neutron(f"{self.token} {name}", value))
        return body

    def update_request(self, inputs: Mapping[str, Any], changed: set[str]) -> Body:
        """Neutron's update body: the `changed` inputs only, as the provider's update sends."""
        _reject_unknown(self.token, inputs, self.inputs)
        removed = sorted(changed - set(inputs))
        if removed:
            raise UnmappedInput(
                f"{self.token}: removing input(s) {', '.join(removed)} on an update is not "
                "modelled in tests/neutron/mapping.py"
            )
        body: Body = {}
        for name in sorted(changed):
            where = f"{self.token} {name}"
            body.update(self.inputs[name].to_neutron(where, inputs[name], update=True))
        return body


def _pools(found: Body) -> list[Body]:
    return [{"start": pool["start"], "end": pool["end"]} for pool in found["allocation_pools"]]


def _ips(port: Body) -> list[str]:
    return [ip["ip_address"] for ip in port["fixed_ips"]]


Outputs = Mapping[str, Callable[[Body], Any]]
"""Provider output name -> how the provider reads it from Neutron's object."""

_TENANT: Outputs = {"tenantId": lambda found: found["tenant_id"]}
_SUBNET_OUTPUTS: Outputs = {
    **_TENANT,
    "gatewayIp": lambda subnet: subnet["gateway_ip"] or "",
    "allocationPools": _pools,
    "enableDhcp": lambda subnet: subnet["enable_dhcp"],
    "ipVersion": lambda subnet: subnet["ip_version"],
}
_PORT_OUTPUTS: Outputs = {
    **_TENANT,
    "macAddress": lambda port: port["mac_address"],
    "allFixedIps": _ips,
    "allSecurityGroupIds": lambda port: list(port["security_groups"]),
    "portSecurityEnabled": lambda port: port["port_security_enabled"],
    "adminStateUp": lambda port: port["admin_state_up"],
}
_ROUTER_INTERFACE_OUTPUTS: Outputs = {
    "portId": lambda interface: interface["port_id"],
    "subnetId": lambda interface: interface["subnet_id"],
}


# terraform-provider-openstack sends gateway_ip "" (JSON null) for no_gateway = true, and
# nothing for false; port security groups only when the list is not empty (an empty list is
# "not specified": Neutron then applies the project's default group).
_PORT_FIXED_IP = Nested(
    openstack.networking.PortFixedIpArgs, {"subnetId": "subnet_id", "ipAddress": "ip_address"}
)
_PORT_BINDING = Nested(
    openstack.networking.PortBindingArgs,
    {"hostId": "binding:host_id", "vnicType": "binding:vnic_type", "profile": "binding:profile"},
    convert={"profile": lambda raw: json.loads(raw) if raw else {}},
)
_ALLOCATION_POOL = Nested(
    openstack.networking.SubnetAllocationPoolArgs, {"start": "start", "end": "end"}
)

RESOURCES: dict[str, NeutronResource] = {
    r.token: r
    for r in (
        NeutronResource(
            NETWORK,
            openstack.networking.NetworkArgs,
            openstack.networking.Network,
            "networks",
            {
                "name": same("name"),
                "description": same("description"),
                "adminStateUp": same("admin_state_up"),
                "portSecurityEnabled": same("port_security_enabled"),
            },
            _TENANT,
        ),
        NeutronResource(
            SUBNET,
            openstack.networking.SubnetArgs,
            openstack.networking.Subnet,
            "subnets",
            {
                "name": same("name"),
                "description": same("description"),
                "networkId": same("network_id"),
                "cidr": same("cidr"),
                "ipVersion": same("ip_version"),
                "enableDhcp": same("enable_dhcp"),
                "gatewayIp": same("gateway_ip"),
                "noGateway": Input("gateway_ip", send=bool, value=lambda _: None),
                "allocationPools": Input("allocation_pools", _ALLOCATION_POOL, many=True),
                "dnsNameservers": same("dns_nameservers"),
            },
            _SUBNET_OUTPUTS,
        ),
        NeutronResource(
            ROUTER_INTERFACE,
            openstack.networking.RouterInterfaceArgs,
            openstack.networking.RouterInterface,
            None,
            {
                # The router is the URL (PUT /routers/<id>/add_router_interface).
                "routerId": same("router_id"),
                "subnetId": same("subnet_id"),
                "portId": same("port_id"),
            },
            _ROUTER_INTERFACE_OUTPUTS,
        ),
        NeutronResource(
            PORT,
            openstack.networking.PortArgs,
            openstack.networking.Port,
            "ports",
            {
                "name": same("name"),
                "description": same("description"),
                "networkId": same("network_id"),
                "adminStateUp": same("admin_state_up"),
                "deviceId": same("device_id"),
                "deviceOwner": same("device_owner"),
                "fixedIps": Input("fixed_ips", _PORT_FIXED_IP, many=True),
                "securityGroupIds": Input("security_groups", send=bool, sent_on_update=True),
                "noSecurityGroups": Input("security_groups", send=bool, value=lambda _: []),
                "portSecurityEnabled": same("port_security_enabled"),
                "binding": Input(None, _PORT_BINDING),
            },
            _PORT_OUTPUTS,
        ),
        NeutronResource(
            SEC_GROUP,
            openstack.networking.SecGroupArgs,
            openstack.networking.SecGroup,
            "security-groups",
            {"name": same("name"), "description": same("description")},
            _TENANT,
        ),
        NeutronResource(
            SEC_GROUP_RULE,
            openstack.networking.SecGroupRuleArgs,
            openstack.networking.SecGroupRule,
            "security-group-rules",
            {
                "securityGroupId": same("security_group_id"),
                "description": same("description"),
                "direction": same("direction"),
                "ethertype": same("ethertype"),
                "protocol": same("protocol"),
                "portRangeMin": same("port_range_min"),
                "portRangeMax": same("port_range_max"),
                "remoteIpPrefix": same("remote_ip_prefix"),
                "remoteGroupId": same("remote_group_id"),
            },
            _TENANT,
        ),
    )
}


def pulumi_names(cls: type) -> set[str]:
    """The provider's names of an SDK class's properties (Args, resource or result class)."""
    return {
        getattr(member.fget, "_pulumi_name", name)
        for name, member in vars(cls).items()
        if isinstance(member, property)
    }


# -- lookups (provider invokes) ------------------------------------------------------------


class NoResults(Exception):
    """What the provider's data source says when Neutron finds nothing (or too much)."""


@dataclass(frozen=True)
class NeutronLookup:
    token: str
    function: Callable[..., Any]
    """The SDK's function: every name in `args` must be one of its arguments."""
    result: type
    """The SDK's result class: every name the answer gives must be one of its fields."""
    args: Mapping[str, str]
    """Provider argument -> the Neutron list filter it becomes."""
    answer: Callable[[NeutronClient, Body], Body]
    """Neutron's list under the filters -> the provider's answer."""

    def __call__(self, neutron: NeutronClient, args: Mapping[str, Any]) -> Body:
        _reject_unknown(self.token, args, self.args)
        # The data sources skip unset (zero) arguments, as GetOk does.
        filters = {self.args[name]: str(value) for name, value in args.items() if value}
        answer = self.answer(neutron, filters)
        unknown = sorted(set(answer) - pulumi_names(self.result))
        assert not unknown, f"{self.token} answers {unknown}, not fields of {self.result}"
        return answer


def _one_subnet(neutron: NeutronClient, filters: Body) -> Body:
    found = neutron.list("subnets", **filters)
    if len(found) != 1:
        # data_source_openstack_networking_subnet_v2.go's two errors.
        raise NoResults(
            "Your query returned no openstack_networking_subnet_v2. Please change your search "
            "criteria and try again."
            if not found
            else "Your query returned more than one openstack_networking_subnet_v2. Please try "
            "a more specific search criteria"
        )
    subnet = found[0]
    return {
        "id": subnet["id"],
        "subnetId": subnet["id"],
        "name": subnet["name"],
        "description": subnet["description"],
        "tenantId": subnet["tenant_id"],
        "networkId": subnet["network_id"],
        "cidr": subnet["cidr"],
        "ipVersion": subnet["ip_version"],
        "gatewayIp": subnet["gateway_ip"] or "",
        "enableDhcp": subnet["enable_dhcp"],
        "dnsNameservers": subnet["dns_nameservers"],
        "allocationPools": _pools(subnet),
    }


def _subnet_ids(neutron: NeutronClient, filters: Body) -> Body:
    ids = [subnet["id"] for subnet in neutron.list("subnets", **filters)]
    return {"id": ",".join(ids), "ids": ids}


def _port_ids(neutron: NeutronClient, filters: Body) -> Body:
    # The data source lists by the other filters and keeps the ports holding fixed_ip itself.
    fixed_ip = filters.pop("fixed_ip", None)
    ids = [
        port["id"]
        for port in neutron.list("ports", **filters)
        if fixed_ip is None or any(ip["ip_address"] == fixed_ip for ip in port["fixed_ips"])
    ]
    return {"id": ",".join(ids), "ids": ids}


def _one_port(neutron: NeutronClient, filters: Body) -> Body:
    found = neutron.list("ports", **filters)
    if len(found) != 1:
        raise NoResults(
            "Your query returned no openstack_networking_port_v2. Please change your search "
            "criteria and try again."
            if not found
            else "More than one openstack_networking_port_v2 found"
        )
    port = found[0]
    return {
        "id": port["id"],
        "portId": port["id"],
        "name": port["name"],
        "networkId": port["network_id"],
        "tenantId": port["tenant_id"],
        "deviceId": port["device_id"],
        "deviceOwner": port["device_owner"],
        "macAddress": port["mac_address"],
        "status": port["status"],
        "allFixedIps": _ips(port),
        "allSecurityGroupIds": list(port["security_groups"]),
    }


def _one_network(neutron: NeutronClient, filters: Body) -> Body:
    found = neutron.list("networks", **filters)
    if len(found) != 1:
        # data_source_openstack_networking_network_v2.go's two errors.
        raise NoResults(
            "Your query returned no openstack_networking_network_v2. Please change your search "
            "criteria and try again."
            if not found
            else "Your query returned more than one openstack_networking_network_v2. Please try "
            "a more specific search criteria"
        )
    network = found[0]
    return {
        "id": network["id"],
        "networkId": network["id"],
        "name": network["name"],
        "description": network["description"],
        "tenantId": network["tenant_id"],
        "adminStateUp": str(network["admin_state_up"]).lower(),
        "subnets": list(network["subnets"]),
    }


LOOKUPS: dict[str, NeutronLookup] = {
    lookup.token: lookup
    for lookup in (
        NeutronLookup(
            "openstack:networking/getSubnet:getSubnet",
            openstack.networking.get_subnet,
            openstack.networking.GetSubnetResult,
            {"subnetId": "id", "networkId": "network_id", "name": "name", "cidr": "cidr"},
            _one_subnet,
        ),
        NeutronLookup(
            "openstack:networking/getSubnetIdsV2:getSubnetIdsV2",
            openstack.networking.get_subnet_ids_v2,
            openstack.networking.GetSubnetIdsV2Result,
            {
                "networkId": "network_id",
                "name": "name",
                "cidr": "cidr",
                "gatewayIp": "gateway_ip",
            },
            _subnet_ids,
        ),
        NeutronLookup(
            "openstack:networking/getPortIds:getPortIds",
            openstack.networking.get_port_ids,
            openstack.networking.GetPortIdsResult,
            {"networkId": "network_id", "fixedIp": "fixed_ip", "deviceId": "device_id"},
            _port_ids,
        ),
        NeutronLookup(
            "openstack:networking/getNetwork:getNetwork",
            openstack.networking.get_network,
            openstack.networking.GetNetworkResult,
            {"networkId": "id", "name": "name"},
            _one_network,
        ),
        NeutronLookup(
            "openstack:networking/getPort:getPort",
            openstack.networking.get_port,
            openstack.networking.GetPortResult,
            {"portId": "id", "networkId": "network_id", "deviceId": "device_id"},
            _one_port,
        ),
    )
}
