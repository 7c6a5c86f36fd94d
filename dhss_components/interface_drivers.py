"""Manila's interface drivers, one row each: how the manila-share host reaches its servers.

Manila's ``interface_driver`` option names a class in manila/network/linux/interface.py that
plugs the host's own Neutron port (the "host port") into the service or admin network. The
OVS and Linux bridge drivers plug a device on this host; the Noop driver plugs nothing, the
operator has connected the host already.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

DriverName = Literal["ovs", "bridge", "noop"]


@dataclass(frozen=True)
class InterfaceDriver:
    class_path: str
    """The value of Manila's ``interface_driver`` option."""
    name: DriverName
    """The driver's name in ``scripts/host_port.sh --driver``."""
    plugs_host_port: bool
    """The stack declares host ports (bound to ``service_network_host``) and plugs them here."""


INTERFACE_DRIVERS: dict[str, InterfaceDriver] = {
    driver.class_path: driver
    for driver in (
        InterfaceDriver("manila.network.linux.interface.OVSInterfaceDriver", "ovs", True),
        InterfaceDriver("manila.network.linux.interface.BridgeInterfaceDriver", "bridge", True),
        InterfaceDriver("manila.network.linux.interface.NoopInterfaceDriver", "noop", False),
    )
}
