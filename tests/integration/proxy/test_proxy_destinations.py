"""mux's destination policy on a real proxy: nothing on the host or a private
network is reachable through it, in any spelling, unless allowed_networks says so.

A host service listens on the host's loopback, the bridge gateway and the host's
other addresses; every refusal test ends by checking it saw no request at all.
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mux.proxy.destinations import host_addresses
from tests.integration.proxy.harness import ProxyUnderTest, SessionContainer, run_session, start_proxy
from tests.integration.proxy.servers import Pki

pytestmark = pytest.mark.docker


class HostService:
    """A plain HTTP service on several host addresses, one port; records every request."""

    def __init__(self, addresses: list[str], keep_alive: bool = False) -> None:
        self.addresses = addresses
        self.protocol = "HTTP/1.1" if keep_alive else "HTTP/1.0"
        self.requests: list[tuple[str, str]] = []
        self.servers: list[ThreadingHTTPServer] = []
        self.port = 0

    def __enter__(self) -> HostService:
        state = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = state.protocol

            def do_GET(self) -> None:
                state.requests.append((self.server.server_address[0], self.path))
                body = b"host service\n"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        class V6(ThreadingHTTPServer):
            address_family = socket.AF_INET6

        for addr in self.addresses:
            cls = V6 if ":" in addr else ThreadingHTTPServer
            server = cls((addr, self.port), Handler)
            self.port = self.port or int(server.server_address[1])
            self.servers.append(server)
            threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()


def own_addresses(gateway: str) -> list[str]:
    """The host's loopback, ::1, the bridge gateway and its other IPv4 addresses."""
    others = sorted(str(a) for a in host_addresses()
                    if a.version == 4 and not a.is_loopback and str(a) != gateway)
    v6 = ["::1"] if socket.has_ipv6 and "::1" in {str(a) for a in host_addresses()} else []
    return ["127.0.0.1", gateway, *others, *v6]


@pytest.fixture(scope="module")
def service(gateway: str) -> Iterator[HostService]:
    with HostService(own_addresses(gateway)) as svc:
        yield svc


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[ProxyUnderTest]:
    # mux's defaults: no allowed_networks.
    yield from start_proxy(tmp_path_factory.mktemp("proxy-dest"), "[proxy]\ntimeout = 30\n", pki, {})


@pytest.fixture(scope="module")
def box(proxy: ProxyUnderTest) -> Iterator[SessionContainer]:
    yield from run_session(proxy, None, [])


def spellings(gateway: str, service: HostService) -> list[str]:
    """Hosts (as a client would write them) that all mean an address of this host."""
    hosts = ["127.0.0.1", "127.1", "2130706433", "0x7f000001", "0177.0.0.1", "127.000.000.001",
             "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "localhost", "localhost.", "LOCALHOST",
             "0.0.0.0", "0", gateway]
    hosts += [a if ":" not in a else f"[{a}]" for a in service.addresses if a not in ("127.0.0.1", gateway)]
    return hosts


def proxy_auth(box: SessionContainer) -> str:
    url = box.env_file.read_text().splitlines()[0].split("=", 1)[1]
    userinfo = url.split("//", 1)[1].rsplit("@", 1)[0]
    return "Basic " + base64.b64encode(userinfo.encode()).decode()


def raw(proxy: ProxyUnderTest, auth: str, method: str, target: str) -> tuple[int, str]:
    """One request straight to the proxy's loopback listener, the target exactly as written."""
    conn = http.client.HTTPConnection("127.0.0.1", proxy.settings.port, timeout=30)
    try:
        conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Proxy-Authorization", auth)
        host = target.split("//", 1)[-1].split("/", 1)[0]
        conn.putheader("Host", host)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace")
    finally:
        conn.close()


def test_every_spelling_of_a_host_address_is_refused(proxy: ProxyUnderTest, box: SessionContainer,
                                                     service: HostService, gateway: str) -> None:
    auth = proxy_auth(box)
    for host in spellings(gateway, service):
        for method, target in (("GET", f"http://{host}:{service.port}/plain"),
                               ("CONNECT", f"{host}:{service.port}")):
            status, body = raw(proxy, auth, method, target)
            assert status == 403, (method, target, status, body)
            if method == "GET":
                assert "mux's network policy" in body and "[proxy.filters] allowed_networks" in body, body
    assert service.requests == []


@pytest.mark.parametrize("target", [
    pytest.param("127.0.0.1", id="loopback"),
    pytest.param("localhost", id="localhost-name"),
    pytest.param("GATEWAY", id="bridge-gateway"),
    pytest.param("169.254.169.254", id="cloud-metadata"),
    pytest.param("10.255.255.1", id="private"),
    pytest.param("[::1]", id="loopback-v6"),
])
def test_refused_from_inside_a_session_over_http_and_connect(box: SessionContainer, proxy: ProxyUnderTest,
                                                             service: HostService, gateway: str,
                                                             target: str) -> None:
    host = gateway if target == "GATEWAY" else target
    url = f"http://{host}:{service.port}/from-session"
    # --noproxy '': NO_PROXY lists loopback names; these must go to the proxy.
    res = box.sh(f"curl -sS --max-time 20 --noproxy '' -i {url}")
    assert res.stdout.startswith("HTTP/1.1 403"), (res.stdout, res.stderr)
    assert "mux's network policy" in res.stdout and "allowed_networks" in res.stdout
    res = box.sh(f"curl -sS --max-time 20 --noproxy '' -p -o /dev/null -w '%{{http_connect}}' {url}")
    assert res.stdout == "403", (res.stdout, res.stderr)
    assert service.requests == []
    audit = [json.loads(ln) for ln in proxy.files.audit.read_text().splitlines()]
    mine = [e for e in audit if e["session"] == box.key and e["status"] == 403]
    assert {e["method"] for e in mine} >= {"GET", "CONNECT"}


@pytest.fixture(scope="module")
def loopback_service() -> Iterator[HostService]:
    with HostService(["127.0.0.1", "127.0.0.2"]) as svc:
        yield svc


@pytest.fixture(scope="module")
def open_proxy(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[ProxyUnderTest]:
    config = """[proxy]
timeout = 30
[proxy.filters]
# Opt the host's loopback back in (this test's service listens there)...
allowed_networks = ["127.0.0.0/8"]
# ...and a name filter that names an IP literal as written.
blocked_domains = ["127.0.0.2"]
"""
    yield from start_proxy(tmp_path_factory.mktemp("proxy-open"), config, pki, {})


def test_allowed_networks_opts_loopback_back_in(open_proxy: ProxyUnderTest, loopback_service: HostService,
                                                gateway: str) -> None:
    for box in run_session(open_proxy, None, []):
        port = loopback_service.port
        res = box.sh(f"curl -sS --max-time 20 --noproxy '' http://127.0.0.1:{port}/allowed")
        assert res.stdout == "host service\n", res.stderr
        res = box.sh(f"curl -sS --max-time 20 --noproxy '' -p http://localhost:{port}/by-name")
        assert res.stdout == "host service\n", res.stderr
        # An IP literal in blocked_domains is refused as written; the network alone would allow it.
        res = box.sh(f"curl -sS --max-time 20 --noproxy '' -i http://127.0.0.2:{port}/blocked")
        assert res.stdout.startswith("HTTP/1.1 403") and "blocked_domains" in res.stdout, res.stdout
        # Still refused: the host's addresses outside the allowed network.
        res = box.sh(f"curl -sS --max-time 20 --noproxy '' -o /dev/null -w '%{{http_code}}' "
                     f"http://{gateway}:{port}/")
        assert res.stdout == "403"
    assert sorted(p for _, p in loopback_service.requests) == ["/allowed", "/by-name"]
