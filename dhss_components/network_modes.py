"""Manila's four network modes of a share server, one row each.

Two options choose the mode (service_instance.py, ``NeutronNetworkHelper``):
``connect_share_server_to_tenant_network`` puts the server straight on the tenant's network
instead of joining a service subnet to the tenant's router, and ``admin_network_id`` adds a
NIC on the admin network. Each row says which NICs the server gets, in Manila's order, and
which of its addresses plays which part. Config checks, discovery, the blueprint and the SSH
rules read this table; a new mode is a new row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

NetworkModeName = Literal["router", "direct", "direct+admin", "router+admin"]
NicRole = Literal["tenant", "service", "admin"]
SshSource = Literal["host port", "admin subnet", "operator"]


@dataclass(frozen=True)
class NetworkMode:
    name: NetworkModeName
    manila: str
    """How Manila's documentation describes the mode."""
    nics: tuple[NicRole, ...]
    """The server's NICs, in Manila's order: tenant, service, admin."""
    service_subnet: bool
    """A service subnet is cut from the service network for this share server."""
    router: bool
    """The service subnet is joined to the tenant subnet's router (found via its gateway)."""
    public_role: NicRole
    """The address clients mount: Manila's ``public_address``."""
    manila_ip_role: NicRole
    """Manila's ``ip``: the address manila-share reaches the server on (SSH by default, and
    the admin export location when there is no admin NIC)."""

    @property
    def admin_export_role(self) -> NicRole:
        """The admin export location's address: Manila's ``admin_ip``, else its ``ip``."""
        return "admin" if "admin" in self.nics else self.manila_ip_role


NETWORK_MODES: dict[NetworkModeName, NetworkMode] = {
    "router": NetworkMode(
        name="router",
        manila="service subnet joined to the tenant's router",
        nics=("service",),
        service_subnet=True,
        router=True,
        public_role="service",
        manila_ip_role="service",
    ),
    "direct": NetworkMode(
        name="direct",
        manila="a port on the tenant network, and one on a service subnet (no gateway)",
        nics=("tenant", "service"),
        service_subnet=True,
        router=False,
        public_role="tenant",
        manila_ip_role="service",
    ),
    "direct+admin": NetworkMode(
        name="direct+admin",
        manila="a port on the tenant network, and one on the admin network; no service subnet",
        nics=("tenant", "admin"),
        service_subnet=False,
        router=False,
        public_role="tenant",
        manila_ip_role="admin",
    ),
    "router+admin": NetworkMode(
        name="router+admin",
        manila="service subnet joined to the tenant's router, and a port on the admin network",
        nics=("service", "admin"),
        service_subnet=True,
        router=True,
        public_role="service",
        manila_ip_role="service",
    ),
}


def network_mode(*, connect_to_tenant_network: bool, admin_network: bool) -> NetworkMode:
    """The mode Manila's two options choose."""
    if connect_to_tenant_network:
        return NETWORK_MODES["direct+admin" if admin_network else "direct"]
    return NETWORK_MODES["router+admin" if admin_network else "router"]


SSH_SOURCES: dict[NicRole, SshSource] = {
    # The host port is pinned to the service subnet's last address: SSH from exactly it.
    "service": "host port",
    # The host's admin port takes an address Neutron picks in the admin subnet.
    "admin": "admin subnet",
    # The tenant's network is the tenant's: only the operator knows where SSH comes from.
    "tenant": "operator",
}
"""Where the share commands' SSH comes from, by the address they dial (unless the operator
names the sources, or a bastion's)."""
