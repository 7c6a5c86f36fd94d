"""Each way of reaching the service instance: the right ports, and SSH only from that path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dhss_components.config import InvalidStackConfig, parse_stack_config
from dhss_components.simulated_cloud import SimulatedCloud
from tests.stack_run import StackRun, run_stack, with_admin, write_key_pair

RULE = "openstack:networking/secGroupRule:SecGroupRule"
BASTION_HOST_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGJhc3Rpb24gaG9zdCBrZXkgYmFzdGlvbiBob3N0IGsh"
)
NOOP = "manila.network.linux.interface.NoopInterfaceDriver"


def ssh_sources(run: StackRun) -> list[str]:
    return sorted(
        r.inputs["remoteIpPrefix"]
        for r in run.cloud.created(RULE)
        if r.inputs.get("portRangeMin") == 22
    )


def host_ports(run: StackRun) -> list[str]:
    return sorted(
        r.inputs["deviceId"]
        for r in run.cloud.created("openstack:networking/port:Port")
        if r.inputs.get("deviceOwner") == "manila:share"
    )


def connection(run: StackRun) -> dict[str, Any]:
    raw = run.monitor.named("share-server-share-projects-export").raw_inputs["connection"]
    value: dict[str, Any] = raw["value"]
    return value


def test_through_the_host_port_on_the_service_network(
    cloud: SimulatedCloud, config: dict[str, Any]
) -> None:
    run = run_stack(cloud, config)
    assert [kind(p) for p in host_ports(run)] == ["manila-dhss-share"]
    assert ssh_sources(run) == ["10.254.0.14/32"]  # the host port's pinned address only
    assert connection(run)["host"] == run.outputs["share_server"]["service_ip"]
    assert "proxy" not in connection(run)


def test_through_the_admin_network(cloud: SimulatedCloud, config: dict[str, Any]) -> None:
    config["backend"]["ssh_address"] = "admin"
    run = run_stack(cloud, with_admin(config))
    assert [kind(p) for p in host_ports(run)] == ["manila-dhss-admin-share", "manila-dhss-share"]
    assert ssh_sources(run) == ["10.2.5.0/24"]  # where the host's admin port lives
    assert connection(run)["host"] == run.outputs["share_server"]["admin_ip"]


def test_through_a_bastion(cloud: SimulatedCloud, config: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "bastion-pair").mkdir()
    bastion_key = write_key_pair(tmp_path / "bastion-pair")[1]
    config["backend"]["interface_driver"] = NOOP
    config["backend"]["ssh_proxy"] = {
        "host": "bastion.example.org",
        "user": "jump",
        "path_to_private_key": str(bastion_key),
        "source_cidrs": ["10.254.0.5/32"],
        "host_key": BASTION_HOST_KEY + " jump@bastion",
    }
    run = run_stack(cloud, config)
    assert host_ports(run) == []  # nothing plugged on the host
    assert cloud.created("command:local:Command") == []
    assert ssh_sources(run) == ["10.254.0.5/32"]
    proxy = connection(run)["proxy"]
    assert (proxy["host"], proxy["user"], proxy["port"]) == ("bastion.example.org", "jump", 22)
    assert proxy["privateKey"] == bastion_key.read_text()  # inside the secret connection
    assert proxy["hostKey"] == BASTION_HOST_KEY  # the bastion is pinned too
    assert connection(run)["host"] == run.outputs["share_server"]["service_ip"]


def test_through_the_tenant_network_with_named_sources(
    cloud: SimulatedCloud, config: dict[str, Any]
) -> None:
    config["backend"]["connect_share_server_to_tenant_network"] = True
    config["backend"]["ssh_address"] = "tenant"
    config["backend"]["ssh_source_cidrs"] = ["10.0.0.10/32"]
    run = run_stack(cloud, config)
    assert ssh_sources(run) == ["10.0.0.10/32"]
    assert connection(run)["host"] == run.outputs["share_server"]["tenant_ip"]


def _problems(config: dict[str, Any]) -> list[str]:
    try:
        parse_stack_config(config["backend"], config["shareNetwork"], config["shares"])
    except InvalidStackConfig as exc:
        return [str(p) for p in exc.problems]
    return []


def test_an_address_the_instance_does_not_have(config: dict[str, Any]) -> None:
    config["backend"]["ssh_address"] = "admin"
    assert _problems(config) == [
        "dhss:backend.ssh_address: the service instance has no admin address in the router "
        "mode (its NICs: service); pick one of those"
    ]


def test_the_tenant_path_needs_its_source(config: dict[str, Any]) -> None:
    config["backend"]["connect_share_server_to_tenant_network"] = True
    config["backend"]["ssh_address"] = "tenant"
    [problem] = _problems(config)
    assert problem.startswith(
        "dhss:backend.ssh_source_cidrs: required: with ssh_address: tenant the commands come "
        "from outside"
    )


def test_a_bastion_needs_its_source_and_its_host_key(config: dict[str, Any]) -> None:
    config["backend"]["ssh_proxy"] = {"host": "b", "user": "u"}
    assert _problems(config) == [
        "dhss:backend.ssh_proxy.source_cidrs: required; set it (see the README's config reference)",
        "dhss:backend.ssh_proxy.host_key: required; set it (see the README's config reference)",
    ]


def kind(device_id: str) -> str:
    """A host port's device id without the share server id it ends with."""
    return device_id.rsplit("-", 5)[0]
