"""curl in a real container through the proxy: injection, tunnelling, filters, proxy auth."""

from __future__ import annotations

import base64
import http.client
import json
from collections.abc import Iterator

import pytest

from tests.integration.proxy.harness import (
    TOKEN_ENV,
    ProxyUnderTest,
    SessionContainer,
    docker,
    run_session,
    start_proxy,
)
from tests.integration.proxy.servers import EchoUpstream, Pki, make_pki

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def api(pki: Pki, gateway: str) -> Iterator[EchoUpstream]:
    """The credential host: an HTTPS API on the bridge gateway."""
    with EchoUpstream(gateway, pki) as server:
        yield server


@pytest.fixture(scope="module")
def plain_site(pki: Pki) -> Iterator[EchoUpstream]:
    """A host with no credential rule, on loopback: must be tunnelled untouched."""
    with EchoUpstream("127.0.0.1", pki) as server:
        yield server


@pytest.fixture(scope="module")
def rogue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EchoUpstream]:
    """A credential host whose certificate no trusted CA signed: must never get the token."""
    other = make_pki(tmp_path_factory.mktemp("rogue-pki"), ["127.0.0.2"], ca_name="untrusted CA")
    with EchoUpstream("127.0.0.2", other) as server:
        yield server


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory, pki: Pki, gateway: str) -> Iterator[ProxyUnderTest]:
    config = f"""
[proxy]
timeout = 30
# allowlist_only implies proxy-only egress; these tests reach the proxy by its
# bridge address (and one runs on the host network), so keep the session open.
egress = "open"
[proxy.filters]
blocked_domains = ["blocked.invalid", "*.blocked.test"]
allowlist_only = true
allowed_domains = ["{gateway}", "127.0.0.1", "127.0.0.2", "*.blocked.test"]
# This test's own upstreams listen on the host's loopback and on the bridge
# gateway, which mux's destination policy refuses by default: allow exactly those.
allowed_networks = ["{gateway}/32", "127.0.0.1/32", "127.0.0.2/32"]

[credentials.api]
domains = ["{gateway}"]
auth_type = "bearer"
value = "${{{TOKEN_ENV}}}"

[credentials.rogue]
domains = ["127.0.0.2"]
header = "X-Api-Key"
value = "${{{TOKEN_ENV}}}"
"""
    yield from start_proxy(tmp_path_factory.mktemp("proxy-http"), config, pki, {})


@pytest.fixture(scope="module")
def box(proxy: ProxyUnderTest, pki: Pki) -> Iterator[SessionContainer]:
    # The test CA is mounted only so the tunnel test can check the upstream's own certificate.
    yield from run_session(proxy, None, ["--volume", f"{pki.ca.parent}:/test-pki:ro"])


def curl(box: SessionContainer, args: str) -> tuple[int, str, str]:
    res = box.sh(f"curl -sS --max-time 30 {args}")
    return res.returncode, res.stdout, res.stderr


def test_injects_credential_and_replaces_client_one(box: SessionContainer, api: EchoUpstream,
                                                    proxy: ProxyUnderTest) -> None:
    code, out, err = curl(box, f"-H 'Authorization: Bearer from-the-client' '{api.url}/v1/models?key=q'")
    assert (code, out) == (0, "upstream ok\n"), err
    method, path, headers = api.requests[-1]
    assert headers["Authorization"] == f"Bearer {proxy.token}"
    assert "Proxy-Authorization" not in headers
    entries = [json.loads(ln) for ln in (proxy.files.audit).read_text().splitlines()]
    mine = [e for e in entries if e["session"] == box.key and e["path"] == "/v1/models"]
    assert mine and mine[-1]["injected"] is True and mine[-1]["status"] == 200
    assert set(mine[-1]) == {"time", "session", "host", "method", "path", "injected", "status", "duration_ms"}


def test_no_secret_in_container_env_inspect_or_printed_args(box: SessionContainer, proxy: ProxyUnderTest) -> None:
    env = box.sh("env", check=True).stdout
    inspect = docker("inspect", box.name).stdout
    assert proxy.token not in env
    assert proxy.token not in inspect
    assert "HTTPS_PROXY=http://mux-" in env and "SSL_CERT_FILE=/etc/mux-proxy/ca-bundle.pem" in env
    # The session secret travels by reference only: the printed docker commands never have it.
    assert box.env_file.stat().st_mode & 0o777 == 0o600
    secret = box.env_file.read_text().split("\n")[0].split(":")[2].split("@")[0]
    assert secret and secret not in box.printed and f"--env-file {box.env_file}" in box.printed
    assert proxy.token not in proxy.files.audit.read_text()
    assert proxy.token not in (proxy.files.root / "proxy.log").read_text()


def test_other_https_is_tunnelled_untouched(box: SessionContainer, plain_site: EchoUpstream, pki: Pki) -> None:
    # --noproxy '': NO_PROXY lists 127.0.0.1, but this must go through the proxy to the host's loopback.
    code, out, err = curl(box, f"-v --noproxy '' --cacert /test-pki/ca.pem {plain_site.url}/page")
    assert (code, out) == (0, "upstream ok\n"), err
    assert f"issuer: CN={pki.ca_name}" in err
    assert "mux credential proxy CA" not in err
    assert "Authorization" not in plain_site.requests[-1][2]


def test_credential_never_sent_to_unverified_upstream(box: SessionContainer, rogue: EchoUpstream) -> None:
    code, out, _ = curl(box, f"--noproxy '' -o /dev/null -w '%{{http_code}}' {rogue.url}/steal")
    assert out == "502"
    assert rogue.requests == []


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        pytest.param("blocked.invalid", "blocked_domains", id="blocked"),
        pytest.param("a.b.blocked.test", "blocked_domains", id="blocked-wildcard"),
        pytest.param("elsewhere.invalid", "allowed_domains", id="not-allowlisted"),
    ],
)
def test_filters_refuse_with_403(box: SessionContainer, url: str, reason: str) -> None:
    code, out, _ = curl(box, f"-o /dev/null -w '%{{http_connect}}' https://{url}/")
    assert out == "403" and code != 0
    code, out, _ = curl(box, f"-i http://{url}/")
    assert out.startswith("HTTP/1.1 403") and "mux's network policy" in out and reason in out


@pytest.mark.parametrize(
    "userinfo", [pytest.param("", id="no-secret"), pytest.param("mux-nobody:wrong@", id="wrong-secret")]
)
def test_proxy_refuses_without_session_secret(box: SessionContainer, proxy: ProxyUnderTest,
                                              api: EchoUpstream, userinfo: str) -> None:
    before = len(api.requests)
    via = f"http://{userinfo}host.docker.internal:{proxy.settings.port}"
    code, out, err = curl(box, f"-v -x {via} -o /dev/null {api.url}/")
    assert code != 0 and "< HTTP/1.1 407" in err and "< Proxy-Authenticate: Basic" in err
    code, out, err = curl(box, f"-i -x {via} http://{api.host}:{api.port}/")
    assert out.startswith("HTTP/1.1 407") and "Proxy-Authenticate: Basic" in out
    assert len(api.requests) == before


def test_local_process_without_secret_gets_407(proxy: ProxyUnderTest, api: EchoUpstream) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", proxy.settings.port, timeout=30)
    bogus = base64.b64encode(b"mux-x:guess").decode()
    conn.request("CONNECT", f"{api.host}:{api.port}", headers={"Proxy-Authorization": f"Basic {bogus}"})
    resp = conn.getresponse()
    assert resp.status == 407 and resp.getheader("Proxy-Authenticate", "").startswith("Basic")
    conn.close()


def test_host_network_uses_loopback(proxy: ProxyUnderTest, api: EchoUpstream) -> None:
    for box in run_session(proxy, "host", []):
        assert "--add-host" not in box.printed
        assert box.sh("echo $HTTPS_PROXY").stdout.endswith(f"@127.0.0.1:{proxy.settings.port}\n")
        code, out, err = curl(box, f"{api.url}/from-host-net")
        assert (code, out) == (0, "upstream ok\n"), err
        assert api.requests[-1][2]["Authorization"] == f"Bearer {proxy.token}"

