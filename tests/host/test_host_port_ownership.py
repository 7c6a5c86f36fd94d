"""The plug owns only what it adds (needs root; real veths and Open vSwitch in namespaces).

The namespace plays a manila-share host that already routes to the admin subnet
10.0.0.0/24 two ways of its own: its NIC eth0 has an address there, and eth1 has a route to
it through a gateway (as DevStack routes its fixed range). Two tenants' stacks plug their
admin ports into that subnet. Whatever they do, in whatever order, and however a plug run
ends, the host's routes and the other tenant's stay exactly as they were, and unplug leaves
the host exactly as the plug found it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import re
import shutil
import stat
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dhss_components.host_port_script import (
    HostPortParams,
    InterfaceDriver,
    render_plug_command,
    render_unplug_command,
)

from .conftest import Netns

pytestmark = pytest.mark.host_net

ADMIN_SUBNET = "10.0.0.0/24"
TENANTS = {
    "A": HostPortParams(
        driver="bridge",
        port_id="aaaaaaaa-1111-4111-8111-111111111111",
        mac_address="fa:16:3e:aa:00:04",
        cidrs=("10.0.0.4/24",),
        bridge="br-int",
    ),
    "B": HostPortParams(
        driver="bridge",
        port_id="bbbbbbbb-2222-4222-8222-222222222222",
        mac_address="fa:16:3e:bb:00:05",
        cidrs=("10.0.0.5/24",),
        bridge="br-int",
    ),
}
HOST_ADDRESS = "10.0.0.9"


def as_driver(p: HostPortParams, driver: InterfaceDriver) -> HostPortParams:
    return dataclasses.replace(p, driver=driver)


def address_of(p: HostPortParams) -> str:
    return p.cidrs[0].split("/")[0]


def plug(netns: Netns, p: HostPortParams) -> str:
    result = netns.run(render_plug_command(p))
    assert result.returncode == 0, f"plug of {p.device} failed:\n{result.stderr}"
    return result.stderr


def unplug(netns: Netns, p: HostPortParams) -> str:
    result = netns.run(render_unplug_command(p))
    assert result.returncode == 0, f"unplug of {p.device} failed:\n{result.stderr}"
    return result.stderr


@pytest.fixture
def host(netns: Netns) -> Netns:
    """The manila-share host, with its own routes to the admin subnet."""
    netns.add_device("eth0", f"{HOST_ADDRESS}/24")
    netns.add_device("eth1", "192.0.2.10/24")
    netns.sh("ip", "route", "add", "default", "via", "192.0.2.1", "dev", "eth1")
    netns.sh("ip", "route", "add", ADMIN_SUBNET, "via", "192.0.2.1", "dev", "eth1", "metric", "100")
    return netns


def routes_through(state: dict[str, Any], devices: Iterable[str]) -> list[dict[str, Any]]:
    wanted = set(devices)
    return [r for r in state["routes"] if r.get("dev") in wanted]


def routes_not_through(state: dict[str, Any], devices: Iterable[str]) -> list[dict[str, Any]]:
    unwanted = set(devices)
    return [r for r in state["routes"] if r.get("dev") not in unwanted]


def route_get(netns: Netns, address: str) -> tuple[str, str]:
    """(device, source address) the kernel picks for traffic to `address`."""
    (route,) = netns.json("ip", "-j", "route", "get", address)
    return route["dev"], route["prefsrc"]


@contextlib.contextmanager
def netlink_changes(netns: Netns) -> Iterator[list[str]]:
    """Every link, address and route change the kernel reports in the block, one a line.

    `ip monitor` says nothing until something changes, so a marker route (through lo, in
    TEST-NET-3) is added before the block until the monitor reports it, and another after
    it; the lines between the two markers are the block's.
    """
    marker, end_marker = "203.0.113.77", "203.0.113.78"
    changes: list[str] = []
    monitor = subprocess.Popen(
        ["ip", "netns", "exec", netns.name, "ip", "-o", "monitor", "link", "address", "route"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert monitor.stdout is not None
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(monitor.stdout or []), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 10
        netns.sh("ip", "route", "add", f"{marker}/32", "dev", "lo")
        while not any(marker in line for line in lines):
            assert time.monotonic() < deadline, "ip monitor reported nothing"
            netns.sh("ip", "route", "del", f"{marker}/32", "dev", "lo")
            netns.sh("ip", "route", "add", f"{marker}/32", "dev", "lo")
            time.sleep(0.05)
        start = len(lines)
        yield changes
        netns.sh("ip", "route", "add", f"{end_marker}/32", "dev", "lo")
        while not any(end_marker in line for line in lines[start:]):
            assert time.monotonic() < deadline + 20, "ip monitor stopped reporting"
            time.sleep(0.05)
        netns.sh("ip", "route", "del", f"{end_marker}/32", "dev", "lo")
        end = next(i for i in range(start, len(lines)) if end_marker in lines[i])
        changes.extend(line.strip() for line in lines[start:end] if marker not in line)
    finally:
        monitor.terminate()
        monitor.wait(timeout=10)
        netns.run(f"ip route del {marker}/32 dev lo; ip route del {end_marker}/32 dev lo")


def port_devices(p: HostPortParams) -> set[str]:
    """The devices a plug of p makes: its device, and for the bridge driver the veth peer."""
    return {p.device, p.device.replace("ns-", "tap", 1)}


def foreign_changes(changes: list[str], p: HostPortParams) -> list[str]:
    """The reported changes that do not concern p's own devices."""
    names = port_devices(p)
    return [
        line
        for line in changes
        if not any(re.search(rf"(^|[\s:@]){re.escape(n)}([\s:@]|$)", line) for n in names)
    ]


def assert_routes_the_subnet(netns: Netns, p: HostPortParams) -> None:
    """Traffic to every address of the admin subnet leaves through p's device, from p's address."""
    for address in ("10.0.0.1", "10.0.0.127", "10.0.0.128", "10.0.0.254"):
        assert route_get(netns, address) == (p.device, address_of(p)), address


# --- the host's own routes ----------------------------------------------------------------


def check_host_routes_survive(host: Netns, p: HostPortParams) -> None:
    before = host.network_state()
    assert route_get(host, "10.0.0.50") == ("eth0", HOST_ADDRESS)

    with netlink_changes(host) as changes:
        plug(host, p)

    assert changes, "the monitor saw the plug change nothing"
    assert foreign_changes(changes, p) == [], "the plug changed what is not its own"
    during = host.network_state()
    assert routes_not_through(during, [p.device]) == before["routes"], (
        "the host's own routes (through eth0 and eth1) must stay as they were, in order"
    )
    assert_routes_the_subnet(host, p)

    with netlink_changes(host) as changes:
        unplug(host, p)

    assert foreign_changes(changes, p) == [], "the unplug changed what is not its own"
    assert host.network_state() == before
    assert route_get(host, "10.0.0.50") == ("eth0", HOST_ADDRESS)


def test_the_hosts_own_routes_survive_a_bridge_plug_and_its_unplug_restores_all(host):
    check_host_routes_survive(host, TENANTS["A"])


def test_the_hosts_own_routes_survive_an_ovs_plug_and_its_unplug_restores_all(host, ovs):
    check_host_routes_survive(host, as_driver(TENANTS["A"], "ovs"))
    assert ovs.vsctl("list-ports", ovs.bridge) == ""


# --- two tenants on one host, in every order ------------------------------------------------


def orders() -> list[tuple[str, ...]]:
    """Every order of plug A, plug B, unplug A, unplug B with each plug before its unplug."""
    steps = ("plug A", "plug B", "unplug A", "unplug B")
    return sorted(
        order
        for order in itertools.permutations(steps)
        if order.index("plug A") < order.index("unplug A")
        and order.index("plug B") < order.index("unplug B")
    )


def run_order(host: Netns, tenants: dict[str, HostPortParams], order: tuple[str, ...]) -> None:
    devices = [p.device for p in tenants.values()]
    baseline = host.network_state()
    own_routes: dict[str, list[dict[str, Any]]] = {}
    for step in order:
        action, name = step.split()
        p = tenants[name]
        with netlink_changes(host) as changes:
            (plug if action == "plug" else unplug)(host, p)
        assert foreign_changes(changes, p) == [], f"{step!r} in {order} changed others' things"
        if action == "plug":
            own_routes[name] = routes_through(host.network_state(), [p.device])
            assert {(r["dst"], r.get("prefsrc")) for r in own_routes[name]} >= {
                ("10.0.0.0/25", address_of(p)),
                ("10.0.0.128/25", address_of(p)),
            }
        else:
            del own_routes[name]
            assert host.link(p.device) is None
        state = host.network_state()
        assert routes_not_through(state, devices) == baseline["routes"], (
            f"after {step!r} in {order}: the host's own routes changed"
        )
        for other, routes in own_routes.items():
            assert routes_through(state, [tenants[other].device]) == routes, (
                f"after {step!r} in {order}: tenant {other}'s routes changed"
            )
        if own_routes:
            # Either tenant's port reaches the whole admin network; the one plugged first
            # keeps the traffic until it goes.
            dev, src = route_get(host, "10.0.0.50")
            assert (dev, src) in {(tenants[n].device, address_of(tenants[n])) for n in own_routes}
        else:
            assert route_get(host, "10.0.0.50") == ("eth0", HOST_ADDRESS)
    assert host.network_state() == baseline, f"{order} did not leave the host as it was"


@pytest.mark.parametrize("order", orders(), ids=", ".join)
def test_two_tenants_in_any_order_leave_each_other_and_the_host_intact(host, order):
    run_order(host, TENANTS, order)


def test_an_ovs_tenant_and_a_bridge_tenant_in_every_order(host, ovs):
    tenants = {"A": as_driver(TENANTS["A"], "ovs"), "B": TENANTS["B"]}
    for order in orders():
        run_order(host, tenants, order)
        assert ovs.vsctl("list-ports", ovs.bridge) == ""


# --- a plug killed half-way -----------------------------------------------------------------

# A stand-in for each command that changes the host (ip, ovs-vsctl, install and mv for the
# state file): it counts the changing calls and, at call number DHSS_TEST_KILL_AT, kills the
# plug (the `bash -s -- plug` process) with SIGKILL before the call runs (or just after it,
# with DHSS_TEST_KILL_MODE=after), as a power cut or an OOM kill would.
KILLER = r"""#!/bin/bash
real=__REAL__
changing=1
case ${0##*/} in
    ip | ovs-vsctl)
        changing=0
        for a in "$@"; do
            case $a in add | append | del | set | add-port | del-port) changing=1 ;; esac
        done
        ;;
esac
if ((changing)); then
    n=$(($(cat "$DHSS_TEST_COUNT") + 1))
    echo "$n" >"$DHSS_TEST_COUNT"
    if ((n == DHSS_TEST_KILL_AT)); then
        [[ ${DHSS_TEST_KILL_MODE:-before} != after ]] || "$real" "$@" || true
        pid=$PPID
        while ((pid > 1)); do
            if [[ $(tr '\0' ' ' <"/proc/$pid/cmdline") == "bash -s -- plug "* ]]; then
                kill -KILL "$pid"
                exit 137
            fi
            pid=$(awk '{ print $4 }' "/proc/$pid/stat")
        done
        echo "killer: no plug process above $$" >&2
        exit 99
    fi
fi
exec "$real" "$@"
"""


def install_killer(netns: Netns, directory: Path) -> dict[str, str]:
    """The environment that runs a plug through the killer."""
    directory.mkdir()
    for command in ("ip", "ovs-vsctl", "install", "mv"):
        real = shutil.which(command)
        if real is None:
            continue
        wrapper = directory / command
        wrapper.write_text(KILLER.replace("__REAL__", real))
        wrapper.chmod(0o755)
    count = directory / "count"
    count.write_text("0\n")
    return {
        **netns.env,
        "PATH": f"{directory}:{netns.env['PATH']}",
        "DHSS_TEST_COUNT": str(count),
    }


def killed_plug(netns: Netns, p: HostPortParams, env: dict[str, str], kill_at: int) -> int:
    """Run the plug, killed at changing call `kill_at` (0: never); return the calls made."""
    Path(env["DHSS_TEST_COUNT"]).write_text("0\n")
    saved = netns.env
    netns.env = {**env, "DHSS_TEST_KILL_AT": str(kill_at)}
    try:
        result = netns.run(render_plug_command(p))
    finally:
        netns.env = saved
    if kill_at:
        assert result.returncode != 0, f"the plug was not killed at call {kill_at}"
        assert f"host_port plug {p.device}: done" not in result.stderr, result.stderr
    else:
        assert result.returncode == 0, result.stderr
    return int(Path(env["DHSS_TEST_COUNT"]).read_text())


def assert_state_lists_all_that_exists(netns: Netns, p: HostPortParams, when: str) -> None:
    """Write-ahead: whatever of p's exists on the host, its state file already lists."""
    file = netns.state_dir / p.device
    lines = file.read_text().splitlines() if file.exists() else []
    device = netns.link(p.device)
    if device is not None and any(line.startswith("link ") for line in lines):
        return  # unplug removes the device, and all that hangs on it goes with it
    assert device is None, f"{when}: {p.device} exists, its state file does not list it"


def ipv4_view(netns: Netns) -> dict[str, Any]:
    """What a plug leaves, comparable across runs: IPv4 routes and addresses, links by name."""
    state = netns.network_state()
    return {
        "routes": state["routes"],
        "addresses": [
            (a["ifname"], [(i["local"], i["prefixlen"]) for i in a["addr_info"]])
            for a in state["addresses"]
        ],
        "links": sorted((link["ifname"], "UP" in link["flags"]) for link in state["links"]),
    }


def check_killed_plugs_converge(host: Netns, p: HostPortParams, tmp_path: Path) -> None:
    # The other tenant is plugged throughout: nothing a killed run leaves may touch it.
    plug(host, TENANTS["B"])
    baseline = host.network_state()
    env = install_killer(host, tmp_path / "killer")

    calls = killed_plug(host, p, env, kill_at=0)
    plugged = ipv4_view(host)
    state_file = (host.state_dir / p.device).read_text()
    unplug(host, p)
    assert host.network_state() == baseline
    assert calls >= 8, f"only {calls} changing calls seen: the killer no longer sees the plug"

    # Killing after call k leaves the host as killing before call k + 1 does (nothing
    # changes in between), so killing before each call, and after the last, is every case.
    for kill_at in range(1, calls + 1):
        killed_plug(host, p, env, kill_at)
        assert_state_lists_all_that_exists(host, p, f"killed at call {kill_at}")
        unplug(host, p)
        assert host.network_state() == baseline, f"unplug after a plug killed at call {kill_at}"

        killed_plug(host, p, env, kill_at)
        plug(host, p)
        assert ipv4_view(host) == plugged, f"plug re-run after a kill at call {kill_at}"
        assert (host.state_dir / p.device).read_text() == state_file
        unplug(host, p)
        assert host.network_state() == baseline

    # Killed after its last change, before it says so: a second run changes nothing.
    killed_plug(host, p, {**env, "DHSS_TEST_KILL_MODE": "after"}, kill_at=calls)
    assert ipv4_view(host) == plugged
    plug(host, p)
    assert ipv4_view(host) == plugged
    unplug(host, p)
    assert host.network_state() == baseline


def test_a_killed_bridge_plug_is_finished_by_a_rerun_and_undone_by_unplug(host, tmp_path):
    check_killed_plugs_converge(host, TENANTS["A"], tmp_path)


def test_a_killed_ovs_plug_is_finished_by_a_rerun_and_undone_by_unplug(host, ovs, tmp_path):
    check_killed_plugs_converge(host, as_driver(TENANTS["A"], "ovs"), tmp_path)
    assert ovs.vsctl("list-ports", ovs.bridge) == ""


def test_unplug_undoes_routes_and_addresses_before_the_device(host, tmp_path):
    # If the device cannot be deleted (here `ip link del` fails), the host still routes as
    # it did before the plug: what the state file lists went first.
    a = TENANTS["A"]
    before = host.network_state()
    plug(host, a)
    wrappers = tmp_path / "failing-ip"
    wrappers.mkdir()
    (wrappers / "ip").write_text(
        f"#!/bin/bash\n[[ $* != 'link del '* ]] || exit 1\nexec {shutil.which('ip')} \"$@\"\n"
    )
    (wrappers / "ip").chmod(0o755)
    host.env["PATH"] = f"{wrappers}:{host.env['PATH']}"

    result = host.run(render_unplug_command(a))

    assert result.returncode == 1
    assert f"could not delete {a.device}" in result.stderr
    assert host.ipv4_cidrs(a.device) == set()
    assert routes_through(host.network_state(), [a.device]) == []
    assert routes_not_through(host.network_state(), [a.device]) == before["routes"]
    assert route_get(host, "10.0.0.50") == ("eth0", HOST_ADDRESS)


# --- unplug without a state file ------------------------------------------------------------


def test_unplug_without_its_state_file_removes_only_the_ports_own_device(host):
    a, b = TENANTS["A"], TENANTS["B"]
    plug(host, b)
    before = host.network_state()
    plug(host, a)
    (host.state_dir / a.device).unlink()

    log = unplug(host, a)

    assert "no state file" in log
    assert host.link(a.device) is None
    assert host.network_state() == before


def test_a_device_made_before_the_state_file_existed_is_adopted_and_unplugged(host):
    # A port plugged by a plug that kept no state (an older version, or Manila itself for
    # the same Neutron port) carries the port's identity: it is this port's.
    a = TENANTS["A"]
    before = host.network_state()
    plug(host, a)
    (host.state_dir / a.device).unlink()

    log = plug(host, a)

    assert "adopting it" in log
    assert "link adopted" in (host.state_dir / a.device).read_text()
    unplug(host, a)
    assert host.network_state() == before


def test_a_device_with_the_ports_name_that_is_not_its_own_is_left_alone(host):
    a = TENANTS["A"]
    # Same name, but its peer is not the port's tap: someone else's device.
    host.sh("ip", "link", "add", a.device, "type", "veth", "peer", "name", "other0")
    host.sh("ip", "addr", "add", "10.0.0.77/24", "dev", a.device)
    host.sh("ip", "link", "set", "dev", a.device, "up")
    before = host.network_state()

    log = unplug(host, a)
    result = host.run(render_plug_command(a))

    assert "is not this port's: it is left alone" in log
    assert result.returncode == 1
    assert f"device {a.device} exists and is not this port's" in result.stderr
    assert host.network_state() == before


def test_an_ovs_port_with_the_ports_name_but_another_iface_id_is_left_alone(host, ovs):
    a = as_driver(TENANTS["A"], "ovs")
    ovs.vsctl(
        "add-port", ovs.bridge, a.device, "--", "set", "Interface", a.device, "type=internal",
        "external-ids:iface-id=someone-elses-port",
    )  # fmt: skip
    ports = ovs.vsctl("list-ports", ovs.bridge)

    unplug(host, a)
    result = host.run(render_plug_command(a))

    assert result.returncode == 1
    assert "is not this port's" in result.stderr
    assert ovs.vsctl("list-ports", ovs.bridge) == ports
    iface_id = ovs.vsctl("get", "Interface", a.device, "external-ids:iface-id")
    assert iface_id.strip('"') == "someone-elses-port"


# --- the state directory: root's own, never through a symlink --------------------------------


def test_plug_keeps_its_state_in_a_root_owned_directory(host):
    a = TENANTS["A"]

    plug(host, a)

    directory = host.state_dir.stat()
    assert (directory.st_uid, stat.S_IMODE(directory.st_mode)) == (0, 0o755)
    file = host.state_dir / a.device
    assert (file.stat().st_uid, stat.S_IMODE(file.stat().st_mode)) == (0, 0o644)
    lines = [line for line in file.read_text().splitlines() if not line.startswith("#")]
    assert lines == [
        f"port-id {a.port_id}",
        "link created",
        "address 10.0.0.4/24",
        "route 10.0.0.0/25 10.0.0.4",
        "route 10.0.0.128/25 10.0.0.4",
    ]


def refused(host: Netns, p: HostPortParams, message: str) -> None:
    before = host.network_state()
    result = host.run(render_plug_command(p))
    assert result.returncode == 1, result.stderr
    assert message in result.stderr
    assert host.network_state() == before


def test_a_symlinked_state_directory_is_refused(host, tmp_path):
    target = tmp_path / "elsewhere"
    target.mkdir()
    host.state_dir.symlink_to(target)

    refused(host, TENANTS["A"], "is a symlink: it is not followed")
    assert list(target.iterdir()) == []


def test_a_state_directory_others_can_write_is_refused(host):
    host.state_dir.mkdir(mode=0o755)
    host.state_dir.chmod(0o775)

    refused(host, TENANTS["A"], "can be changed by a user other than root")


def test_a_state_directory_under_a_directory_others_can_write_is_refused(host, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    host.env["DHSS_HOST_PORT_STATE_DIR"] = str(shared / "state")

    refused(host, TENANTS["A"], f"is under {shared}, which a user other than root can change")
    assert not (shared / "state").exists()


def test_a_symlinked_state_file_is_refused(host, tmp_path):
    a = TENANTS["A"]
    host.state_dir.mkdir(mode=0o755)
    decoy = tmp_path / "decoy"
    decoy.write_text(f"port-id {a.port_id}\nroute 192.0.2.0/25 192.0.2.10\n")
    (host.state_dir / a.device).symlink_to(decoy)
    before = host.network_state()

    result = host.run(render_unplug_command(a))

    assert result.returncode == 1
    assert "is a symlink: it is not followed" in result.stderr
    assert host.network_state() == before
    refused(host, a, "is a symlink: it is not followed")


def test_another_ports_state_file_under_the_same_device_name_is_refused(host):
    a = TENANTS["A"]
    host.state_dir.mkdir(mode=0o755)
    (host.state_dir / a.device).write_text("port-id aaaaaaaa-1199-other\nlink created\n")
    os.chmod(host.state_dir / a.device, 0o644)

    refused(host, a, "belongs to port aaaaaaaa-1199-other, not")


def test_unknown_lines_in_a_state_file_are_refused(host):
    a = TENANTS["A"]
    host.state_dir.mkdir(mode=0o755)
    (host.state_dir / a.device).write_text(f"port-id {a.port_id}\nrun rm -rf /\n")

    refused(host, a, "unknown line 'run'")
