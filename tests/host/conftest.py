"""Fixtures for tests that plug real interfaces (marker host_net; needs root).

Each test gets its own network namespaces, deleted afterwards. The OVS tests also get a
private Open vSwitch: ovsdb-server and ovs-vswitchd started inside the test's namespace,
with their own database, sockets and logs in a temporary run directory (OVS_RUNDIR), so
they never meet a system instance. The bridge uses the userspace datapath
(datapath_type=netdev), which needs no kernel module: its internal ports are tap devices
in the namespace ovs-vswitchd runs in, which is why the daemons run inside it.

Set DHSS_SKIP_OVS=1 to skip the OVS tests on a machine where Open vSwitch cannot run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

OVS_SCHEMA = Path("/usr/share/openvswitch/vswitch.ovsschema")
OVS_COMMANDS = ("ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl")
COMMAND_TIMEOUT = 60


@dataclass
class Netns:
    """A network namespace of this test, and the environment commands in it run with."""

    name: str
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    state_dir: Path = Path("/nonexistent")
    """Where the plug keeps its state files for this "host" (set by make_netns)."""

    def run(self, command: str) -> subprocess.CompletedProcess[str]:
        """Run a shell command (such as a rendered plug command) in the namespace."""
        return subprocess.run(
            ["ip", "netns", "exec", self.name, "bash", "-c", command],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )

    def sh(self, *argv: str) -> str:
        """Run a command in the namespace; fail the test if it fails; return its stdout."""
        result = subprocess.run(
            ["ip", "netns", "exec", self.name, *argv],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        if result.returncode != 0:
            pytest.fail(f"{' '.join(argv)} failed in netns {self.name}: {result.stderr.strip()}")
        return result.stdout

    def json(self, *argv: str) -> Any:
        return json.loads(self.sh(*argv) or "null")

    def add_device(self, name: str, cidr: str) -> None:
        """A device of the host's own with an address, up (a veth whose peer stays in the
        namespace: this kernel may lack the dummy module). It returns once the kernel says
        the carrier is up, so that no later snapshot of the namespace sees it come up."""
        self.sh("ip", "link", "add", name, "type", "veth", "peer", "name", f"{name}-peer")
        self.sh("ip", "addr", "add", cidr, "dev", name)
        self.sh("ip", "link", "set", "dev", f"{name}-peer", "up")
        self.sh("ip", "link", "set", "dev", name, "up")
        deadline = time.monotonic() + COMMAND_TIMEOUT
        while "LOWER_UP" not in (self.link(name) or {}).get("flags", []):
            if time.monotonic() > deadline:
                pytest.fail(f"{name} in {self.name}: no carrier after {COMMAND_TIMEOUT} s")
            time.sleep(0.05)

    def link(self, device: str) -> dict[str, Any] | None:
        """`ip -j link show dev DEVICE`, or None if there is no such device."""
        result = subprocess.run(
            ["ip", "-n", self.name, "-j", "link", "show", "dev", device],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            return None
        links: list[dict[str, Any]] = json.loads(result.stdout)
        return links[0]

    def ipv4_cidrs(self, device: str) -> set[str]:
        """The device's global IPv4 addresses as IP/PLEN."""
        links = self.json("ip", "-j", "-4", "addr", "show", "dev", device, "scope", "global")
        return {f"{a['local']}/{a['prefixlen']}" for link in links for a in link["addr_info"]}

    def network_state(self) -> dict[str, Any]:
        """All a plug could change in the namespace: links, addresses, every routing table
        and the policy rules, as `ip -j` lists them (in the kernel's order)."""
        return {
            "links": self.json("ip", "-j", "-d", "link", "show"),
            "addresses": self.json("ip", "-j", "addr", "show"),
            "routes": self.json("ip", "-j", "route", "show", "table", "all"),
            "rules": self.json("ip", "-j", "rule", "show"),
        }

    def routes(self, destination: str) -> list[dict[str, Any]]:
        """`ip -j -4 route list exact DESTINATION`, in the kernel's order."""
        routes: list[dict[str, Any]] = self.json(
            "ip", "-j", "-4", "route", "list", "exact", destination
        )
        return routes


def _require_root() -> None:
    if os.geteuid() != 0:
        pytest.fail(
            "host_net tests create network namespaces and need root: run them as root, "
            "or deselect them with -m 'not host_net'"
        )


@pytest.fixture
def make_netns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[], Netns]]:
    """A factory of network namespaces, all deleted when the test ends.

    Each namespace plays a host of its own, so it gets its own plug state directory
    (DHSS_HOST_PORT_STATE_DIR, inside the test's root-owned temporary directory) instead of
    the real host's /var/lib/dhss-host-port.
    """
    _require_root()
    created: list[str] = []

    def make() -> Netns:
        name = f"dhss-test-{uuid.uuid4().hex[:8]}"
        subprocess.run(["ip", "netns", "add", name], check=True, timeout=COMMAND_TIMEOUT)
        created.append(name)
        netns = Netns(name)
        netns.state_dir = tmp_path_factory.mktemp(name) / "state"
        netns.env["DHSS_HOST_PORT_STATE_DIR"] = str(netns.state_dir)
        # The plug is IPv4 only; without IPv6 no duplicate-address detection changes
        # addresses and routes behind a test's back (a busy host finishes it late).
        for scope in ("all", "default"):
            netns.sh("sysctl", "-qw", f"net.ipv6.conf.{scope}.disable_ipv6=1")
        netns.sh("ip", "link", "set", "dev", "lo", "up")
        return netns

    try:
        yield make
    finally:
        for name in reversed(created):
            subprocess.run(["ip", "netns", "del", name], check=False, timeout=COMMAND_TIMEOUT)


@pytest.fixture
def netns(make_netns: Callable[[], Netns]) -> Netns:
    """The namespace the test plugs in: it plays the manila-share host."""
    return make_netns()


@dataclass
class Ovs:
    """A private Open vSwitch running inside `netns`, with bridge `bridge`."""

    netns: Netns
    rundir: Path
    bridge: str = "br-int"

    def vsctl(self, *args: str) -> str:
        return self.netns.sh("ovs-vsctl", "--timeout=10", *args).strip()

    def log_tail(self) -> str:
        tails = []
        for log in sorted([*self.rundir.glob("*.log"), *self.rundir.glob("*.console")]):
            lines = log.read_text(errors="replace").splitlines()[-15:]
            tails.append(f"--- {log.name}\n" + "\n".join(lines))
        return "\n".join(tails)


def _start_daemon(netns: Netns, rundir: Path, argv: list[str]) -> subprocess.Popen[bytes]:
    # `ip netns exec` execs the daemon, so the Popen pid is the daemon's own pid. The
    # daemons run in the foreground: the fixture is their parent, stops and reaps them.
    with open(rundir / f"{argv[0]}.console", "wb") as console:
        return subprocess.Popen(
            ["ip", "netns", "exec", netns.name, *argv],
            env=netns.env,
            stdin=subprocess.DEVNULL,
            stdout=console,
            stderr=subprocess.STDOUT,
        )


def _stop_daemon(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def _wait_for(
    ready: Callable[[], bool],
    what: str,
    ovs: Ovs,
    daemons: list[subprocess.Popen[bytes]],
    seconds: float = 10,
) -> None:
    deadline = time.monotonic() + seconds
    while not ready():
        exited = [d for d in daemons if d.poll() is not None]
        if exited or time.monotonic() > deadline:
            reason = (
                f"{exited[0].args!r} exited with {exited[0].returncode}"
                if exited
                else f"{what} was not ready within {seconds}s"
            )
            pytest.fail(
                f"Open vSwitch did not start on this machine: {reason} "
                f"(set DHSS_SKIP_OVS=1 to skip the OVS tests).\n{ovs.log_tail()}"
            )
        time.sleep(0.05)


@pytest.fixture
def ovs(netns: Netns) -> Iterator[Ovs]:
    """ovsdb-server + ovs-vswitchd in the test's namespace, with br-int (userspace datapath)."""
    if os.environ.get("DHSS_SKIP_OVS") == "1":
        pytest.skip("DHSS_SKIP_OVS=1: Open vSwitch tests skipped")
    missing = [command for command in OVS_COMMANDS if shutil.which(command) is None]
    if missing or not OVS_SCHEMA.exists():
        pytest.fail(
            f"Open vSwitch is not installed (missing {missing or OVS_SCHEMA}): "
            "apt-get install -y openvswitch-switch, or set DHSS_SKIP_OVS=1 to skip these tests"
        )
    # Short path: unix socket paths must stay under 108 bytes.
    rundir = Path(tempfile.mkdtemp(prefix="dhss-ovs-", dir="/tmp"))
    for variable in ("OVS_RUNDIR", "OVS_DBDIR", "OVS_LOGDIR", "OVS_SYSCONFDIR"):
        netns.env[variable] = str(rundir)
    ovs = Ovs(netns, rundir)
    daemons: list[subprocess.Popen[bytes]] = []
    db_sock = rundir / "db.sock"

    def answers(*args: str) -> bool:
        command = ["ip", "netns", "exec", netns.name, "ovs-vsctl", "--timeout=1", *args]
        result = subprocess.run(command, env=netns.env, capture_output=True, check=False)
        return result.returncode == 0

    try:
        subprocess.run(
            ["ovsdb-tool", "create", str(rundir / "conf.db"), str(OVS_SCHEMA)],
            check=True,
            capture_output=True,
        )
        daemons.append(
            _start_daemon(
                netns,
                rundir,
                [
                    "ovsdb-server",
                    str(rundir / "conf.db"),
                    f"--remote=punix:{db_sock}",
                    f"--unixctl={rundir / 'ovsdb-server.ctl'}",
                    f"--log-file={rundir / 'ovsdb-server.log'}",
                ],
            )
        )
        _wait_for(lambda: answers("--no-wait", "show"), "ovsdb-server", ovs, daemons)
        ovs.vsctl("--no-wait", "init")
        daemons.append(
            _start_daemon(
                netns,
                rundir,
                [
                    "ovs-vswitchd",
                    f"unix:{db_sock}",
                    f"--unixctl={rundir / 'ovs-vswitchd.ctl'}",
                    f"--log-file={rundir / 'ovs-vswitchd.log'}",
                ],
            )
        )
        # Without --no-wait, add-br returns once ovs-vswitchd has built the bridge.
        _wait_for(
            lambda: answers(
                "--may-exist", "add-br", ovs.bridge, "--", "set", "bridge", ovs.bridge,
                "datapath_type=netdev",
            ),
            "ovs-vswitchd (add-br with datapath_type=netdev)",
            ovs,
            daemons,
        )  # fmt: skip
        _wait_for(lambda: netns.link(ovs.bridge) is not None, f"device {ovs.bridge}", ovs, daemons)
        yield ovs
    finally:
        for daemon in reversed(daemons):
            _stop_daemon(daemon)
        shutil.rmtree(rundir, ignore_errors=True)
