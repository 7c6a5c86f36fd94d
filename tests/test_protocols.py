"""The protocol table: client forms, export paths and reserved names, per protocol."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dhss_components.protocols import PROTOCOLS

NFS, CIFS = PROTOCOLS["NFS"], PROTOCOLS["CIFS"]


@pytest.mark.parametrize(
    ("network", "nfs", "samba"),
    [
        # Manila's NFS vectors (manila/tests/share/drivers/test_helpers.py:177-192, 22.0.0)
        ("10.0.0.1/32", "10.0.0.1", "10.0.0.1"),
        ("10.0.0.0/24", "10.0.0.0/24", "10.0.0.0/24"),
        ("0.0.0.0/0", "*", "0.0.0.0/0"),
    ],
)
def test_client_forms(network: str, nfs: str, samba: str) -> None:
    parsed = ipaddress.IPv4Network(network)
    assert NFS.client_form(parsed) == nfs
    assert CIFS.client_form(parsed) == samba


ipv4_networks = st.builds(
    lambda address, length: ipaddress.IPv4Network((address, length), strict=False),
    st.ip_addresses(v=4),
    st.integers(0, 32),
)


@given(ipv4_networks)
def test_every_form_reads_back_as_the_same_network(network: ipaddress.IPv4Network) -> None:
    for protocol in PROTOCOLS.values():
        form = protocol.client_form(network)
        if form == "*":
            assert network.prefixlen == 0
            continue
        assert ipaddress.IPv4Network(form) == network
        assert ("/" in form) == (network.prefixlen != 32)


def test_export_paths_are_manilas() -> None:
    assert NFS.export_path("10.254.0.3", "projects", "/shares/projects") == (
        "10.254.0.3:/shares/projects"
    )
    assert CIFS.export_path("10.254.0.3", "projects", "/shares/projects") == (
        "\\\\10.254.0.3\\projects"
    )


def test_each_protocol_has_its_own_port_and_script_name() -> None:
    assert {p.name: (p.port, p.script_name) for p in PROTOCOLS.values()} == {
        "NFS": (2049, "nfs"),
        "CIFS": (445, "cifs"),
    }


def test_samba_keeps_its_special_sections() -> None:
    assert {"global", "globals", "homes", "printers"} == CIFS.reserved_names
    assert not NFS.reserved_names
    assert CIFS.one_access_level
    assert not NFS.one_access_level
