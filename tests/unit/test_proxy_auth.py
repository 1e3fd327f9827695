"""The proxy's authentication seam, fast: the registry's answer and the addon's decision
for each request (a broken proxy authentication must fail the fast tier; issue 20 item 4,
issue 23 items 1 and 8). No socket is opened: destinations are global IP literals, so
the policy needs no lookup, and nothing connects."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import pytest
from mitmproxy import http
from mitmproxy.test import tflow

from mux.proxy import registry
from mux.proxy.addon import MuxPolicy
from mux.proxy.files import ProxyFiles
from mux.proxy.registry import Registry
from mux.proxy.settings import Filters

ALLOWED = "8.8.8.8"  # global, so the destination policy lets it through without DNS
NOT_LISTED = "1.1.1.1"


@pytest.fixture
def files(tmp_path: Path) -> ProxyFiles:
    files = ProxyFiles(tmp_path / "proxy")
    files.ensure()
    return files


def test_registry_check_follows_the_file_at_once(files: ProxyFiles) -> None:
    reg = Registry(files.sessions)
    registry.register(files, "a", "sa")
    registry.register(files, "b", "sb")
    assert reg.check("mux-a", "sa") == "a"
    assert reg.check("mux-a", "sb") is None  # another session's secret
    assert reg.check("mux-a", "sa-") is None
    assert reg.check("a", "sa") is None  # not a mux user
    assert reg.check("mux-", "") is None
    registry.forget(files, "a")
    assert reg.check("mux-a", "sa") is None  # gone at once, not on the next miss
    registry.register(files, "a", "new")
    assert reg.check("mux-a", "sa") is None and reg.check("mux-a", "new") == "a"
    assert reg.check("mux-b", "sb") == "b"
    files.sessions.unlink()
    assert reg.check("mux-b", "sb") is None


def basic(user: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


@pytest.fixture
def addon(files: ProxyFiles) -> MuxPolicy:
    registry.register(files, "a", "sa")
    registry.register(files, "b", "sb")
    return MuxPolicy(Registry(files.sessions), Filters(allowlist_only=True, allowed_domains=(ALLOWED,)),
                     (), files.audit)


def request(method: str, host: str, auths: tuple[str, ...] = ()) -> http.Request:
    port = 443 if method == "CONNECT" else 80
    req = http.Request.make("GET", f"http://{host}:{port}/p", headers=[(b"Host", host.encode())] + [
        (b"Proxy-Authorization", a.encode()) for a in auths])
    if method == "CONNECT":
        req.method, req.authority, req.path = "CONNECT", f"{host}:{port}", ""
    return req


def run(addon: MuxPolicy, flow: http.HTTPFlow) -> int | None:
    """The addon's decision for one request: its refusal status, or None (let through)."""
    if flow.request.method == "CONNECT":
        asyncio.run(addon.http_connect(flow))
        if flow.response is None:
            addon.http_connected(flow)
        else:
            addon.http_connect_error(flow)
    else:
        asyncio.run(addon.requestheaders(flow))
    return flow.response.status_code if flow.response is not None else None


@pytest.mark.parametrize(("auths", "status"), [
    pytest.param((), 407, id="none"),
    pytest.param((basic("mux-a", "sa"),), None, id="own-secret"),
    pytest.param((basic("mux-a", "sb"),), 407, id="other-sessions-secret"),
    pytest.param((basic("mux-a", "wrong"),), 407, id="wrong-secret"),
    pytest.param((basic("mux-a", "sa"), basic("mux-b", "sb")), 407, id="two-headers"),
    pytest.param((basic("mux-a", "sa"), basic("mux-a", "sa")), 407, id="same-header-twice"),
    pytest.param(("Bearer sa",), 407, id="not-basic"),
])
@pytest.mark.parametrize("method", ["CONNECT", "GET"])
def test_each_request_authenticates(addon: MuxPolicy, method: str, auths: tuple[str, ...],
                                    status: int | None) -> None:
    flow = tflow.tflow(req=request(method, ALLOWED, auths))
    assert run(addon, flow) == status
    if status == 407 and method == "CONNECT":
        assert flow.response is not None and flow.response.headers["Connection"] == "close"


@pytest.mark.parametrize("first", [
    pytest.param((ALLOWED, ()), id="connect-without-secret"),
    pytest.param((NOT_LISTED, (basic("mux-a", "sa"),)), id="connect-refused-by-filter"),
])
def test_a_failed_connect_leaves_no_session_on_the_connection(addon: MuxPolicy,
                                                               first: tuple[str, tuple[str, ...]]) -> None:
    host, auths = first
    connect = tflow.tflow(req=request("CONNECT", host, auths))
    assert run(addon, connect) in (403, 407)
    after = tflow.tflow(client_conn=connect.client_conn, req=request("GET", NOT_LISTED))
    assert run(addon, after) == 407
    assert addon.tunnels == {}


def test_a_failed_upstream_connect_leaves_no_tunnel(addon: MuxPolicy) -> None:
    connect = tflow.tflow(req=request("CONNECT", ALLOWED, (basic("mux-a", "sa"),)))
    asyncio.run(addon.http_connect(connect))
    assert connect.response is None
    connect.response = http.Response.make(502, b"Cannot connect")  # what mitmproxy answers
    addon.http_connect_error(connect)
    assert connect.response.headers["Connection"] == "close"
    after = tflow.tflow(client_conn=connect.client_conn, req=request("GET", NOT_LISTED))
    assert run(addon, after) == 407


def test_a_tunnel_carries_its_session_only_while_it_is_registered(addon: MuxPolicy, files: ProxyFiles) -> None:
    connect = tflow.tflow(req=request("CONNECT", ALLOWED, (basic("mux-a", "sa"),)))
    assert run(addon, connect) is None
    inside = tflow.tflow(client_conn=connect.client_conn, req=request("GET", ALLOWED))
    inside.request.port = 443
    assert run(addon, inside) is None and inside.metadata["mux_session"] == "a"
    elsewhere = tflow.tflow(client_conn=connect.client_conn, req=request("GET", NOT_LISTED))
    elsewhere.request.port = 443
    assert run(addon, elsewhere) == 403  # not the CONNECT's destination
    registry.forget(files, "a")
    registry.register(files, "a", "re-made")
    again = tflow.tflow(client_conn=connect.client_conn, req=request("GET", ALLOWED))
    again.request.port = 443
    assert run(addon, again) == 403
    assert again.response is not None and again.response.headers["Connection"] == "close"
