"""CIDR choice: Manila's vectors, then free by overlap and stable, for any existing layout."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dhss_components.service_subnet import (
    NoFreeServiceSubnet,
    allocation_pool,
    choose_service_subnet_cidr,
    host_port_address,
)


def test_manilas_vectors() -> None:
    assert choose_service_subnet_cidr("99.254.0.0/24", 27, []) == "99.254.0.0/27"
    used = [f"99.254.0.{i * 32}/27" for i in range(8)]
    with pytest.raises(NoFreeServiceSubnet, match="no free /27 is left"):
        choose_service_subnet_cidr("99.254.0.0/24", 27, used)
    assert choose_service_subnet_cidr("10.254.0.0/16", 28, []) == "10.254.0.0/28"
    assert choose_service_subnet_cidr("10.254.0.0/16", 28, ["10.254.0.0/28"]) == "10.254.0.16/28"


def test_an_older_mask_is_seen_as_taken() -> None:
    assert choose_service_subnet_cidr("10.254.0.0/16", 28, ["10.254.0.0/26"]) == "10.254.0.64/28"


def test_a_wider_foreign_subnet_is_seen_as_taken() -> None:
    assert choose_service_subnet_cidr("10.254.0.0/16", 28, ["10.254.0.0/17"]) == "10.254.128.0/28"


def test_the_own_cidr_never_moves() -> None:
    assert choose_service_subnet_cidr("10.254.0.0/16", 28, [], own_cidr="10.254.3.0/28") == (
        "10.254.3.0/28"
    )


def test_host_port_and_pool() -> None:
    assert host_port_address("10.254.0.16/28") == "10.254.0.30"
    assert allocation_pool("10.254.0.16/28", with_gateway=True) == ("10.254.0.18", "10.254.0.29")
    assert allocation_pool("10.254.0.16/28", with_gateway=False) == ("10.254.0.17", "10.254.0.29")


existing_subnets = st.lists(
    st.builds(
        lambda address, prefix: str(
            ipaddress.ip_network(f"10.254.{address >> 8}.{address & 255}/{prefix}", strict=False)
        ),
        st.integers(0, 2**16 - 1),
        st.integers(20, 29),
    ),
    max_size=12,
)


@given(existing=existing_subnets, mask=st.integers(24, 29))
def test_the_choice_overlaps_nothing_and_is_the_first_free(existing: list[str], mask: int) -> None:
    try:
        chosen = ipaddress.IPv4Network(choose_service_subnet_cidr("10.254.0.0/16", mask, existing))
    except NoFreeServiceSubnet:
        return
    taken = [ipaddress.IPv4Network(c) for c in existing]
    assert chosen.prefixlen == mask
    assert chosen.subnet_of(ipaddress.IPv4Network("10.254.0.0/16"))
    assert not any(chosen.overlaps(t) for t in taken)
    # Nothing free comes before it: the same layout always gives the same answer.
    for earlier in ipaddress.ip_network("10.254.0.0/16").subnets(new_prefix=mask):
        if earlier == chosen:
            break
        assert any(earlier.overlaps(t) for t in taken)


@given(existing=existing_subnets)
def test_the_host_port_is_outside_the_pool(existing: list[str]) -> None:
    try:
        cidr = choose_service_subnet_cidr("10.254.0.0/16", 28, existing)
    except NoFreeServiceSubnet:
        return
    start, end = allocation_pool(cidr, with_gateway=True)
    host = ipaddress.IPv4Address(host_port_address(cidr))
    network = ipaddress.IPv4Network(cidr)
    assert ipaddress.IPv4Address(end) < host < network.broadcast_address
    assert ipaddress.IPv4Address(start) > network.network_address + 1
