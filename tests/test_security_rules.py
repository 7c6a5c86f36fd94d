"""The service instance's group admits only what each share needs, from where it is used."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from hypothesis import given
from hypothesis import strategies as st

from dhss_components.export_locations import export_locations
from dhss_components.protocols import PROTOCOLS
from dhss_components.security_rules import IngressRule, ingress_rules

NFS, CIFS = PROTOCOLS["NFS"], PROTOCOLS["CIFS"]
SSH = [ipaddress.IPv4Network("10.254.0.14/32")]


def nets(*cidrs: str) -> list[ipaddress.IPv4Network]:
    return [ipaddress.IPv4Network(c) for c in cidrs]


def rule(protocol: str, port: int | None, cidr: str, why: str) -> IngressRule:
    return IngressRule(protocol, port, ipaddress.IPv4Network(cidr), why)  # type: ignore[arg-type]


def test_nfs_only_needs_2049_and_ping() -> None:
    assert ingress_rules([(NFS, nets("10.0.0.0/24"))], SSH) == [
        rule("icmp", None, "10.0.0.0/24", "ping from clients"),
        rule("tcp", 22, "10.254.0.14/32", "share commands over SSH"),
        rule("tcp", 2049, "10.0.0.0/24", "NFS clients"),
    ]


def test_each_port_is_opened_to_its_own_shares_clients_only() -> None:
    rules = ingress_rules([(NFS, nets("10.0.1.0/24")), (CIFS, nets("10.0.2.0/24"))], SSH)
    by_port = {(r.port, str(r.remote)) for r in rules if r.protocol == "tcp"}
    assert (2049, "10.0.1.0/24") in by_port
    assert (445, "10.0.2.0/24") in by_port
    assert (445, "10.0.1.0/24") not in by_port  # NFS clients get no SMB
    assert (2049, "10.0.2.0/24") not in by_port  # CIFS clients get no NFS


def test_manilas_wide_open_ports_are_gone() -> None:
    rules = ingress_rules([(NFS, nets("10.0.0.0/24")), (CIFS, nets("10.0.0.0/24"))], SSH)
    assert {r.port for r in rules} == {None, 22, 445, 2049}  # no NetBIOS, no WinRM, no udp
    assert all(r.remote.prefixlen > 0 for r in rules)
    assert {r.protocol for r in rules} == {"tcp", "icmp"}


def test_nested_networks_collapse() -> None:
    rules = ingress_rules(
        [(NFS, nets("10.0.0.0/24", "10.0.0.5/32")), (NFS, nets("10.0.0.0/25"))], SSH
    )
    assert [str(r.remote) for r in rules if r.port == 2049] == ["10.0.0.0/24"]


def test_everyone_is_one_rule() -> None:
    rules = ingress_rules([(NFS, nets("10.0.0.0/24", "0.0.0.0/0"))], SSH)
    assert [str(r.remote) for r in rules if r.port == 2049] == ["0.0.0.0/0"]


def test_rule_names_come_from_content() -> None:
    one = {r.key for r in ingress_rules([(NFS, nets("10.0.0.0/24"))], SSH)}
    two = {r.key for r in ingress_rules([(NFS, nets("10.0.0.0/24", "172.16.0.0/16"))], SSH)}
    assert one < two  # adding a network adds rules and renames none
    assert "tcp-2049-10.0.0.0-24" in one


def test_no_shares_no_client_rules() -> None:
    assert ingress_rules([], SSH) == [rule("tcp", 22, "10.254.0.14/32", "share commands over SSH")]


networks = st.builds(
    lambda address, length: ipaddress.IPv4Network((address, length), strict=False),
    st.ip_addresses(v=4),
    st.integers(0, 32),
)
shares = st.lists(
    st.tuples(st.sampled_from([NFS, CIFS]), st.lists(networks, max_size=4)), max_size=5
)


def covered(address: ipaddress.IPv4Address, rules: Iterable[IngressRule], port: int) -> bool:
    return any(r.port == port and address in r.remote for r in rules)


@given(shares, st.lists(networks, min_size=1, max_size=3))
def test_rules_admit_exactly_each_protocols_clients_and_are_never_alike(
    clients: list[tuple[object, list[ipaddress.IPv4Network]]],
    ssh: list[ipaddress.IPv4Network],
) -> None:
    rules = ingress_rules(clients, ssh)  # type: ignore[arg-type]
    # Neutron refuses an identical rule (409): no two rules share protocol, port and remote.
    assert len({(r.protocol, r.port, r.remote) for r in rules}) == len(rules)
    for protocol in (NFS, CIFS):
        mine = [n for p, ns in clients if p is protocol for n in ns]
        for network in mine:  # every client of the protocol is admitted on its port
            assert covered(network.network_address, rules, protocol.port)
            assert covered(network.broadcast_address, rules, protocol.port)
        for r in rules:  # and nothing else is
            if r.port == protocol.port and r.why.endswith("clients"):
                assert any(r.remote.subnet_of(n) for n in mine)


def test_export_locations_as_manila_lists_them() -> None:
    assert export_locations(NFS, "s", "/shares/s", "1.2.3.4", "9.10.11.12") == [
        {"path": "1.2.3.4:/shares/s", "is_admin_only": False, "preferred": True},
        {"path": "9.10.11.12:/shares/s", "is_admin_only": True, "preferred": False},
    ]
    assert export_locations(CIFS, "s", "/shares/s", "1.2.3.4", "1.2.3.4")[0]["path"] == (
        "\\\\1.2.3.4\\s"
    )
