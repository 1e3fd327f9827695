"""Every request is checked, not every connection; a session's secret opens only its own
session, and only while it exists (issue 23, items 1 and 8).

Raw bytes on one client connection, from inside a real session (bash's /dev/tcp) and from
the host's loopback: what a hostile client can send that curl never would. The canary is
a plain HTTP service on the host's loopback that the name filters refuse; every attack
ends by checking it saw nothing.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import ssl
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from mux.proxy import audit, control, registry
from tests.conftest import mux
from tests.integration.proxy.harness import (
    TOKEN_ENV,
    ProxyUnderTest,
    SessionContainer,
    free_port,
    run_session,
    start_proxy,
)
from tests.integration.proxy.servers import EchoUpstream, Pki
from tests.integration.proxy.test_proxy_destinations import HostService, proxy_auth

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def service(gateway: str) -> Iterator[HostService]:
    """One plain HTTP service on the bridge gateway (an allowed name) and on the host's
    loopback (a name the allowlist refuses: the canary)."""
    with HostService([gateway, "127.0.0.1"], keep_alive=True) as svc:
        yield svc


@pytest.fixture(scope="module")
def api(pki: Pki, gateway: str) -> Iterator[EchoUpstream]:
    with EchoUpstream(gateway, pki) as server:
        yield server


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory, pki: Pki, gateway: str) -> Iterator[ProxyUnderTest]:
    config = f"""
[proxy]
timeout = 30
egress = "open"
[proxy.filters]
allowlist_only = true
allowed_domains = ["{gateway}"]
# Both addresses are open to the destination policy: only the name filter stands
# between a session and the loopback canary.
allowed_networks = ["{gateway}/32", "127.0.0.1/32"]

[credentials.api]
domains = ["{gateway}"]
auth_type = "bearer"
value = "${{{TOKEN_ENV}}}"
"""
    yield from start_proxy(tmp_path_factory.mktemp("proxy-req"), config, pki, {})


@pytest.fixture(scope="module")
def box(proxy: ProxyUnderTest) -> Iterator[SessionContainer]:
    yield from run_session(proxy, None, [])


# A fixed script: the messages come in as base64 in the environment, never as shell text.
EXCHANGE = r"""
hp=${HTTPS_PROXY##*@}; h=${hp%:*}; p=${hp##*:}
exec 3<>"/dev/tcp/$h/$p" || exit 99
( for m in $MSGS; do printf '%s' "$m" | base64 -d >&3; sleep "$GAP"; done; sleep 3 ) &
timeout 12 cat <&3
"""


def exchange(box: SessionContainer, *messages: bytes, gap: float = 1.0) -> str:
    """Send ``messages`` one after another on one connection from inside the session to the
    proxy; everything the proxy answered until it closed (or 12 s passed)."""
    encoded = " ".join(base64.b64encode(m).decode() for m in messages)
    res = subprocess.run(["docker", "exec", "-e", f"MSGS={encoded}", "-e", f"GAP={gap}", box.name,
                          "bash", "-c", EXCHANGE], capture_output=True, text=True, timeout=60)
    assert res.returncode != 99, res.stderr
    return res.stdout


def get(target: str, host: str, auth: str | None = None) -> bytes:
    lines = [f"GET {target} HTTP/1.1", f"Host: {host}"] + ([f"Proxy-Authorization: {auth}"] if auth else [])
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def connect(target: str, auth: str | None = None) -> bytes:
    lines = [f"CONNECT {target} HTTP/1.1", f"Host: {target}"] + ([f"Proxy-Authorization: {auth}"] if auth else [])
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def statuses(answer: str) -> list[str]:
    """Every status the proxy (or what it let through) answered, in order."""
    return re.findall(r"HTTP/1\.[01] (\d{3}) ", answer)


def canary_hits(service: HostService) -> list[str]:
    return [path for addr, path in service.requests if addr == "127.0.0.1"]


@pytest.mark.parametrize(("first", "status"), [
    pytest.param("closed-port", "502", id="connect-to-closed-port"),
    pytest.param("not-allowlisted", "403", id="connect-refused-by-filter"),
    pytest.param("no-auth", "407", id="connect-without-secret"),
])
@pytest.mark.parametrize("then_auth", [pytest.param(False, id="then-no-secret"),
                                       pytest.param(True, id="then-with-secret")])
def test_failed_connect_closes_the_connection(box: SessionContainer, service: HostService, gateway: str,
                                              first: str, status: str, then_auth: bool) -> None:
    auth = proxy_auth(box)
    target = {"closed-port": f"{gateway}:{free_port()}", "not-allowlisted": "elsewhere.test:443",
              "no-auth": f"{gateway}:{service.port}"}[first]
    hello = connect(target, None if first == "no-auth" else auth)
    after = get(f"http://127.0.0.1:{service.port}/after-{first}", f"127.0.0.1:{service.port}",
                auth if then_auth else None)
    answer = exchange(box, hello, after)
    assert statuses(answer) == [status], answer
    assert "connection: close" in answer.lower(), answer
    assert canary_hits(service) == []


def test_each_request_on_a_keepalive_connection_is_checked(box: SessionContainer, service: HostService,
                                                           gateway: str, proxy: ProxyUnderTest) -> None:
    auth, port = proxy_auth(box), service.port
    answer = exchange(
        box,
        get(f"http://{gateway}:{port}/first", f"{gateway}:{port}", auth),
        get(f"http://{gateway}:{port}/no-secret", f"{gateway}:{port}"),
    )
    assert statuses(answer)[:2] == ["200", "407"], answer
    answer = exchange(
        box,
        get(f"http://{gateway}:{port}/again", f"{gateway}:{port}", auth),
        get(f"http://127.0.0.1:{port}/not-allowlisted", f"127.0.0.1:{port}", auth),
    )
    assert statuses(answer)[:2] == ["200", "403"], answer
    paths = sorted(p for a, p in service.requests if a == gateway)
    assert "/first" in paths and "/again" in paths and "/no-secret" not in paths
    assert canary_hits(service) == []


# -- secrets (item 8), from the host's loopback: the proxy listens there too ----------------


def basic(user: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


def loopback_get(proxy: ProxyUnderTest, url: str, auths: list[str]) -> int:
    """A plain-HTTP proxy request with exactly these Proxy-Authorization lines."""
    conn = http.client.HTTPConnection("127.0.0.1", proxy.settings.port, timeout=30)
    try:
        conn.putrequest("GET", url, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", url.split("//", 1)[1].split("/", 1)[0])
        for auth in auths:
            conn.putheader("Proxy-Authorization", auth)
        conn.endheaders()
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


@pytest.fixture
def two(proxy: ProxyUnderTest) -> Iterator[dict[str, str]]:
    """Two sessions registered with the running proxy (name -> secret), forgotten afterwards."""
    made = {f"r{uuid.uuid4().hex[:8]}": registry.new_secret() for _ in range(2)}
    for name, secret in made.items():
        registry.register(proxy.files, name, secret)
    yield made
    for name in made:
        registry.forget(proxy.files, name)


def test_a_name_opens_only_with_its_own_secret(proxy: ProxyUnderTest, service: HostService, gateway: str,
                                               two: dict[str, str]) -> None:
    (a, sa), (b, sb) = two.items()
    url = f"http://{gateway}:{service.port}/secret-check"
    before = len(service.requests)
    assert loopback_get(proxy, url, [basic(f"mux-{a}", sa)]) == 200
    assert loopback_get(proxy, url, [basic(f"mux-{a}", sb)]) == 407  # another session's secret
    assert loopback_get(proxy, url, [basic(f"mux-{a}", sa + "x")]) == 407  # a wrong one
    assert loopback_get(proxy, url, [basic(a, sa)]) == 407  # not a mux user name
    # Two Proxy-Authorization lines (either order, valid or not): ambiguous, refused.
    assert loopback_get(proxy, url, [basic(f"mux-{a}", sa), basic(f"mux-{b}", sb)]) == 407
    assert loopback_get(proxy, url, [basic(f"mux-{b}", "nope"), basic(f"mux-{a}", sa)]) == 407
    assert loopback_get(proxy, url, [basic(f"mux-{a}", sa), basic(f"mux-{a}", sa)]) == 407
    assert len(service.requests) == before + 1
    found = audit.entries(proxy.files.audit)
    assert [e["session"] for e in found if e.get("path") == "/secret-check" and e["status"] == 200] == [a]


def test_a_forgotten_session_is_refused_at_once(proxy: ProxyUnderTest, service: HostService, gateway: str,
                                                two: dict[str, str]) -> None:
    (a, sa), (b, sb) = two.items()
    url = f"http://{gateway}:{service.port}/forgotten"
    assert loopback_get(proxy, url, [basic(f"mux-{a}", sa)]) == 200
    registry.forget(proxy.files, a)
    assert loopback_get(proxy, url, [basic(f"mux-{a}", sa)]) == 407
    # Re-made under the same name: only the new secret opens it.
    new = registry.new_secret()
    registry.register(proxy.files, a, new)
    assert loopback_get(proxy, url, [basic(f"mux-{a}", sa)]) == 407
    assert loopback_get(proxy, url, [basic(f"mux-{a}", new)]) == 200
    assert loopback_get(proxy, url, [basic(f"mux-{b}", sb)]) == 200


def test_deleting_a_session_ends_its_secret(proxy: ProxyUnderTest, service: HostService, gateway: str) -> None:
    for box in run_session(proxy, None, []):
        auth = proxy_auth(box)
        url = f"http://{gateway}:{service.port}/before-delete"
        assert loopback_get(proxy, url, [auth]) == 200
        assert mux("delete", "--force", box.session, env=proxy.env).returncode == 0
        assert loopback_get(proxy, url.replace("before", "after"), [auth]) == 407
    assert "/after-delete" not in [p for _, p in service.requests]


def tunnel(proxy: ProxyUnderTest, api: EchoUpstream, auth: str) -> http.client.HTTPSConnection:
    """A keep-alive HTTPS connection to the credential host through an intercepted tunnel."""
    ctx = ssl.create_default_context(cafile=str(proxy.files.bundle))
    conn = http.client.HTTPSConnection("127.0.0.1", proxy.settings.port, timeout=30, context=ctx)
    conn.set_tunnel(api.host, api.port, headers={"Proxy-Authorization": auth})
    return conn


def test_an_open_tunnel_ends_with_its_session(proxy: ProxyUnderTest, api: EchoUpstream,
                                              two: dict[str, str]) -> None:
    (a, sa), _ = two.items()
    conn = tunnel(proxy, api, basic(f"mux-{a}", sa))
    try:
        conn.request("GET", "/in-tunnel-1")
        resp = conn.getresponse()
        assert (resp.status, resp.read()) == (200, b"upstream ok\n")
        registry.forget(proxy.files, a)
        try:
            conn.request("GET", "/in-tunnel-2")
            resp = conn.getresponse()
            status = resp.status
        except (OSError, http.client.HTTPException):
            status = 0  # closed: as good as refused
        assert status in (0, 403, 407)
    finally:
        conn.close()
    assert "/in-tunnel-2" not in [p for _, p, _ in api.requests]


def test_client_headers_are_replaced_never_added(proxy: ProxyUnderTest, api: EchoUpstream,
                                                 two: dict[str, str]) -> None:
    (a, sa), _ = two.items()
    conn = tunnel(proxy, api, basic(f"mux-{a}", sa))
    try:
        conn.putrequest("GET", "/dup-headers")
        for value in ("Bearer from-the-client", "Bearer second-from-the-client"):
            conn.putheader("Authorization", value)
        for value in (basic(f"mux-{a}", sa), "Basic c3RvbGVu"):
            conn.putheader("Proxy-Authorization", value)
        conn.endheaders()
        resp = conn.getresponse()
        assert resp.status == 200
        resp.read()
    finally:
        conn.close()
    index = [p for _, p, _ in api.requests].index("/dup-headers")
    raw = api.raw_headers[index]
    assert [v for k, v in raw if k.lower() == "authorization"] == [f"Bearer {proxy.token}"], raw
    assert [k for k, _ in raw if k.lower() == "proxy-authorization"] == [], raw


# -- a bounded audit log (item 5) ---------------------------------------------------------

FLOOD = r"""
hp=${HTTPS_PROXY##*@}; h=${hp%:*}; p=${hp##*:}
for i in $(seq "$N"); do
  exec 3<>"/dev/tcp/$h/$p" || exit 99
  printf 'GET %s HTTP/1.1\r\nHost: x\r\n%s\r\n' "$URL" "$AUTH" >&3
  read -r -t 5 status <&3 && echo "$status"
  exec 3>&-
done | sort | uniq -c
"""


def flood(box: SessionContainer, url: str, n: int, auth: str = "") -> str:
    line = f"Proxy-Authorization: {auth}\r\n" if auth else ""
    res = subprocess.run(["docker", "exec", "-e", f"N={n}", "-e", f"URL={url}", "-e", f"AUTH={line}", box.name,
                          "bash", "-c", FLOOD], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_the_audit_log_is_bounded_and_readable(tmp_path_factory: pytest.TempPathFactory, pki: Pki,
                                               gateway: str, service: HostService) -> None:
    config = f"""[proxy]
timeout = 30
audit_max_bytes = 8192
audit_keep = 2
[proxy.filters]
allowed_networks = ["{gateway}/32"]
"""
    url = f"http://{gateway}:{service.port}"
    for proxy in start_proxy(tmp_path_factory.mktemp("proxy-audit"), config, pki, {}):
        for box in run_session(proxy, None, []):
            before = proxy.files.audit.stat().st_size if proxy.files.audit.exists() else 0
            # Anyone who reaches the proxy: 500 requests without the secret.
            assert "500 HTTP/1.1 407" in flood(box, f"{url}/flood", 500)
            grown = proxy.files.audit.stat().st_size - before
            assert grown < 1024, proxy.files.audit.read_text()[-2000:]
            # The session itself, 300 times: the log rotates, and keeps two old files.
            assert "300 HTTP/1.1 200" in flood(box, f"{url}/mine", 300, proxy_auth(box))
            logs = sorted(p.name for p in proxy.files.root.glob("audit.jsonl*"))
            assert logs == ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2"]
            assert all((proxy.files.root / name).stat().st_size <= 8192 for name in logs)
            shown = mux("proxy", "audit", "--session", box.session, "--json", env=proxy.env)
            assert shown.returncode == 0, shown.stderr
            mine = json.loads(shown.stdout)
            in_old_files = sum(1 for n in logs[1:] for _ in (proxy.files.root / n).read_text().splitlines())
            assert len(mine) > in_old_files > 0 and {e["path"] for e in mine} == {"/mine"}
            text = mux("proxy", "audit", "--since", "10m", env=proxy.env).stdout
            assert "/mine" in text.splitlines()[-1]
            # Stopping writes the count of what was not logged one by one.
            control.stop(proxy.files)
            summaries = [e for e in audit.entries(proxy.files.audit) if e.get("summary")]
            floods = [e for e in audit.entries(proxy.files.audit) if e.get("path") == "/flood"]
            assert len(floods) <= 1 and sum(e["count"] for e in summaries) >= 450, summaries
            assert {e["client"] for e in summaries} == {e["client"] for e in floods} or not floods
