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

Net = ipaddress.IPv4Network
POOL = Net("10.254.0.0/16")


def choose(pool: str, mask: int, taken: list[str]) -> str:
    return str(choose_service_subnet_cidr(Net(pool), mask, [Net(c) for c in taken]))


def test_manilas_vectors() -> None:
    # manila/tests/share/drivers/test_service_instance.py:2307-2337 (Manila 22.0.0)
    assert choose("99.254.0.0/24", 27, []) == "99.254.0.0/27"
    used = [f"99.254.0.{i * 32}/27" for i in range(8)]
    with pytest.raises(NoFreeServiceSubnet, match="no free /27 is left"):
        choose("99.254.0.0/24", 27, used)
    assert choose("10.254.0.0/16", 28, []) == "10.254.0.0/28"
    assert choose("10.254.0.0/16", 28, ["10.254.0.0/28"]) == "10.254.0.16/28"


def test_an_older_mask_is_seen_as_taken() -> None:
    assert choose("10.254.0.0/16", 28, ["10.254.0.0/26"]) == "10.254.0.64/28"


def test_a_wider_foreign_subnet_is_seen_as_taken() -> None:
    assert choose("10.254.0.0/16", 28, ["10.254.0.0/17"]) == "10.254.128.0/28"


def test_the_tenants_own_subnet_on_the_router_is_avoided() -> None:
    # The tenant's 10.0.0.0/26 sits on the router the service subnet joins: Neutron would
    # refuse a router interface on 10.0.0.0/28.
    assert choose("10.0.0.0/16", 28, ["10.0.0.0/26"]) == "10.0.0.64/28"


def test_ipv6_subnets_take_nothing_from_an_ipv4_pool() -> None:
    assert choose_service_subnet_cidr(POOL, 28, [ipaddress.IPv6Network("::/0")]) == Net(
        "10.254.0.0/28"
    )


def test_host_port_and_pool() -> None:
    assert str(host_port_address(Net("10.254.0.16/28"))) == "10.254.0.30"
    assert tuple(map(str, allocation_pool(Net("10.254.0.16/28"), with_gateway=True))) == (
        "10.254.0.18",
        "10.254.0.29",
    )
    assert tuple(map(str, allocation_pool(Net("10.254.0.16/28"), with_gateway=False))) == (
        "10.254.0.17",
        "10.254.0.29",
    )


existing_subnets = st.lists(
    st.builds(
        lambda address, prefix: ipaddress.IPv4Network(
            f"10.254.{address >> 8}.{address & 255}/{prefix}", strict=False
        ),
        st.integers(0, 2**16 - 1),
        st.integers(17, 29),
    ),
    max_size=12,
)


def free_blocks(taken: list[Net], mask: int) -> list[Net]:
    return [b for b in POOL.subnets(new_prefix=mask) if not any(b.overlaps(t) for t in taken)]


@given(existing=existing_subnets, mask=st.integers(24, 29))
def test_the_choice_is_the_first_free_block_or_a_clear_refusal(
    existing: list[Net], mask: int
) -> None:
    free = free_blocks(existing, mask)
    if not free:
        # Refused only when every block really overlaps something.
        with pytest.raises(NoFreeServiceSubnet, match=f"no free /{mask}"):
            choose_service_subnet_cidr(POOL, mask, existing)
        return
    chosen = choose_service_subnet_cidr(POOL, mask, existing)
    assert chosen == free[0]
    assert chosen.prefixlen == mask
    assert chosen.subnet_of(POOL)
    assert not any(chosen.overlaps(t) for t in existing)


@given(cidr=st.builds(lambda n: Net((n << 4, 28)), st.integers(0, 2**28 - 1)))
def test_the_host_port_is_outside_the_pool(cidr: Net) -> None:
    start, end = allocation_pool(cidr, with_gateway=True)
    host = host_port_address(cidr)
    assert end < host < cidr.broadcast_address
    assert start > cidr.network_address + 1
    assert start <= end
