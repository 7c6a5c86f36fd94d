"""A real Neutron API server for the tests: Debian's neutron-server on SQLite.

No Keystone (``auth_strategy = noauth``: every caller is admin, and every create names its
``tenant_id``), no message bus (``transport_url = fake:/``) and no agents: the API server alone,
with Neutron's own validation (overlapping subnets on a network or a router, duplicate security
group rules, fixed IPs outside a subnet, port security against security groups). Without a
DHCP agent no DHCP port is made, and without an L2 agent a bound port stays ``binding_failed``
and ``DOWN``; the API accepts both.

``neutron-db-manage upgrade heads`` cannot run on SQLite (its migrations alter constraints),
so the schema is made from Neutron's models, as Neutron's own unit tests make it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

NEUTRON_SERVER = "/usr/bin/neutron-server"
# The Debian packages install Neutron for Debian's own Python, not for a virtualenv.
DEBIAN_PYTHON = "/usr/bin/python3"
DEBIAN_PACKAGE = "neutron-server"
STARTUP_SECONDS = 90
LOG_TAIL_LINES = 40

_SCHEMA_SCRIPT = """
import sys
import sqlalchemy
from neutron.db.migration.models import head  # noqa: F401 (imports every model)
from neutron_lib.db import model_base
model_base.BASEV2.metadata.create_all(sqlalchemy.create_engine(sys.argv[1]))
"""


class NeutronServerError(Exception):
    """neutron-server could not be made ready; the message carries its log's tail."""


def missing_reason() -> str | None:
    """Why neutron-server cannot run here, or None when it can."""
    if not Path(NEUTRON_SERVER).exists():
        return f"{NEUTRON_SERVER} is not installed (Debian package {DEBIAN_PACKAGE})"
    probe = subprocess.run(
        [DEBIAN_PYTHON, "-c", "import neutron, neutron_lib, sqlalchemy"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        return f"{DEBIAN_PYTHON} cannot import neutron: {probe.stderr.strip()[-300:]}"
    return None


def can_install() -> bool:
    """Whether this machine could install the package (as ./run-tests does: root and apt)."""
    return os.geteuid() == 0 and shutil.which("apt-get") is not None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def write_config(directory: Path, port: int) -> list[Path]:
    """neutron.conf and ml2.ini for an API-only server in `directory`; the config files."""
    database = directory / "neutron.sqlite"
    neutron_conf = directory / "neutron.conf"
    neutron_conf.write_text(
        f"""[DEFAULT]
core_plugin = ml2
service_plugins = router
auth_strategy = noauth
bind_host = 127.0.0.1
bind_port = {port}
api_workers = 0
rpc_workers = 0
rpc_state_report_workers = 0
# One request at a time: SQLite takes one writer, and under eventlet two requests writing at
# once end in "database is locked" (500). The fleet's tenants run in parallel.
wsgi_default_pool_size = 1
transport_url = fake:/
dhcp_agent_notification = false
notify_nova_on_port_status_changes = false
notify_nova_on_port_data_changes = false
[database]
connection = sqlite:///{database}
[oslo_concurrency]
lock_path = {directory / "lock"}
"""
    )
    ml2_ini = directory / "ml2.ini"
    # No mechanism driver: ports are accepted, never bound. port_security gives ports the
    # attribute the host port turns off.
    ml2_ini.write_text(
        """[ml2]
type_drivers = flat,vxlan
tenant_network_types = vxlan
mechanism_drivers =
extension_drivers = port_security
[ml2_type_vxlan]
vni_ranges = 1:1000
[ml2_type_flat]
flat_networks = *
"""
    )
    return [neutron_conf, ml2_ini]


def make_schema(directory: Path) -> None:
    result = subprocess.run(
        [DEBIAN_PYTHON, "-c", _SCHEMA_SCRIPT, f"sqlite:///{directory / 'neutron.sqlite'}"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if result.returncode != 0:
        raise NeutronServerError(f"making Neutron's schema failed:\n{result.stderr[-3000:]}")


@dataclass
class NeutronServer:
    """One running neutron-server: its endpoint, its process and its log."""

    endpoint: str
    """The API root, e.g. http://127.0.0.1:PORT/v2.0"""
    process: subprocess.Popen[bytes]
    log: Path
    started_in: float
    """Seconds from the schema to the first answer."""

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        if not self.log.exists():
            return "(no log)"
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """Stop this server (its own pid only; it stops the workers it forked)."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def _answers(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/networks?limit=1", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def start(directory: Path) -> NeutronServer:
    """Config, schema and a server on a free port in `directory`, answering when returned."""
    began = time.monotonic()
    port = free_port()
    config_files = write_config(directory, port)
    make_schema(directory)
    log = directory / "neutron-server.log"
    argv = [NEUTRON_SERVER]
    for path in config_files:
        argv += ["--config-file", str(path)]
    with open(log, "wb") as out:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )
    server = NeutronServer(f"http://127.0.0.1:{port}/v2.0", process, log, 0.0)
    deadline = time.monotonic() + STARTUP_SECONDS
    while not _answers(server.endpoint):
        if process.poll() is not None or time.monotonic() > deadline:
            reason = (
                f"exited with status {process.returncode}"
                if process.poll() is not None
                else f"did not answer within {STARTUP_SECONDS} s"
            )
            server.stop()
            raise NeutronServerError(
                f"neutron-server {reason} ({' '.join(argv)}); last lines of {log}:\n"
                f"{server.log_tail()}"
            )
        time.sleep(0.2)
    server.started_in = time.monotonic() - began
    return server
