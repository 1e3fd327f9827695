"""No one session can stop the proxy for all (issue 23 item 2).

The proxy runs under a low file limit (600 descriptors), so that a bounded flood from
one real session is enough to exhaust it without mux's limits. Session A floods; session
B's requests keep succeeding, the proxy keeps its descriptors bounded, closes A's idle
unauthenticated connections after auth_timeout, and is the same process afterwards.
Traffic: only the proxy's own addresses and a service on the bridge gateway.
"""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from mux.proxy import control
from tests.integration.proxy.harness import ProxyUnderTest, SessionContainer, run_session, start_proxy
from tests.integration.proxy.servers import Pki
from tests.integration.proxy.test_proxy_destinations import HostService, proxy_auth

pytestmark = pytest.mark.docker
FILE_LIMIT = 600

# Opens $N connections to the proxy and holds them $HOLD seconds; with $AUTH set, each
# sends one authenticated keep-alive request first and prints the status line it got.
FLOOD = r"""
hp=${HTTPS_PROXY##*@}; h=${hp%:*}; p=${hp##*:}
opened=0
for i in $(seq "$N"); do
  exec {fd}<>"/dev/tcp/$h/$p" 2>/dev/null || continue
  opened=$((opened+1))
  if [ -n "$AUTH" ]; then
    printf 'GET %s HTTP/1.1\r\nHost: x\r\nProxy-Authorization: %s\r\n\r\n' "$URL" "$AUTH" >&$fd
    read -r -t 5 status <&$fd && echo "$status" | cut -d' ' -f2
  fi
done
echo "opened $opened"
sleep "$HOLD"
"""


@pytest.fixture(scope="module")
def service(gateway: str) -> Iterator[HostService]:
    with HostService([gateway], keep_alive=True) as svc:
        yield svc


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory, pki: Pki, gateway: str) -> Iterator[ProxyUnderTest]:
    config = f"""[proxy]
timeout = 30
max_connections = 200
max_unauthenticated_connections = 32
max_session_connections = 40
auth_timeout = 3
idle_timeout = 5
[proxy.filters]
allowed_networks = ["{gateway}/32"]
"""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    started = start_proxy(tmp_path_factory.mktemp("proxy-flood"), config, pki, {})
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(FILE_LIMIT, hard), hard))  # the proxy inherits it
    try:
        under_test = next(started)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    yield under_test
    next(started, None)


@pytest.fixture(scope="module")
def flooder(proxy: ProxyUnderTest) -> Iterator[SessionContainer]:
    yield from run_session(proxy, None, [])


@pytest.fixture(scope="module")
def bystander(proxy: ProxyUnderTest) -> Iterator[SessionContainer]:
    yield from run_session(proxy, None, [])


def start_flood(box: SessionContainer, n: int, hold: float, auth: str = "", url: str = "") -> subprocess.Popen[str]:
    return subprocess.Popen(["docker", "exec", "-e", f"N={n}", "-e", f"HOLD={hold}", "-e", f"AUTH={auth}",
                             "-e", f"URL={url}", box.name, "timeout", "120", "bash", "-c", FLOOD],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def bystander_ok(box: SessionContainer, url: str) -> bool:
    res = box.sh(f"curl -sS --max-time 10 -o /dev/null -w '%{{http_code}}' {url}")
    return res.stdout == "200"


def test_an_idle_flood_leaves_other_sessions_working(proxy: ProxyUnderTest, flooder: SessionContainer,
                                                     bystander: SessionContainer, service: HostService,
                                                     gateway: str) -> None:
    pid = control.status(proxy.files).pid
    assert pid is not None
    url = f"http://{gateway}:{service.port}/bystander"
    assert bystander_ok(bystander, url)
    baseline = fds(pid)
    flood = start_flood(flooder, 700, hold=12)
    try:
        time.sleep(2)
        results = [bystander_ok(bystander, url) for _ in range(5)]
        during = fds(pid)
        time.sleep(4)  # past auth_timeout: the proxy has closed the idle connections
        after = fds(pid)
        assert bystander_ok(bystander, url)
    finally:
        out, err = flood.communicate(timeout=150)
    assert "opened" in out, err
    assert all(results), results
    assert during <= baseline + 2 * 32 + 20, (baseline, during)
    assert after <= baseline + 10, (baseline, after)
    assert control.status(proxy.files).pid == pid
    log = (proxy.files.root / "proxy.log").read_text()
    assert "refusing connections" in log and "max_unauthenticated_connections" in log


def test_a_session_is_held_to_its_share(proxy: ProxyUnderTest, flooder: SessionContainer,
                                        bystander: SessionContainer, service: HostService, gateway: str) -> None:
    pid = control.status(proxy.files).pid
    url = f"http://{gateway}:{service.port}/bystander"
    flood = start_flood(flooder, 60, hold=4, auth=proxy_auth(flooder), url=f"http://{gateway}:{service.port}/mine")
    try:
        time.sleep(2)
        assert bystander_ok(bystander, url)
    finally:
        out, err = flood.communicate(timeout=150)
    statuses = out.split()
    assert statuses.count("200") == 40 and statuses.count("503") == 20, out + err
    assert control.status(proxy.files).pid == pid


def test_an_idle_authenticated_connection_is_closed(proxy: ProxyUnderTest, flooder: SessionContainer,
                                                    service: HostService, gateway: str) -> None:
    auth = proxy_auth(flooder)
    with socket.create_connection(("127.0.0.1", proxy.settings.port), timeout=30) as conn:
        conn.sendall(f"GET http://{gateway}:{service.port}/idle HTTP/1.1\r\nHost: {gateway}\r\n"
                     f"Proxy-Authorization: {auth}\r\n\r\n".encode())
        got = b""
        while not got.endswith(b"host service\n"):
            chunk = conn.recv(4096)
            assert chunk, got
            got += chunk
        assert got.startswith(b"HTTP/1.1 200"), got
        start = time.monotonic()
        assert conn.recv(4096) == b""  # closed by the proxy, not by this test's 30 s timeout
        assert 4 <= time.monotonic() - start < 20
