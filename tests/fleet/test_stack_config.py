"""Each tenant's stack config, as the fleet sets it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pulumi.automation import ConfigValue

from dhss_components.config import parse_stack_config
from dhss_components.fleet.stack_config import (
    final_config_problems,
    stale_keys,
    subnet_request,
    tenant_config,
)
from dhss_components.fleet.tenants import Tenant, parse_tenants
from tests.clouds import DEVSTACK_ADMIN_NET, DEVSTACK_ADMIN_SUBNET, DEVSTACK_SERVICE_NET
from tests.fleet.fleet_env import tenant_network, tenants_document
from tests.stack_run import write_key_pair


@pytest.fixture
def document(tmp_path: Path) -> dict[str, Any]:
    return tenants_document(write_key_pair(tmp_path), [1, 2])


def one(document: dict[str, Any], name: str = "tenant-01") -> Tenant:
    return next(t for t in parse_tenants(document).tenants if t.name == name)


def test_the_config_is_the_three_objects_with_the_block_pinned(document: dict[str, Any]) -> None:
    config = tenant_config(one(document), "10.254.0.16/28")

    assert set(config) == {"dhss:backend", "dhss:shareNetwork", "dhss:shares"}
    assert not any(value.secret for value in config.values())
    assert json.loads(config["dhss:backend"].value) == document["backend"]
    assert json.loads(config["dhss:shareNetwork"].value) == {
        "neutron_net_id": tenant_network(1)["net"],
        "neutron_subnet_id": tenant_network(1)["subnet"],
        "service_subnet_cidr": "10.254.0.16/28",
    }
    assert json.loads(config["dhss:shares"].value) == document["tenants"]["tenant-01"]["shares"]
    # What the program will read is valid as it stands.
    parsed = parse_stack_config(
        *(json.loads(config[f"dhss:{k}"].value) for k in ("backend", "shareNetwork", "shares"))
    )
    assert str(parsed.share_network.service_subnet_cidr) == "10.254.0.16/28"


def test_a_password_makes_the_backend_secret(document: dict[str, Any]) -> None:
    document["tenants"]["tenant-02"]["backend"] = {"service_instance_password": "s3cr3t"}

    plain = tenant_config(one(document, "tenant-01"), None)
    secret = tenant_config(one(document, "tenant-02"), None)

    assert not plain["dhss:backend"].secret
    assert secret["dhss:backend"].secret
    assert repr(secret["dhss:backend"]) == "[secret]"  # never printed by accident
    assert not secret["dhss:shares"].secret


def test_the_cloud_is_set_only_when_the_file_names_one(document: dict[str, Any]) -> None:
    assert "openstack:cloud" not in tenant_config(one(document), None)
    document["tenants"]["tenant-01"]["openstack:cloud"] = "region-two"
    assert tenant_config(one(document), None)["openstack:cloud"].value == "region-two"


def test_only_keys_the_fleet_manages_are_removed() -> None:
    wanted = {"dhss:backend": ConfigValue("{}"), "dhss:shares": ConfigValue("[]")}
    existing = ["dhss:backend", "dhss:shareNetwork", "openstack:cloud", "openstack:region", "x:y"]

    assert stale_keys(existing, wanted) == ["dhss:shareNetwork", "openstack:cloud"]


def test_only_a_shared_service_network_needs_a_block(document: dict[str, Any]) -> None:
    request = subnet_request(one(document))
    assert request is not None
    assert (request.network_id, str(request.pool), request.mask) == (
        DEVSTACK_SERVICE_NET,
        "10.254.0.0/16",
        28,
    )

    document["tenants"]["tenant-01"]["shareNetwork"]["service_subnet_cidr"] = "10.254.9.0/28"
    assert str(subnet_request(one(document)).pinned) == "10.254.9.0/28"  # type: ignore[union-attr]

    # A service network of its own, but its host port is plugged on service_network_host
    # beside every other such tenant's: one pool per host, as Manila's one network per host.
    del document["backend"]["service_network_id"]
    own = subnet_request(one(document))
    assert own is not None
    assert (own.network_id, own.in_cloud) == ("service_network_host:devstack", False)
    assert own.pool_name == "the service networks plugged on host devstack"

    # With nothing plugged on the host (Noop), its network is its own: nothing to share.
    document["backend"].update(
        interface_driver="manila.network.linux.interface.NoopInterfaceDriver",
        ssh_source_cidrs=["192.0.2.10/32"],
    )
    assert subnet_request(one(document)) is None
    for key in ("interface_driver", "ssh_source_cidrs"):
        del document["backend"][key]

    # Manila's mode C has no service subnet at all (and a pinned block is refused there).
    del document["tenants"]["tenant-01"]["shareNetwork"]["service_subnet_cidr"]
    document["backend"].update(
        connect_share_server_to_tenant_network=True,
        admin_network_id=DEVSTACK_ADMIN_NET,
        admin_subnet_id=DEVSTACK_ADMIN_SUBNET,
        service_network_id=DEVSTACK_SERVICE_NET,
    )
    assert subnet_request(one(document)) is None


def test_a_remembered_block_outside_the_pool_is_a_problem_of_that_tenant(
    document: dict[str, Any],
) -> None:
    (problem,) = final_config_problems(one(document), "192.168.0.0/28")

    assert problem.key == "tenants[tenant-01].shareNetwork.service_subnet_cidr"
    assert "is not a /28 inside service_network_cidr 10.254.0.0/16" in problem.message
