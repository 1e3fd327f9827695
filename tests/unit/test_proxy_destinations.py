"""mux's destination policy as a pure function: only global addresses, judged after
unwrapping the IPv4 address an IPv6 one carries (issue 23 item 3)."""

from __future__ import annotations

import ipaddress

import pytest

from mux.proxy.destinations import Destinations, unwrap


@pytest.fixture
def policy() -> Destinations:
    d = Destinations()
    d._own, d._own_at = frozenset(), 1e18  # no host addresses: the table alone decides
    return d


@pytest.mark.parametrize(("address", "reason"), [
    pytest.param("198.18.0.1", "benchmarking", id="benchmarking-v4"),
    pytest.param("198.19.255.254", "benchmarking", id="benchmarking-v4-end"),
    pytest.param("192.0.0.1", "IETF protocol", id="ietf-192.0.0.0/24"),
    pytest.param("192.0.0.9", "IETF protocol", id="ietf-192.0.0.9-even-if-python-says-global"),
    pytest.param("192.0.2.7", "documentation", id="test-net-1"),
    pytest.param("198.51.100.7", "documentation", id="test-net-2"),
    pytest.param("203.0.113.7", "documentation", id="test-net-3"),
    pytest.param("2001:db8::1", "documentation", id="documentation-v6"),
    pytest.param("3fff::1", "documentation", id="documentation-v6-3fff"),
    pytest.param("100::1", "discard", id="discard-100::/64"),
    pytest.param("fec0::1", "site-local", id="site-local-fec0::/10"),
    pytest.param("64:ff9b::a00:1", "private", id="nat64-of-10.0.0.1"),
    pytest.param("64:ff9b::7f00:1", "loopback", id="nat64-of-loopback"),
    pytest.param("64:ff9b::c612:1", "benchmarking", id="nat64-of-198.18.0.1"),
    pytest.param("64:ff9b:1::808:808", "local-use NAT64", id="local-use-nat64-whole"),
    pytest.param("2002:c0a8:101::1", "private", id="6to4-of-192.168.1.1"),
    pytest.param("2002:a9fe:a9fe::1", "link-local", id="6to4-of-metadata"),
    # Teredo: server 65.54.227.120, client ~(0x3fff, 0xfdd2...) = 192.168.0.45
    pytest.param("2001:0:4136:e378:8000:63bf:3f57:ffd2", "private", id="teredo-wrapping-192.168.0.45"),
    pytest.param("::ffff:10.1.2.3", "private", id="ipv4-mapped-private"),
    pytest.param("::ffff:0:a01:203", "private", id="ipv4-translated-private"),
    pytest.param("::10.1.2.3", "private", id="ipv4-compatible-private"),
    pytest.param("100.64.0.1", "carrier-grade", id="cgnat"),
    pytest.param("169.254.169.254", "link-local", id="metadata"),
    pytest.param("fe80::1", "link-local", id="link-local-v6"),
    pytest.param("fd00::1", "private", id="ula"),
    pytest.param("233.252.0.1", "multicast", id="multicast-python-calls-global"),
    pytest.param("ff0e::1", "multicast", id="multicast-v6-global-scope"),
    pytest.param("255.255.255.255", "reserved", id="broadcast"),
    pytest.param("0.0.0.0", "unspecified", id="unspecified"),
    pytest.param("::", "unspecified", id="unspecified-v6"),
    pytest.param("2001:2::1", "benchmarking", id="benchmarking-v6"),
    pytest.param("5f00::1", "SRv6", id="srv6"),
    pytest.param("192.88.99.1", "6to4 relay", id="6to4-relay-anycast"),
])
def test_non_global_addresses_are_refused(policy: Destinations, address: str, reason: str) -> None:
    found = policy.refusal(ipaddress.ip_address(address))
    assert found is not None and reason in found, found


@pytest.mark.parametrize("address", [
    pytest.param("8.8.8.8", id="global-v4"),
    pytest.param("1.1.1.1", id="global-v4-b"),
    pytest.param("2606:4700:4700::1111", id="global-v6"),
    pytest.param("64:ff9b::808:808", id="nat64-of-global"),
    pytest.param("2002:808:808::1", id="6to4-of-global"),
    pytest.param("::ffff:8.8.4.4", id="mapped-global"),
    pytest.param("2001:0:4136:e378:8000:63bf:f7f7:f7f7", id="teredo-wrapping-global-8.8.8.8"),
])
def test_global_addresses_pass(policy: Destinations, address: str) -> None:
    assert policy.refusal(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(("allowed", "address"), [
    pytest.param("198.18.0.0/15", "198.18.3.4", id="benchmarking-opened"),
    pytest.param("10.0.0.0/8", "64:ff9b::a00:1", id="inner-v4-opened-opens-its-nat64-form"),
    pytest.param("64:ff9b:1::/48", "64:ff9b:1::a00:1", id="local-nat64-opened-by-its-v6-range"),
    pytest.param("fec0::/10", "fec0::1", id="site-local-opened"),
])
def test_allowed_networks_stays_the_way_to_open_a_range(address: str, allowed: str) -> None:
    d = Destinations([allowed])
    d._own, d._own_at = frozenset(), 1e18
    assert d.refusal(ipaddress.ip_address(address)) is None
    assert Destinations([]).refusal(ipaddress.ip_address(address)) is not None


def test_unwrap_finds_the_ipv4_inside() -> None:
    cases = {"64:ff9b::a00:1": "10.0.0.1", "2002:c0a8:101::1": "192.168.1.1",
             "2001:0:4136:e378:8000:63bf:3f57:ffd2": "192.168.0.45", "::ffff:1.2.3.4": "1.2.3.4",
             "2606:4700::1": "2606:4700::1"}
    assert {k: str(unwrap(ipaddress.ip_address(k))) for k in cases} == cases


def test_refusal_names_the_address_inside(policy: Destinations) -> None:
    address, reason = policy.choose("[64:ff9b::a00:1]", ["64:ff9b::a00:1"])
    assert address is None and reason == "64:ff9b::a00:1 is 10.0.0.1, a private address"
    assert policy.choose("good.test", ["198.18.0.1", "8.8.8.8"]) == ("8.8.8.8", None)
