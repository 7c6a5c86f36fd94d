"""The simulated cloud and the real Neutron, on the same cases: the program declares the same
resources with the same inputs on both, or both refuse it for the same reason.

The simulated cloud stands in for Neutron in the unit tests, the benchmarks and the offline
plan. Where both are used, they must agree on what the program can notice. Known differences
that the program cannot notice, and so are not compared:

- addresses: the simulated cloud hands out the first free pool address, Neutron a random one
  (its IPAM picks among the free addresses); only the pinned host port address is the same;
- DHCP ports: the simulated cloud makes one per subnet (as a DHCP agent would), this Neutron
  has no DHCP agent and makes none;
- MAC addresses and the ids of what the program creates.
The simulated cloud's choices are rewritten as Neutron's for the same resource before
comparing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dhss_components.simulated_cloud import SimulatedCloud, run_program
from tests.stack_run import PROJECT

from .client import NeutronClient
from .clouds import (
    SERVICE_IMAGE,
    Builder,
    Cloud,
    Driver,
    NetworkMode,
    devstack_cloud,
    stack_config,
)
from .conftest import make_deployment


def simulated_twin(neutron: NeutronClient, cloud: Cloud) -> SimulatedCloud:
    """The simulated cloud holding what Neutron holds for `cloud`, under the same ids."""
    dump = neutron.dump(cloud.projects)
    twin = SimulatedCloud()
    for network in dump["networks"].values():
        twin.add_network(network["name"], network["id"])
    for subnet in dump["subnets"].values():
        twin.add_subnet(
            subnet["network_id"],
            subnet["cidr"],
            name=subnet["name"],
            subnet_id=subnet["id"],
            gateway=subnet["gateway_ip"] is not None,
        )
        assert twin.subnets[subnet["id"]].gateway_ip == subnet["gateway_ip"]
        pool = subnet["allocation_pools"][0]
        twin.subnets[subnet["id"]].pool = (pool["start"], pool["end"])
    for port in dump["ports"].values():
        if port["device_owner"] == "network:router_interface":
            twin.routers.add(port["device_id"])
        twin.add_port(
            port["network_id"],
            [(ip["subnet_id"], ip["ip_address"]) for ip in port["fixed_ips"]],
            device_id=port["device_id"],
            device_owner=port["device_owner"],
            port_id=port["id"],
        )
    twin.add_image(SERVICE_IMAGE)
    return twin


# -- what each cloud did with the program -------------------------------------------------------


@dataclass
class Made:
    """What one cloud made for the program, by resource name: ids and computed outputs."""

    ids: dict[str, str]
    outputs: dict[str, dict[str, Any]]

    def values(self, name: str) -> list[str]:
        """The values the cloud chose for this resource, in a fixed order."""
        outputs = self.outputs.get(name, {})
        resource_id = self.ids.get(name, "")
        found = [resource_id, f"tap{resource_id[:11]}" if resource_id else ""]
        found += [outputs.get("macAddress") or "", outputs.get("portId") or ""]
        found += list(outputs.get("allFixedIps") or [])
        return found


def _translator(simulated: Made, real: Made) -> Callable[[Any], Any]:
    """Rewrite the simulated cloud's choices (ids, MACs, addresses, the device names made
    from port ids) as Neutron's choices for the same resource."""
    tokens: dict[str, str] = {}
    for name in simulated.ids.keys() & real.ids.keys():
        for mine, theirs in zip(simulated.values(name), real.values(name), strict=False):
            if mine and theirs:
                tokens[mine] = theirs
    if not tokens:
        return lambda value: value
    pattern = re.compile(
        r"(?<![\w.])("
        + "|".join(re.escape(t) for t in sorted(tokens, key=len, reverse=True))
        + r")(?!\w)"
    )

    def translate(value: Any) -> Any:
        if isinstance(value, str):
            # A command's script (after its heredoc) is the same file on both sides, and
            # its example addresses are no one's.
            head, heredoc, script = value.partition("<<'")
            return pattern.sub(lambda match: tokens[match.group(1)], head) + heredoc + script
        if isinstance(value, list):
            return [translate(item) for item in value]
        if isinstance(value, dict):
            return {key: translate(item) for key, item in value.items()}
        return value

    return translate


@dataclass
class Outcome:
    declared: dict[str, Any] | None = None
    """URN -> the inputs the program declared; None when refused."""
    outputs: dict[str, Any] | None = None
    made: Made | None = None
    refused: str | None = None
    """Why the cloud (or the program, from what it found) refused."""


# The same refusal in each cloud's words.
REFUSALS = {
    "overlaps with another subnet": "a subnet overlapping another on its network",
    "overlaps with cidr": "a router interface overlapping a subnet already on the router",
    "does not have a gateway IP": "a router interface for a subnet without a gateway",
}


def _refusal(error: Exception) -> str:
    message = str(error)
    for phrase, meaning in REFUSALS.items():
        if phrase in message:
            return meaning
    return message  # the program's own errors, from what discovery found


def _on_simulated(twin: SimulatedCloud, config: dict[str, Any]) -> Outcome:
    try:
        run = run_program(twin, config, project=PROJECT, stack="dev")
    except Exception as error:
        return Outcome(refused=_refusal(error))
    made = Made(
        {r.name: r.id for r in twin.resources.values()},
        {r.name: r.state for r in twin.resources.values()},
    )
    declared = {urn: r.raw_inputs for urn, r in run.monitor.registrations.items()}
    return Outcome(declared, run.outputs, made)


def _on_neutron(neutron: NeutronClient, cloud: Cloud, config: dict[str, Any]) -> Outcome:
    deployment = make_deployment(neutron, cloud)
    try:
        up = deployment.up(config)
    except Exception as error:
        return Outcome(refused=_refusal(error))
    custom = [r for r in deployment.state.values() if r.custom]
    made = Made(
        {r.urn.split("::")[-1]: r.id for r in custom},
        {r.urn.split("::")[-1]: r.outputs for r in custom},
    )
    assert deployment.monitor is not None
    declared = {urn: r.raw_inputs for urn, r in deployment.monitor.registrations.items()}
    return Outcome(declared, up.outputs, made)


# -- the cases --------------------------------------------------------------------------------


def _as_is(neutron: NeutronClient, cloud: Cloud, config: dict[str, Any]) -> None:
    pass


def _pinned_onto_a_service_subnet(
    neutron: NeutronClient, cloud: Cloud, config: dict[str, Any]
) -> None:
    build = Builder(neutron, cloud.service_project.rsplit("-", 1)[0])
    build.subnet(cloud.service_project, cloud.service_net, "10.254.0.0/28", "manila-made")
    config["shareNetwork"]["service_subnet_cidr"] = "10.254.0.0/28"


def _pool_around_the_tenant_subnet(
    neutron: NeutronClient, cloud: Cloud, config: dict[str, Any]
) -> None:
    # The case: the first /28 of the pool overlaps the tenant's subnet on its router.
    config["backend"]["service_network_cidr"] = "10.0.0.0/16"


def _tenant_subnet(gateway: bool) -> Callable[[NeutronClient, Cloud, dict[str, Any]], None]:
    def prepare(neutron: NeutronClient, cloud: Cloud, config: dict[str, Any]) -> None:
        build = Builder(neutron, cloud.service_project.rsplit("-", 1)[0])
        extra = {} if gateway else {"gateway_ip": None}
        subnet = build.subnet(
            build.project("tenant"), cloud.tenant_net, "10.0.1.0/24", "unrouted", **extra
        )
        config["shareNetwork"]["neutron_subnet_id"] = subnet

    return prepare


CASES: dict[
    str, tuple[NetworkMode, Driver, Callable[[NeutronClient, Cloud, dict[str, Any]], None]]
] = {
    "router": ("router", "ovs", _as_is),
    "router-noop": ("router", "noop", _as_is),
    "direct": ("direct", "ovs", _as_is),
    "direct+admin": ("direct+admin", "ovs", _as_is),
    "router+admin": ("router+admin", "ovs", _as_is),
    "pinned onto a service subnet": ("router", "ovs", _pinned_onto_a_service_subnet),
    "pool around the tenant subnet": ("router", "ovs", _pool_around_the_tenant_subnet),
    "tenant subnet without gateway": ("router", "ovs", _tenant_subnet(gateway=False)),
    "tenant gateway on no router": ("router", "ovs", _tenant_subnet(gateway=True)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_simulated_cloud_and_neutron_agree(
    neutron: NeutronClient, prefix: str, keys: tuple[Path, Path], case: str
) -> None:
    mode, driver, prepare = CASES[case]
    cloud = devstack_cloud(neutron, prefix)
    config = stack_config(cloud, keys, mode, driver)
    prepare(neutron, cloud, config)
    simulated = _on_simulated(simulated_twin(neutron, cloud), config)
    real = _on_neutron(neutron, cloud, config)
    assert simulated.refused == real.refused, (
        f"simulated: {simulated.refused or 'declared the stack'}; "
        f"Neutron: {real.refused or 'declared the stack'}"
    )
    if real.refused is None:
        assert simulated.made is not None
        assert real.made is not None
        as_neutron = _translator(simulated.made, real.made)
        declared = as_neutron(simulated.declared)
        assert real.declared is not None
        differ = {
            urn: (declared.get(urn), real.declared.get(urn))
            for urn in declared.keys() | real.declared.keys()
            if declared.get(urn) != real.declared.get(urn)
        }
        assert not differ, f"declared differently (simulated, Neutron): {differ}"
        assert as_neutron(simulated.outputs) == real.outputs
