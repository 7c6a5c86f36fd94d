"""The service instance's ingress rules: only what each share's protocol and clients need.

Manila's ``manila-service`` group opens CIFS, NetBIOS, NFS (tcp and udp), WinRM, ICMP and SSH
to 0.0.0.0/0 and never reconciles it. Here each protocol's port is opened to the clients of
the shares served over it (and the tenant subnet), ICMP to all of them, SSH only to where
the share commands come from. A network inside another adds nothing and is left out, so no
two rules are alike (Neutron refuses an identical rule with 409 SecurityGroupRuleExists).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from .protocols import Protocol

SSH_PORT = 22


@dataclass(frozen=True, order=True)
class IngressRule:
    protocol: Literal["tcp", "icmp"]
    port: int | None
    remote: ipaddress.IPv4Network
    why: str

    @property
    def ethertype(self) -> Literal["IPv4"]:
        return "IPv4"  # the service instance's addresses are IPv4 (see config.AccessRule)

    @property
    def key(self) -> str:
        """A name fragment from the rule's content, so adding a rule never renames another."""
        prefix = str(self.remote).replace("/", "-")
        port = f"-{self.port}" if self.port is not None else ""
        return f"{self.protocol}{port}-{prefix}"


def outermost(networks: Iterable[ipaddress.IPv4Network]) -> list[ipaddress.IPv4Network]:
    """The networks not inside another of them, sorted."""
    unique = set(networks)
    return sorted(n for n in unique if not any(o != n and n.subnet_of(o) for o in unique))


def ingress_rules(
    clients: Iterable[tuple[Protocol, Iterable[ipaddress.IPv4Network]]],
    ssh_sources: Iterable[ipaddress.IPv4Network],
) -> list[IngressRule]:
    """The complete rule set, sorted and free of duplicates.

    ``clients`` has one entry per share: its protocol and the networks of its clients.
    """
    by_protocol: dict[str, tuple[Protocol, set[ipaddress.IPv4Network]]] = {}
    for protocol, networks in clients:
        by_protocol.setdefault(protocol.name, (protocol, set()))[1].update(networks)
    rules: set[IngressRule] = set()
    for protocol, networks in by_protocol.values():
        for network in outermost(networks):
            rules.add(IngressRule("tcp", protocol.port, network, f"{protocol.name} clients"))
    everyone = [n for _, networks in by_protocol.values() for n in networks]
    for network in outermost(everyone):
        rules.add(IngressRule("icmp", None, network, "ping from clients"))
    for network in outermost(ssh_sources):
        rules.add(IngressRule("tcp", SSH_PORT, network, "share commands over SSH"))
    return sorted(rules)
