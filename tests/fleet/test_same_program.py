"""The fleet runs the very program ``pulumi up`` runs: same tenant, same declarations.

``pulumi up`` runs ``__main__.py`` with the operator's ``Pulumi.<stack>.yaml``; the fleet runs
``share_server_program`` inline with the config it builds from the tenants file. For one
tenant both must register the same resources (URNs, options, inputs), here under the
simulated cloud, and through the Automation API and the stand-in CLI.
"""

from __future__ import annotations

import io
import json
import re
import runpy
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, cast

import pulumi
import pytest
from pulumi.automation import PulumiCommand

from dhss_components.fleet.allocation import allocate_service_subnets
from dhss_components.fleet.options import FleetOptions
from dhss_components.fleet.runner import Fleet
from dhss_components.fleet.stack_config import subnet_request, tenant_config
from dhss_components.fleet.tenants import TenantsFile, load_tenants_file, parse_tenants
from dhss_components.simulated_cloud import RecordingMonitor, SimulatedCloud
from tests.clouds import devstack_cloud
from tests.fleet.fleet_env import Bed, programs, tenant_network, tenants_document
from tests.stack_run import write_key_pair

# pulumi_command's deprecated CopyFile module is loaded along with the others; not ours.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pulumi_command.*")

REPO = Path(__file__).resolve().parents[2]
# Neutron hands out MAC addresses in the order ports are created, and a program creates its
# ports concurrently: the one input that may differ between two runs of the same program.
MAC = re.compile(r"fa:16:3e(:[0-9a-f]{2}){3}")
# Nova's ids: a server is a new UUID wherever it is made, and an attachment's id carries it;
# compared by what they stand for.
NOVA_TYPES = ("openstack:compute/instance:Instance", "openstack:compute/volumeAttach:VolumeAttach")


def cloud_for(index: int) -> SimulatedCloud:
    cloud = devstack_cloud()
    net = tenant_network(index)
    cloud.add_network(net["name"], net["net"])
    cloud.add_subnet(net["net"], net["cidr"], name=net["name"], subnet_id=net["subnet"])
    cloud.add_router(net["subnet"], net["router"])
    return cloud


def declared(
    config: Mapping[str, str], secret_keys: list[str], program: Callable[[], Any]
) -> dict[str, tuple[Any, ...]]:
    """URN -> (type, parent, protect, dependencies, inputs) of every registration."""
    cloud = cloud_for(1)
    monitor = RecordingMonitor(cloud)
    pulumi.runtime.set_mocks(
        cloud, project="manila-dhss", stack="tenant-01", preview=False, monitor=monitor
    )
    pulumi.runtime.set_all_config(dict(config), secret_keys=secret_keys)
    pulumi.runtime.test(lambda: (program(), None)[1])()  # type: ignore[no-untyped-call]
    ids = {r.id: f"<{r.name}>" for r in cloud.resources.values() if r.typ in NOVA_TYPES}
    return {
        urn: normalized(r.type, r.parent, r.protect, r.dependencies, r.raw_inputs, ids=ids)
        for urn, r in monitor.registrations.items()
    }


def normalized(
    typ: str,
    parent: str,
    protect: bool,
    dependencies: list[str],
    inputs: Any,
    *,
    ids: Mapping[str, str],
) -> tuple[Any, ...]:
    text = MAC.sub("fa:16:3e:xx:xx:xx", json.dumps(inputs, sort_keys=True))
    for found in sorted(ids, key=len, reverse=True):  # an attachment's id holds its server's
        text = text.replace(found, ids[found])
    return (typ, parent, protect, tuple(sorted(dependencies)), text)


@pytest.fixture
def document(tmp_path: Path) -> dict[str, Any]:
    document = tenants_document(write_key_pair(tmp_path), [1])
    document["backend"]["service_instance_password"] = "s3cr3t-manila"
    return document


def fleet_for(tenants: TenantsFile, tmp_path: Path) -> Fleet:
    options = FleetOptions(operation="up", work_root=tmp_path, log_dir=tmp_path)
    return Fleet(tenants, options, cast(PulumiCommand, None), io.StringIO())


def test_the_fleet_declares_what_pulumi_up_declares(
    document: dict[str, Any], tmp_path: Path
) -> None:
    # pulumi up: the stack config file holds the three objects (the password set with
    # `pulumi config set --secret --path`), the CLI hands each object to __main__.py as JSON.
    entry = document["tenants"]["tenant-01"]
    stack_config = {
        "dhss:backend": document["backend"],
        "dhss:shareNetwork": entry["shareNetwork"],
        "dhss:shares": entry["shares"],
    }
    by_main = declared(
        {key: json.dumps(value) for key, value in stack_config.items()},
        ["dhss:backend"],
        lambda: runpy.run_path(str(REPO / "__main__.py")),
    )

    # The fleet: its config for this tenant, with the block it allocated, and its program.
    tenants = parse_tenants(document)
    (tenant,) = tenants.tenants
    request = subnet_request(tenant)
    assert request is not None
    config = tenant_config(tenant, allocate_service_subnets([request], {}).cidrs["tenant-01"])
    by_fleet = declared(
        {key: value.value for key, value in config.items()},
        [key for key, value in config.items() if value.secret],
        fleet_for(tenants, tmp_path).program,
    )

    assert len(by_main) > 15
    assert by_fleet.keys() == by_main.keys()
    for urn, registration in by_main.items():
        assert by_fleet[urn] == registration, urn


def test_through_the_automation_api_the_program_declares_the_same(bed: Bed) -> None:
    path = bed.tenants([1])
    assert bed.fleet("up", str(path)).code == 0
    (run,) = programs(bed.cli, "tenant-01", "up")
    ids = {r["id"]: f"<{r['name']}>" for r in run["registrations"] if r["type"] in NOVA_TYPES}
    through_cli = {
        r["urn"]: normalized(
            r["type"], r["parent"], r["protect"], r["dependencies"], r["inputs"], ids=ids
        )
        for r in run["registrations"]
        if r["type"] != "pulumi:pulumi:Stack"  # the mocks do not record the stack itself
    }

    tenants = load_tenants_file(path)
    config = tenant_config(tenants.tenants[0], bed.ledger()["tenant-01"])
    by_mocks = declared(
        {key: value.value for key, value in config.items()}, [], fleet_for(tenants, bed.tmp).program
    )

    assert len(by_mocks) > 15
    assert through_cli.keys() == by_mocks.keys()
    for urn, registration in by_mocks.items():
        assert through_cli[urn] == registration, urn
