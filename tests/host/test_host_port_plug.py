"""The rendered plug/unplug commands, run for real in a network namespace (needs root).

Every test runs the exact command strings render_plug_command/render_unplug_command give
the Pulumi component, with `bash -c` inside the test's namespace.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from typing import Any

import pytest

from dhss_components.host_port_script import (
    HostPortParams,
    InterfaceDriver,
    render_plug_command,
    render_unplug_command,
)

from .conftest import Netns, Ovs

pytestmark = pytest.mark.host_net

PORT_ID = "abcdef01-1234-5678-90ab-cdef01234567"
MAC = "fa:16:3e:12:34:56"
OVS_DEVICE = "tapabcdef01-12"
BRIDGE_DEVICE = "ns-abcdef01-12"
BRIDGE_TAP = "tapabcdef01-12"


def params(driver: InterfaceDriver, **overrides: Any) -> HostPortParams:
    values: dict[str, Any] = {
        "driver": driver,
        "port_id": PORT_ID,
        "mac_address": MAC,
        "cidrs": ("10.254.0.2/28",),
        "bridge": "br-int",
    }
    values.update(overrides)
    return HostPortParams(**values)


def plug(netns: Netns, p: HostPortParams) -> str:
    """Run the rendered plug command; fail the test if it fails; return its log."""
    result = netns.run(render_plug_command(p))
    assert result.returncode == 0, f"plug failed:\n{result.stderr}"
    return result.stderr


def unplug(netns: Netns, p: HostPortParams) -> str:
    result = netns.run(render_unplug_command(p))
    assert result.returncode == 0, f"unplug failed:\n{result.stderr}"
    return result.stderr


def assert_plugged(netns: Netns, device: str, mac: str, cidrs: set[str]) -> None:
    link = netns.link(device)
    assert link is not None, f"{device} does not exist"
    assert "UP" in link["flags"], link
    assert link["address"] == mac
    assert netns.ipv4_cidrs(device) == cidrs


def host_state(netns: Netns) -> dict[str, Any]:
    """Everything a plug could change in the namespace: links, addresses, routes."""
    return {
        "addresses": netns.json("ip", "-j", "addr", "show"),
        "routes": netns.json("ip", "-j", "route", "show", "table", "all"),
    }


def ovs_state(ovs: Ovs) -> dict[str, Any]:
    columns = "--columns=_uuid,name,type,external_ids,mac_in_use,ofport,ifindex"
    return {
        "interfaces": json.loads(ovs.vsctl("--format=json", columns, "list", "Interface")),
        "ports": json.loads(ovs.vsctl("--format=json", "list", "Port")),
        "bridge_ports": ovs.vsctl("list-ports", ovs.bridge),
    }


def external_ids(ovs: Ovs, device: str) -> dict[str, str]:
    table = json.loads(
        ovs.vsctl("--format=json", "--columns=external_ids", "list", "Interface", device)
    )
    # OVSDB's JSON for a map: ["map", [[key, value], ...]]
    kind, pairs = table["data"][0][0]
    assert kind == "map"
    return dict(pairs)


# --- Open vSwitch driver ----------------------------------------------------------------


def test_ovs_plug_creates_an_internal_port_with_the_neutron_ids(netns, ovs):
    log = plug(netns, params("ovs"))

    assert_plugged(netns, OVS_DEVICE, MAC, {"10.254.0.2/28"})
    assert ovs.vsctl("port-to-br", OVS_DEVICE) == "br-int"
    assert ovs.vsctl("get", "Interface", OVS_DEVICE, "type") == "internal"
    assert external_ids(ovs, OVS_DEVICE) == {
        "iface-id": PORT_ID,
        "iface-status": "active",
        "attached-mac": MAC,
    }
    assert OVS_DEVICE in log


def test_ovs_plug_again_changes_nothing(netns, ovs):
    p = params("ovs", cidrs=("10.254.0.2/28", "10.254.0.18/28"))
    plug(netns, p)
    before = host_state(netns), ovs_state(ovs)

    plug(netns, p)

    assert (host_state(netns), ovs_state(ovs)) == before


def test_ovs_plug_with_new_cidrs_removes_the_stale_address(netns, ovs):
    plug(netns, params("ovs", cidrs=("10.254.0.2/28", "10.254.0.18/28")))

    plug(netns, params("ovs", cidrs=("10.254.0.2/28", "10.254.0.34/28")))

    assert_plugged(netns, OVS_DEVICE, MAC, {"10.254.0.2/28", "10.254.0.34/28"})
    assert netns.routes("10.254.0.16/28") == []


def test_ovs_plug_with_a_new_mac_updates_device_and_external_ids(netns, ovs):
    plug(netns, params("ovs"))

    plug(netns, params("ovs", mac_address="fa:16:3e:65:43:21"))

    assert_plugged(netns, OVS_DEVICE, "fa:16:3e:65:43:21", {"10.254.0.2/28"})
    assert external_ids(ovs, OVS_DEVICE)["attached-mac"] == "fa:16:3e:65:43:21"


def test_ovs_unplug_removes_port_and_device_and_can_run_again(netns, ovs):
    p = params("ovs")
    plug(netns, p)

    unplug(netns, p)

    assert ovs.vsctl("list-ports", "br-int") == ""
    assert netns.link(OVS_DEVICE) is None
    unplug(netns, p)


def test_ovs_unplug_of_a_never_plugged_port_succeeds(netns, ovs):
    unplug(netns, params("ovs"))

    assert ovs.vsctl("list-ports", "br-int") == ""


def test_ovs_plug_on_a_missing_bridge_fails_with_what_to_do(netns, ovs):
    result = netns.run(render_plug_command(params("ovs", bridge="br-missing")))

    assert result.returncode != 0
    assert (
        "bridge br-missing does not exist: install/start Open vSwitch and create it "
        "(ovs-vsctl add-br br-missing), or set interface_driver to "
        "manila.network.linux.interface.NoopInterfaceDriver"
    ) in result.stderr
    assert netns.link(OVS_DEVICE) is None
    assert ovs.vsctl("list-ports", "br-int") == ""


def test_ovs_plugged_port_reaches_a_service_instance(netns, ovs, make_netns):
    # The "service instance": a veth whose far end sits in its own namespace, added to
    # br-int as an ordinary port (what Nova's VIF would be).
    vm = make_netns()
    netns.sh(
        "ip", "link", "add", "vmport0", "type", "veth", "peer", "name", "eth0", "netns", vm.name
    )
    netns.sh("ip", "link", "set", "dev", "vmport0", "up")
    ovs.vsctl("add-port", "br-int", "vmport0")
    vm.sh("ip", "addr", "add", "10.254.0.5/28", "dev", "eth0")
    vm.sh("ip", "link", "set", "dev", "eth0", "up")

    plug(netns, params("ovs"))

    netns.sh("ping", "-c", "1", "-W", "5", "10.254.0.5")
    neighbour = vm.json("ip", "-j", "neigh", "show", "10.254.0.2")
    assert neighbour[0]["lladdr"] == MAC


# --- Linux bridge driver ----------------------------------------------------------------


def test_bridge_plug_creates_a_veth_pair_with_the_mac_on_the_ns_end(netns):
    log = plug(netns, params("bridge"))

    assert_plugged(netns, BRIDGE_DEVICE, MAC, {"10.254.0.2/28"})
    tap = netns.link(BRIDGE_TAP)
    assert tap is not None
    assert "UP" in tap["flags"]
    assert tap["link"] == BRIDGE_DEVICE
    assert f"creating veth pair {BRIDGE_TAP} <-> {BRIDGE_DEVICE}" in log
    assert f"adding address 10.254.0.2/28 to {BRIDGE_DEVICE}" in log


def test_bridge_plug_again_changes_nothing(netns):
    p = params("bridge", cidrs=("10.254.0.2/28", "10.254.0.18/28"))
    plug(netns, p)
    before = host_state(netns)

    log = plug(netns, p)

    assert host_state(netns) == before
    assert f"veth {BRIDGE_DEVICE} already exists" in log
    assert "adding address" not in log


def test_concurrent_plugs_of_one_port_are_serialised(netns):
    # Without the lock, the losers of the race would fail on "ip link add": File exists.
    command = render_plug_command(params("bridge"))
    script = f"for i in 1 2 3 4 5 6; do ( {command} ) & done; fails=0; "
    script += "for job in $(jobs -p); do wait $job || fails=$((fails + 1)); done; exit $fails"

    result = netns.run(script)

    assert result.returncode == 0, result.stderr
    assert_plugged(netns, BRIDGE_DEVICE, MAC, {"10.254.0.2/28"})


def test_bridge_plug_with_new_cidrs_removes_the_stale_addresses(netns):
    plug(netns, params("bridge", cidrs=("10.254.0.2/28", "10.254.0.18/28")))

    plug(netns, params("bridge", cidrs=("10.254.0.2/27",)))

    assert_plugged(netns, BRIDGE_DEVICE, MAC, {"10.254.0.2/27"})


def test_bridge_plug_with_no_cidrs_leaves_no_address(netns):
    plug(netns, params("bridge"))

    plug(netns, params("bridge", cidrs=()))

    assert_plugged(netns, BRIDGE_DEVICE, MAC, set())


def test_bridge_unplug_removes_both_ends_and_can_run_again(netns):
    p = params("bridge")
    plug(netns, p)

    unplug(netns, p)

    assert netns.link(BRIDGE_DEVICE) is None
    assert netns.link(BRIDGE_TAP) is None
    unplug(netns, p)


def test_bridge_plugged_port_reaches_a_service_instance(netns, make_netns):
    # In production the Linux-bridge agent enslaves the tap end; here the test does.
    vm = make_netns()
    netns.sh("ip", "link", "add", "brq-test", "type", "bridge")
    netns.sh("ip", "link", "set", "dev", "brq-test", "up")
    netns.sh(
        "ip", "link", "add", "vmport0", "type", "veth", "peer", "name", "eth0", "netns", vm.name
    )
    netns.sh("ip", "link", "set", "dev", "vmport0", "master", "brq-test", "up")
    vm.sh("ip", "addr", "add", "10.254.0.5/28", "dev", "eth0")
    vm.sh("ip", "link", "set", "dev", "eth0", "up")

    plug(netns, params("bridge"))
    netns.sh("ip", "link", "set", "dev", BRIDGE_TAP, "master", "brq-test")

    netns.sh("ping", "-c", "1", "-W", "5", "10.254.0.5")
    neighbour = vm.json("ip", "-j", "neigh", "show", "10.254.0.2")
    assert neighbour[0]["lladdr"] == MAC


# --- init_l3's routes (driver-independent; shown with the bridge driver) ----------------


def route_get(netns: Netns, address: str) -> tuple[str, str]:
    """(device, source address) the kernel picks for traffic to `address`."""
    (route,) = netns.json("ip", "-j", "route", "get", address)
    return route["dev"], route["prefsrc"]


def test_traffic_to_the_subnet_leaves_through_the_port_and_the_other_route_stays(netns):
    # What Manila's pullup_route is for (an older device on the same subnet must not take
    # the traffic), without moving that device's route.
    netns.add_device("old0", "10.254.0.3/28")
    theirs = netns.routes("10.254.0.0/28")

    plug(netns, params("bridge"))

    assert [r for r in netns.routes("10.254.0.0/28") if r["dev"] == "old0"] == [
        r for r in theirs if r["dev"] == "old0"
    ]
    assert route_get(netns, "10.254.0.5") == (BRIDGE_DEVICE, "10.254.0.2")
    assert route_get(netns, "10.254.0.14") == (BRIDGE_DEVICE, "10.254.0.2")
    assert [(r["dev"], r["prefsrc"]) for r in netns.routes("10.254.0.0/29")] == [
        (BRIDGE_DEVICE, "10.254.0.2")
    ]
    before = host_state(netns)
    plug(netns, params("bridge"))
    assert host_state(netns) == before


@pytest.mark.parametrize("driver", ["bridge", "ovs"])
def test_an_address_another_device_holds_is_refused_and_nothing_changes(
    request: pytest.FixtureRequest, netns: Netns, driver: InterfaceDriver
) -> None:
    if driver == "ovs":
        request.getfixturevalue("ovs")
    netns.add_device("old0", "10.254.0.2/24")  # the port's address, in another prefix even
    before = host_state(netns)
    files_before = sorted(netns.state_dir.iterdir()) if netns.state_dir.exists() else []

    result = netns.run(render_plug_command(params(driver)))

    assert result.returncode != 0
    assert "address 10.254.0.2 is already on device old0" in result.stderr, result.stderr
    assert host_state(netns) == before
    assert netns.link(params(driver).device) is None
    assert (sorted(netns.state_dir.iterdir()) if netns.state_dir.exists() else []) == files_before


def test_plug_with_a_new_subnet_moves_its_routes_along(netns):
    plug(netns, params("bridge", cidrs=("10.254.0.2/28",)))

    plug(netns, params("bridge", cidrs=("10.254.0.34/28",)))

    assert netns.routes("10.254.0.0/29") == []
    assert netns.routes("10.254.0.8/29") == []
    assert route_get(netns, "10.254.0.40") == (BRIDGE_DEVICE, "10.254.0.34")
    assert "route 10.254.0.0/29" not in (netns.state_dir / BRIDGE_DEVICE).read_text()


# --- Noop driver --------------------------------------------------------------------------


@pytest.mark.parametrize("render", [render_plug_command, render_unplug_command])
def test_noop_driver_touches_nothing(netns, render: Callable[[HostPortParams], str]):
    before = host_state(netns)

    result = netns.run(render(params("noop")))

    assert result.returncode == 0, result.stderr
    assert "NoopInterfaceDriver" in result.stderr
    assert host_state(netns) == before


# --- privileges ---------------------------------------------------------------------------


def test_plug_as_a_user_without_sudo_fails_with_what_to_do(netns):
    nobody = "setpriv --reuid=65534 --regid=65534 --clear-groups bash -c "

    result = netns.run(nobody + shlex.quote(render_plug_command(params("bridge"))))

    assert result.returncode == 1
    assert "ERROR: not root and" in result.stderr
    assert "run" in result.stderr.split("ERROR: not root and", 1)[1]
    assert netns.link(BRIDGE_DEVICE) is None
