"""The service instance's ingress rules: only what the shares' protocols need.

Manila's ``manila-service`` group opens CIFS, NetBIOS, NFS (tcp and udp), WinRM, ICMP and SSH
to 0.0.0.0/0 and never reconciles it. Here the rules follow the config: NFS gets tcp 2049
(NFSv4 needs nothing else), CIFS gets tcp 445, both get ICMP, and only from the tenant subnet
and the access rules' networks; SSH only from where the share commands come from.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

PROTOCOL_PORTS: dict[str, int] = {"NFS": 2049, "CIFS": 445}
SSH_PORT = 22


@dataclass(frozen=True, order=True)
class IngressRule:
    protocol: Literal["tcp", "icmp"]
    port: int | None
    remote_ip_prefix: str
    why: str

    @property
    def ethertype(self) -> Literal["IPv4", "IPv6"]:
        return "IPv6" if ipaddress.ip_network(self.remote_ip_prefix).version == 6 else "IPv4"

    @property
    def key(self) -> str:
        """A name fragment from the rule's content, so adding a rule never renames another."""
        prefix = self.remote_ip_prefix.replace(":", "-").replace("/", "-")
        port = f"-{self.port}" if self.port is not None else ""
        return f"{self.protocol}{port}-{prefix}"


def _networks(cidrs: Iterable[str]) -> list[str]:
    networks = {ipaddress.ip_network(c, strict=False) for c in cidrs}
    # A network inside another adds nothing to a security group.
    kept = [
        n
        for n in networks
        if not any(
            o != n and o.version == n.version and n.subnet_of(o)  # type: ignore[arg-type]
            for o in networks
        )
    ]
    return [str(n) for n in sorted(kept, key=lambda n: (n.version, n))]


def ingress_rules(
    protocols: Iterable[str],
    client_cidrs: Iterable[str],
    ssh_sources: Iterable[str],
) -> list[IngressRule]:
    """The complete rule set, sorted and free of duplicates."""
    clients = _networks(client_cidrs)
    rules: set[IngressRule] = set()
    for protocol in sorted(set(protocols)):
        port = PROTOCOL_PORTS[protocol]
        for cidr in clients:
            rules.add(IngressRule("tcp", port, cidr, f"{protocol} clients"))
    if rules:
        for cidr in clients:
            rules.add(IngressRule("icmp", None, cidr, "ping from clients"))
    for cidr in _networks(ssh_sources):
        rules.add(IngressRule("tcp", SSH_PORT, cidr, "share commands over SSH"))
    return sorted(rules)
