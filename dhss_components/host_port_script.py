"""The manila-share host's side of the host port: device names and plug/unplug commands.

Manila connects the manila-share host to the service instances through a Neutron "host
port" that an interface driver plugs on the host (manila/network/linux/interface.py).
This module renders the shell commands that do the same with `scripts/host_port.sh`, for a
`pulumi_command.local.Command` (create = plug, delete = unplug).

The rendered command carries the whole script in a here-document, so a change to the
script changes the command and shows up in `pulumi preview`. The command is plain POSIX
sh (what `local.Command` runs it with) and is meant to run as root on the manila-share
host; run as another user, the script goes through `sudo -n`.

The plug owns only what it adds: it records the device, addresses and routes it makes in a
state file under /var/lib/dhss-host-port, changes no other device's routes, and unplug
removes exactly what the file lists (scripts/host_port.sh says how).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import get_args

from .interface_drivers import INTERFACE_DRIVERS, DriverName
from .script_heredoc import SCRIPTS, heredoc_command, script_text

InterfaceDriver = DriverName
"""host_port.sh's --driver: the interface driver's name (interface_drivers.py)."""

SCRIPT_PATH = SCRIPTS / "host_port.sh"
HEREDOC_DELIMITER = "DHSS_HOST_PORT_SCRIPT"

# Manila's LinuxInterfaceDriver.DEV_NAME_LEN (IFNAMSIZ minus the NUL, minus one more).
_DEV_NAME_LEN = 14
_DEV_NAME_PREFIX: dict[InterfaceDriver, str] = {"ovs": "tap", "noop": "tap", "bridge": "ns-"}
_PORT_ID = re.compile(r"[A-Za-z0-9_-]+")
_MAC = re.compile(r"([0-9a-f]{2}:){5}[0-9a-f]{2}")
_INTERFACE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,15}")


def interface_driver(class_path: str) -> InterfaceDriver:
    """Our driver name for Manila's `interface_driver` option value."""
    try:
        return INTERFACE_DRIVERS[class_path].name
    except KeyError:
        choices = ", ".join(sorted(INTERFACE_DRIVERS))
        raise ValueError(
            f"interface_driver {class_path!r} is not supported: use one of {choices}"
        ) from None


def host_device_name(driver: InterfaceDriver, port_id: str) -> str:
    """The host device name Manila's driver gives the port (`get_device_name`)."""
    if driver not in _DEV_NAME_PREFIX:
        raise ValueError(
            f"unknown interface driver {driver!r}: use one of {get_args(InterfaceDriver)}"
        )
    return (_DEV_NAME_PREFIX[driver] + port_id)[:_DEV_NAME_LEN]


@dataclass(frozen=True)
class HostPortParams:
    """What the host needs to plug one host port. Values are checked on construction."""

    driver: InterfaceDriver
    """Which Manila interface driver to imitate (see INTERFACE_DRIVERS)."""
    port_id: str
    """The Neutron port id: names the device and goes into OVS external-ids:iface-id."""
    mac_address: str
    """The Neutron port's MAC, set on the host device."""
    cidrs: tuple[str, ...]
    """The port's fixed IPs as "<ip>/<prefixlen of its subnet>" (init_l3's list): the
    device ends up with exactly these IPv4 addresses, and traffic to their subnets leaves
    through it (by two routes one bit more specific than the subnet's: Manila deletes the
    other devices' routes instead, with clear_cidrs and pullup_route)."""
    bridge: str
    """Manila's `ovs_integration_bridge` (OVS driver only; its default is the config's)."""

    def __post_init__(self) -> None:
        if self.driver not in get_args(InterfaceDriver):
            raise ValueError(
                f"driver {self.driver!r} is not one of {get_args(InterfaceDriver)}: map Manila's "
                "interface_driver with interface_driver()"
            )
        if not _PORT_ID.fullmatch(self.port_id):
            raise ValueError(
                f"port_id {self.port_id!r} is not a Neutron port id (letters, digits, - and _)"
            )
        mac = self.mac_address.lower()
        if not _MAC.fullmatch(mac):
            raise ValueError(
                f"mac_address {self.mac_address!r} is not a MAC address like fa:16:3e:12:34:56"
            )
        if not _INTERFACE_NAME.fullmatch(self.bridge):
            raise ValueError(
                f"bridge {self.bridge!r} is not an interface name (1-15 of A-Z a-z 0-9 _ . -)"
            )
        object.__setattr__(self, "mac_address", mac)
        object.__setattr__(self, "cidrs", _interface_cidrs(self.cidrs))

    @property
    def device(self) -> str:
        """The host device name (see host_device_name)."""
        return host_device_name(self.driver, self.port_id)


def _interface_cidrs(cidrs: tuple[str, ...]) -> tuple[str, ...]:
    if isinstance(cidrs, str):
        raise TypeError(f"cidrs must be a sequence of strings, not the string {cidrs!r}")
    normalised: list[str] = []
    seen: set[ipaddress.IPv4Address] = set()
    for cidr in cidrs:
        if "/" not in cidr:
            raise ValueError(
                f"cidr {cidr!r} has no prefix length: give '<ip>/<prefixlen of its subnet>', "
                "e.g. 10.254.0.2/28"
            )
        try:
            interface = ipaddress.IPv4Interface(cidr)
        except ValueError as error:
            raise ValueError(
                f"cidr {cidr!r} is not an IPv4 address with a prefix length ({error}); Manila's "
                "service subnets are IPv4"
            ) from None
        if interface.ip in seen:
            raise ValueError(f"cidrs list the address {interface.ip} twice: give each address once")
        seen.add(interface.ip)
        normalised.append(interface.with_prefixlen)
    return tuple(normalised)


def host_port_script() -> str:
    """The text of scripts/host_port.sh, exactly as in the file."""
    return script_text(SCRIPT_PATH, HEREDOC_DELIMITER)


def _render(args: list[str]) -> str:
    return heredoc_command(["bash", "-s", "--", *args], SCRIPT_PATH, HEREDOC_DELIMITER)


def render_plug_command(p: HostPortParams) -> str:
    """The shell command that plugs the host port and sets its addresses (idempotent)."""
    args = [
        "plug",
        "--driver",
        p.driver,
        "--device",
        p.device,
        "--port-id",
        p.port_id,
        "--mac",
        p.mac_address,
    ]
    for cidr in p.cidrs:
        args += ["--cidr", cidr]
    args += ["--bridge", p.bridge]
    return _render(args)


def render_unplug_command(p: HostPortParams) -> str:
    """The shell command that unplugs the host port (safe to run twice).

    It carries the port id: without its state file, unplug removes only a device that
    carries this port's identity.
    """
    return _render(
        [
            "unplug",
            "--driver",
            p.driver,
            "--device",
            p.device,
            "--port-id",
            p.port_id,
            "--bridge",
            p.bridge,
        ]
    )
