"""Any config either declares a whole stack or stops before declaring anything, naming a key.

The promise behind the config contract: `pulumi up` never fails inside an `apply` (after
resources exist) on a value the config accepted. Hypothesis feeds the real program, under the
simulated cloud, configs mixing good values with every kind of bad one.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pulumi
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from dhss_components.simulated_cloud import RecordingMonitor, run_program
from tests.clouds import devstack_cloud
from tests.stack_run import PROJECT, base_config, with_admin, write_key_pair


def mostly(good: list[Any], bad: list[Any]) -> st.SearchStrategy[Any]:
    """Good values six times in seven: enough whole stacks, and every kind of bad value."""
    return st.sampled_from([*good] * 6 * len(bad) + [*bad] * len(good))


DRIVERS = [
    "manila.network.linux.interface.OVSInterfaceDriver",
    "manila.network.linux.interface.BridgeInterfaceDriver",
    "manila.network.linux.interface.NoopInterfaceDriver",
]
ADDRESSES = ["10.0.0.5", "10.0.0.0/26", "10.1.0.0/16", "0.0.0.0/0", "192.0.2.7/32"]
BAD_ADDRESSES = [
    "10.0.0.1/24", "2001:db8::5", "::/0", "fe80::1%eth0", "10.0.0.300", "*", "", "host.example",
]  # fmt: skip

rules = st.fixed_dictionaries(
    {
        "access_type": mostly(["ip"], ["cert", "user"]),
        "access_to": mostly(ADDRESSES, BAD_ADDRESSES),
        "access_level": mostly(["rw", "ro"], ["rx", ""]),
    }
)
shares = st.fixed_dictionaries(
    {
        "name": mostly(["projects", "data", "ok_1", "homes"], ["global", "Upper", "a b", "x" * 64]),
        "size": mostly([1, 10, 16384], [0, -3, 2**40]),
        "share_proto": mostly(["NFS", "CIFS", "cifs"], ["SMB", "nfs4"]),
        "access_rules": st.lists(rules, max_size=3),
    }
)
changes = st.fixed_dictionaries(
    {
        "direct": st.booleans(),
        "admin": st.booleans(),
        "driver": mostly(DRIVERS, ["manila.network.linux.interface.MidonetInterfaceDriver"]),
        "ssh_address": mostly([None, "service", "admin", "tenant"], ["public"]),
        "ssh_source_cidrs": mostly(
            [None, ["192.0.2.10/32"]], [["0.0.0.0/0"], ["2001:db8::/64"], [], ["bad"]]
        ),
        "share_mount_path": mostly(
            ["/shares", "/srv/shares/"], ["/", "/etc", "/var/lib", "x", "/a/../b"]
        ),
        "ovs_integration_bridge": mostly(
            ["br-int", "br-integration1"], ["br-integration-2", "br/int", "."]
        ),
        "service_network_cidr": mostly(
            ["10.254.0.0/16", "10.0.0.0/16"], ["10.254.0.0/30", "fd00::/64", "x"]
        ),
        "service_network_division_mask": mostly([28, 24, 29], [30, 32, 8]),
        "pin": mostly([None, "10.254.0.16/28"], ["10.0.0.0/28", "10.253.0.0/28", "10.254.0.16/27"]),
        "shares": st.lists(shares, max_size=3),
    }
)


def config_with(base: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    config = copy.deepcopy(base)
    backend = config["backend"]
    if change["admin"]:
        with_admin(config)
    backend["connect_share_server_to_tenant_network"] = change["direct"]
    backend["interface_driver"] = change["driver"]
    for key in (
        "share_mount_path",
        "ovs_integration_bridge",
        "service_network_cidr",
        "service_network_division_mask",
    ):
        backend[key] = change[key]
    for key in ("ssh_address", "ssh_source_cidrs"):
        if change[key] is not None:
            backend[key] = change[key]
    if change["pin"] is not None:
        config["shareNetwork"]["service_subnet_cidr"] = change["pin"]
    config["shares"] = change["shares"]
    return config


KEY = re.compile(r"dhss:(backend|shareNetwork|shares)\b")


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(change=changes)
def test_a_whole_stack_or_nothing_with_a_key_named(
    tmp_path_factory: Any, change: dict[str, Any]
) -> None:
    keys = write_key_pair(Path(tmp_path_factory.mktemp("keys")))
    config = config_with(base_config(keys), change)
    cloud = devstack_cloud()
    monitor = RecordingMonitor(cloud)
    try:
        run = run_program(cloud, config, project=PROJECT, stack="dev", monitor=monitor)
    except pulumi.RunError as exc:
        message = str(exc)
        assert KEY.search(message), message
        event("stopped before anything, naming a key")
        declared = [r.name for r in monitor.registrations.values() if r.custom]
        assert declared == [], f"{message}\nbut declared: {declared}"
        return
    event(f"a whole stack with {len(config['shares'])} shares")
    # A whole stack: every share has its volume, attachment and command, and is exported.
    names = {r.name for r in monitor.registrations.values()}
    assert "share-server-instance-server" in names
    for share in config["shares"]:
        for part in ("volume", "attachment", "export"):
            assert f"share-server-share-{share['name']}-{part}" in names
    assert set(run.outputs["shares"]) == {share["name"] for share in config["shares"]}
    for share in run.outputs["shares"].values():
        assert [location["is_admin_only"] for location in share["export_locations"]] == [
            False,
            True,
        ]


good_shares = st.lists(
    st.fixed_dictionaries(
        {
            "name": st.sampled_from(["projects", "data", "ok_1", "z" * 63]),
            "size": st.sampled_from([1, 10, 16384]),
            "share_proto": st.sampled_from(["NFS", "CIFS", "cifs"]),
            "access_rules": st.lists(
                st.fixed_dictionaries(
                    {
                        "access_type": st.just("ip"),
                        "access_to": st.sampled_from(ADDRESSES),
                        "access_level": st.just("rw"),
                    }
                ),
                max_size=3,
                unique_by=lambda rule: rule["access_to"],
            ),
        }
    ),
    min_size=1,
    max_size=4,
    unique_by=lambda share: share["name"],
)
good_changes = st.fixed_dictionaries(
    {
        "direct": st.booleans(),
        "admin": st.booleans(),
        "driver": st.sampled_from(DRIVERS),
        "ssh_address": st.just(None),
        "ssh_source_cidrs": st.sampled_from([None, ["192.0.2.10/32"]]),
        "share_mount_path": st.sampled_from(["/shares", "/srv/shares/", "/data/x"]),
        "ovs_integration_bridge": st.sampled_from(["br-int", "br-integration1"]),
        "service_network_cidr": st.sampled_from(["10.254.0.0/16", "10.0.0.0/16"]),
        "service_network_division_mask": st.sampled_from([28, 24, 29]),
        "pin": st.just(None),
        "shares": good_shares,
    }
)


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(change=good_changes)
def test_every_valid_config_declares_a_whole_stack(
    tmp_path_factory: Any, change: dict[str, Any]
) -> None:
    # The other half of the promise: what the config accepts, the program builds, for every
    # mode, driver and rule (0.0.0.0/0 included).
    if change["driver"].endswith("NoopInterfaceDriver") and not change["ssh_source_cidrs"]:
        change["ssh_source_cidrs"] = ["192.0.2.10/32"]
    keys = write_key_pair(Path(tmp_path_factory.mktemp("keys")))
    config = config_with(base_config(keys), change)
    run = run_program(devstack_cloud(), config, project=PROJECT, stack="dev")
    assert set(run.outputs["shares"]) == {share["name"] for share in config["shares"]}
