"""The service instance's group admits only what the shares need, from where they are used."""

from __future__ import annotations

from dhss_components.export_locations import export_locations
from dhss_components.security_rules import IngressRule, ingress_rules


def test_nfs_only_needs_2049_and_ping() -> None:
    rules = ingress_rules({"NFS"}, ["10.0.0.0/24"], ["10.254.0.14/32"])
    assert rules == [
        IngressRule("icmp", None, "10.0.0.0/24", "ping from clients"),
        IngressRule("tcp", 22, "10.254.0.14/32", "share commands over SSH"),
        IngressRule("tcp", 2049, "10.0.0.0/24", "NFS clients"),
    ]


def test_manilas_wide_open_ports_are_gone() -> None:
    rules = ingress_rules({"NFS", "CIFS"}, ["10.0.0.0/24"], ["10.254.0.14/32"])
    ports = {r.port for r in rules}
    assert ports == {None, 22, 445, 2049}  # no NetBIOS, no WinRM, no udp
    assert all(r.remote_ip_prefix != "0.0.0.0/0" for r in rules)
    assert {r.protocol for r in rules} == {"tcp", "icmp"}


def test_nested_networks_collapse_and_ipv6_gets_its_ethertype() -> None:
    rules = ingress_rules({"NFS"}, ["10.0.0.0/24", "10.0.0.5/32", "2001:db8::/64"], ["10.9.9.9/32"])
    nfs = [r for r in rules if r.port == 2049]
    assert [(r.remote_ip_prefix, r.ethertype) for r in nfs] == [
        ("10.0.0.0/24", "IPv4"),
        ("2001:db8::/64", "IPv6"),
    ]


def test_rule_names_come_from_content() -> None:
    one = {r.key for r in ingress_rules({"NFS"}, ["10.0.0.0/24"], ["10.9.9.9/32"])}
    two = {r.key for r in ingress_rules({"NFS"}, ["10.0.0.0/24", "172.16.0.0/16"], ["10.9.9.9/32"])}
    assert one < two  # adding a network adds rules and renames none
    assert "tcp-2049-10.0.0.0-24" in one


def test_no_shares_no_client_rules() -> None:
    assert ingress_rules(set(), ["10.0.0.0/24"], ["10.9.9.9/32"]) == [
        IngressRule("tcp", 22, "10.9.9.9/32", "share commands over SSH")
    ]


def test_export_locations_as_manila_lists_them() -> None:
    assert export_locations("NFS", "s", "/shares/s", "1.2.3.4", "9.10.11.12") == [
        {"path": "1.2.3.4:/shares/s", "is_admin_only": False, "preferred": True},
        {"path": "9.10.11.12:/shares/s", "is_admin_only": True, "preferred": False},
    ]
    assert export_locations("NFS", "s", "/shares/s", "1001::1000", "1001::1")[0]["path"] == (
        "[1001::1000]:/shares/s"
    )
    assert export_locations("CIFS", "s", "/shares/s", "1.2.3.4", "1.2.3.4")[0]["path"] == (
        "\\\\1.2.3.4\\s"
    )
