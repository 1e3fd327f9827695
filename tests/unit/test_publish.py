"""-p/--publish specs: docker's syntax in, docker's syntax out with the address written out."""

from __future__ import annotations

from pathlib import Path

import pytest

from mux import config, validate
from mux.engine import argv as A
from mux.errors import ConfigError


@pytest.mark.parametrize(("spec", "expected"), [
    pytest.param("3000", "127.0.0.1::3000", id="container-port-only"),
    pytest.param("8080:80", "127.0.0.1:8080:80", id="host-and-container"),
    pytest.param("127.0.0.1:8080:80", "127.0.0.1:8080:80", id="explicit-loopback"),
    pytest.param("127.0.0.1::80", "127.0.0.1::80", id="explicit-loopback-any-host-port"),
    pytest.param("192.168.1.5:8080:80", "192.168.1.5:8080:80", id="explicit-address"),
    pytest.param("0.0.0.0:8080:80", "0.0.0.0:8080:80", id="every-interface-kept"),
    pytest.param("[::1]:8080:80", "[::1]:8080:80", id="ipv6-loopback"),
    pytest.param("[::]::80", "[::]::80", id="ipv6-every-interface"),
    pytest.param("53:53/udp", "127.0.0.1:53:53/udp", id="udp"),
    pytest.param("9000/sctp", "127.0.0.1::9000/sctp", id="sctp"),
    pytest.param("80/tcp", "127.0.0.1::80/tcp", id="tcp-explicit"),
    pytest.param("8000-8010:8000-8010", "127.0.0.1:8000-8010:8000-8010", id="ranges"),
    pytest.param("8000-8010:80", "127.0.0.1:8000-8010:80", id="host-range-one-container-port"),
    pytest.param("3000-3002", "127.0.0.1::3000-3002", id="container-range"),
    pytest.param("65535:1", "127.0.0.1:65535:1", id="bounds"),
])
def test_publish_ok(spec: str, expected: str) -> None:
    assert validate.publish(spec, "--publish") == expected


@pytest.mark.parametrize(("spec", "message"), [
    pytest.param("", "expected a port like", id="empty"),
    pytest.param("0", "invalid container port '0'", id="port-zero"),
    pytest.param("65536", "invalid container port '65536'", id="port-too-big"),
    pytest.param("123456", "invalid container port '123456'", id="six-digits"),
    pytest.param("8080:0", "invalid container port '0'", id="container-zero"),
    pytest.param("70000:80", "invalid host port '70000'", id="host-too-big"),
    pytest.param("http", "invalid container port 'http'", id="service-name"),
    pytest.param("-1", "invalid container port '-1'", id="negative"),
    pytest.param("80/icmp", "invalid protocol 'icmp'", id="bad-protocol"),
    pytest.param("80/", "invalid protocol ''", id="empty-protocol"),
    pytest.param("80/TCP", "invalid protocol 'TCP'", id="upper-case-protocol"),
    pytest.param("8080:", "invalid container port ''", id="no-container-port"),
    pytest.param("80-70", "invalid container port '80-70'", id="reversed-range"),
    pytest.param("8000-8002:80-81", "as long as the container port range", id="range-lengths"),
    pytest.param("localhost:8080:80", "invalid address 'localhost'", id="host-name"),
    pytest.param("1.2.3:8080:80", "invalid address '1.2.3'", id="bad-ipv4"),
    pytest.param("::1:8080:80", "goes in brackets", id="ipv6-without-brackets"),
    pytest.param("[::1:8080:80", "for IPv6", id="unclosed-bracket"),
    pytest.param("[127.0.0.1]:8080:80", "only one, goes in brackets", id="ipv4-in-brackets"),
    pytest.param("[::1]:80", "invalid port", id="ipv6-without-host-port-colon"),
    pytest.param("a:b:c:d", "invalid port 'a:b:c:d'", id="too-many-parts"),
    pytest.param(" 80", "invalid container port ' 80'", id="leading-space"),
])
def test_publish_bad(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match="^--publish: ") as info:
        validate.publish(spec, "--publish")
    assert message in info.value.message


@pytest.mark.parametrize(("spec", "public"), [
    pytest.param("0.0.0.0:80:80", True, id="ipv4-any"),
    pytest.param("[::]:80:80", True, id="ipv6-any"),
    pytest.param("127.0.0.1::80", False, id="loopback"),
    pytest.param("[::1]:80:80", False, id="ipv6-loopback"),
    pytest.param("10.0.0.1:80:80", False, id="one-address"),
    # Decided on the parsed address, not its spelling: [::0] is [::].
    pytest.param("[::0]:80:80", True, id="ipv6-any-spelled-::0"),
    pytest.param("[0:0::0]:80:80", True, id="ipv6-any-spelled-0:0::0"),
    pytest.param("[0000:0000:0000:0000:0000:0000:0000:0000]::80/udp", True, id="ipv6-any-long"),
    pytest.param("[::ffff:0.0.0.0]:80:80", True, id="ipv4-any-mapped"),
    pytest.param("[::ffff:127.0.0.1]:80:80", False, id="ipv4-loopback-mapped"),
])
def test_exposes_publicly(spec: str, public: bool) -> None:
    assert validate.exposes_publicly(spec) is public


def test_config_ports_are_checked_and_normalised(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    parsed = config.parse({"docker": {"ports": ["3000", "0.0.0.0:9000:9000/udp"]}}, path, {})
    assert parsed.docker.ports == ("127.0.0.1::3000", "0.0.0.0:9000:9000/udp")
    with pytest.raises(ConfigError, match=r"\[docker\] ports: invalid protocol 'http'"):
        config.parse({"docker": {"ports": ["80/http"]}}, path, {})


def test_ports_become_repeated_p_options() -> None:
    from tests.unit.test_argv import minimal

    argv = A.run_argv(minimal(ports=("127.0.0.1::3000", "127.0.0.1:8080:80/udp")))
    at = argv.index("-p")
    assert argv[at:at + 4] == ["-p", "127.0.0.1::3000", "-p", "127.0.0.1:8080:80/udp"]


@pytest.mark.parametrize("spec", ["[::0]:80:80", "[0:0::0]:80:80", "0.0.0.0:80:80"])
def test_unspecified_spellings_normalise_and_warn(spec: str) -> None:
    assert validate.exposes_publicly(validate.publish(spec, "--publish"))
