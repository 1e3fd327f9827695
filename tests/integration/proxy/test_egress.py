"""proxy-only egress on a real engine: the proxy is a session's only way out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mux.egress import relay as egress
from tests.conftest import DEBIAN, ROOT, docker, mux
from tests.integration.proxy.harness import free_port
from tests.integration.proxy.servers import EchoUpstream, Pki
from tests.integration.proxy.test_proxy_destinations import HostService

pytestmark = pytest.mark.docker
TOKEN = "tok-egress-never-in-a-container"


def remove_egress(instance: str) -> None:
    """The relay and network mux made for this test's instance (the suite removes containers only)."""
    found = docker("ps", "-aq", "--filter", f"label=mux.instance={instance}", check=False).stdout.split()
    if found:
        docker("rm", "-f", *found, check=False)
    docker("network", "rm", f"mux-egress-{instance}", check=False)


@pytest.fixture
def proxied(images, mux_home: Path, pki: Pki, gateway: str, own_instance: str,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[dict]:
    config = Path(os.environ["MUX_CONFIG"])
    config.write_text(
        f'[docker]\nimage = "{DEBIAN}"\npull = "never"\n'
        f"[proxy]\nport = {free_port()}\ntimeout = 30\n"
        # The test's upstream listens on the bridge gateway, which the destination
        # policy refuses by default: allow exactly that address.
        f'[proxy.filters]\nallowed_networks = ["{gateway}/32"]\n'
        f'[credentials.api]\ndomains = ["{gateway}"]\nauth_type = "bearer"\nvalue = "${{API_TOKEN}}"\n'
    )
    monkeypatch.setenv("MUX_PROXY_UPSTREAM_CA", str(pki.ca))
    yield {"env": {"API_TOKEN": TOKEN}}
    mux("delete", "--all", "--force")
    mux("proxy", "stop")
    remove_egress(own_instance)


def relay_check() -> dict[str, object]:
    """`mux doctor`'s check of the proxy-only sessions' egress relay (--json)."""
    return next(c for c in json.loads(mux("doctor", "--json").stdout)["checks"] if c["name"] == "relay")


def test_proxy_only_session_has_no_way_out_but_the_proxy(proxied, pki: Pki, gateway: str,
                                                         unique_name: str, own_instance: str) -> None:
    closed, open_ = f"{unique_name}c", f"{unique_name}o"
    env = proxied["env"]
    made = mux("-v", "new", "--egress", "proxy-only", closed, env=env)
    assert made.returncode == 0, made.stderr
    assert f"docker network create --internal -o {egress.INHIBIT}=true" in made.stderr
    assert mux("new", open_, env=env).returncode == 0
    with HostService([gateway]) as service, EchoUpstream(gateway, pki) as api:
        direct = f"curl -sS --max-time 5 --noproxy '*' -o /dev/null -w %{{http_code}} http://{gateway}:{service.port}/"
        # An open session reaches the host service directly (docker's bridge); a proxy-only one cannot.
        assert mux("exec", open_, "--", "sh", "-c", direct).stdout == "200"
        blocked = mux("exec", closed, "--", "sh", "-c", direct)
        assert blocked.stdout == "000" and blocked.returncode != 0
        assert [p for _, p in service.requests] == ["/"]  # only the open session's request
        # Nor can it reach the relay's other side or anything by another port on it.
        relay = mux("exec", closed, "--", "sh", "-c", "echo $HTTPS_PROXY").stdout.strip().rsplit("@", 1)[1]
        assert relay.startswith("mux-proxy-")
        other = mux("exec", closed, "--", "curl", "-sS", "--max-time", "5", "--noproxy", "*",
                    f"http://{relay.split(':')[0]}:22/")
        assert other.returncode != 0
        # Through the proxy it still reaches what the policy allows, with the credential injected.
        via = mux("exec", closed, "--", "curl", "-sS", "--max-time", "30", f"{api.url}/v1/models")
        assert via.stdout == "upstream ok\n", via.stderr
        assert api.requests[-1][2]["Authorization"] == f"Bearer {TOKEN}"
        # ...and the proxy's own policy still holds there.
        refused = mux("exec", closed, "--", "curl", "-sS", "--max-time", "30", "--noproxy", "", "-o", "/dev/null", "-w",
                      "%{http_code}", f"http://127.0.0.1:{service.port}/")
        assert refused.stdout == "403"
    listed = {s["name"]: s["egress"] for s in json.loads(mux("list", "--json").stdout)}
    assert listed == {closed: "proxy-only", open_: "open"}
    table = mux("list").stdout.splitlines()
    assert "EGRESS" in table[0].split()
    # The proxy is the only way out even after the proxy restarts and the relay is restarted (or re-made).
    assert mux("proxy", "stop").returncode == 0
    relay_name = egress.relay_name(int(relay.split(":")[1]))
    docker("stop", relay_name)
    assert relay_check() == {"name": "relay", "ok": False, "fix": f"`mux exec {closed} -- true` starts it",
                             "detail": f"{relay_name} (of {closed}) is stopped: the session cannot reach the proxy"}
    # --dry-run prints what that exec would run (the proxy's start, the relay's, the
    # exec itself) and runs none of it.
    dry = mux("exec", "--dry-run", closed, "--", "true", env=env)
    printed = dry.stdout.splitlines()
    assert dry.returncode == 0 and any(" -m mux.proxy.server " in ln for ln in printed), dry.stdout + dry.stderr
    assert printed[-2] == f"docker start {relay_name}", printed
    assert printed[-1].startswith("docker exec ") and printed[-1].endswith(" true"), printed
    assert relay_check()["ok"] is False and mux("proxy", "status").returncode == 5
    assert mux("exec", closed, "--", "true", env=env).returncode == 0
    assert relay_check() == {"name": "relay", "ok": True, "fix": "", "detail": f"{relay_name} runs (of {closed})"}
    # Removed by hand, the relay is made again by the session's next mux command.
    docker("rm", "-f", relay_name)
    assert relay_check()["fix"] == f"`mux exec {closed} -- true` makes it again"
    printed = mux("exec", "--dry-run", closed, "--", "true", env=env).stdout.splitlines()
    assert any(ln.startswith(f"docker create --name {relay_name} ") for ln in printed), printed
    assert not any("mux.proxy.server" in ln for ln in printed)  # the proxy runs: nothing to start
    assert relay_check()["fix"] == f"`mux exec {closed} -- true` makes it again"  # nothing ran
    assert mux("exec", closed, "--", "true", env=env).returncode == 0
    assert relay_check()["ok"] is True
    with EchoUpstream(gateway, pki) as api:
        again = mux("exec", closed, "--", "curl", "-sS", "--max-time", "30", f"{api.url}/again")
        assert again.stdout == "upstream ok\n", again.stderr
    # Deleting the last proxy-only session removes the relay and the network with it.
    assert mux("delete", "--force", closed).returncode == 0
    assert docker("network", "inspect", egress.network_name(), check=False).returncode != 0
    assert docker("container", "inspect", egress.relay_name(int(relay.split(":")[1])), check=False).returncode != 0


def test_proxy_only_with_another_network_is_a_usage_error(proxied, unique_name: str) -> None:
    for flags in (["--network", "host"], ["--network", "none"], ["--network", "bridge"], ["--no-proxy"]):
        result = mux("new", "--egress", "proxy-only", *flags, unique_name, env=proxied["env"])
        assert result.returncode == 2, (flags, result.stderr)
        assert result.stderr.startswith("mux: error: egress proxy-only") and "Traceback" not in result.stderr
        assert docker("container", "inspect", f"mux-{unique_name}", check=False).returncode != 0
    assert mux("proxy", "status").returncode == 5  # nothing was started for them


def test_relay_binaries_rebuild_to_the_same_bytes(tmp_path: Path) -> None:
    subprocess.run(["bash", str(ROOT / "helper" / "build.sh"), str(tmp_path), "relay"], check=True,
                   capture_output=True, timeout=600, env={**os.environ, "PYTHON": sys.executable})
    for arch in ("amd64", "arm64"):
        assert (tmp_path / f"mux-relay-{arch}").read_bytes() == (egress.RELAY_BIN / f"mux-relay-{arch}").read_bytes()


def relay_of(session: str) -> tuple[str, int]:
    """The relay's alias and port a proxy-only session reaches the proxy at."""
    where = mux("exec", session, "--", "sh", "-c", "echo $HTTPS_PROXY").stdout.strip().rsplit("@", 1)[1]
    host, port = where.split(":")
    return host, int(port)


def test_the_relay_runs_alone_in_an_image_of_its_own(proxied, unique_name: str) -> None:
    assert mux("new", "--egress", "proxy-only", unique_name, env=proxied["env"]).returncode == 0
    _, port = relay_of(unique_name)
    (info,) = json.loads(docker("container", "inspect", egress.relay_name(port)).stdout)
    # Not the first session's image: its HEALTHCHECK and entrypoint would run in the shared relay.
    assert info["Config"]["Image"].startswith(f"{egress.RELAY_IMAGE}:amd64-")
    assert info["Config"]["Healthcheck"]["Test"] == ["NONE"]
    assert info["Path"] == "/mux-relay" and info["Config"]["User"] == "65534:65534"
    host = info["HostConfig"]
    assert host["ReadonlyRootfs"] is True and host["CapDrop"] == ["ALL"] and host["PidsLimit"] == 16
    assert "no-new-privileges" in host["SecurityOpt"]
    (image,) = json.loads(docker("image", "inspect", info["Config"]["Image"]).stdout)
    assert image["Size"] < 100_000  # the static relay and nothing else
    assert image["Config"]["Labels"]["mux.helper"] == "relay"


FLOOD = """
n=0
for i in $(seq {count}); do
    exec {{fd}}<>/dev/tcp/{host}/{port} 2>/dev/null && n=$((n+1))
done
echo "opened $n"
sleep {hold}
"""


def test_a_flood_of_connections_does_not_knock_the_relay_over(proxied, pki: Pki, gateway: str,
                                                              unique_name: str) -> None:
    """The relay holds and recovers: 1,500 connections from one session, in one process,
    never restarted; the other session's requests go through while the flood holds."""
    config = Path(os.environ["MUX_CONFIG"])
    config.write_text(config.read_text().replace("timeout = 30\n", "timeout = 30\nauth_timeout = 3\n", 1))
    flooder, other = f"{unique_name}f", f"{unique_name}o"
    for name in (flooder, other):
        assert mux("new", "--egress", "proxy-only", name, env=proxied["env"]).returncode == 0
    host, port = relay_of(flooder)
    relay = egress.relay_name(port)
    # 1,500 connections held open (a fork per connection got 631 OOM kills in the relay's 64 MiB).
    flood = subprocess.Popen(
        ["docker", "exec", f"mux-{flooder}", "bash", "-c", FLOOD.format(count=1500, host=host, port=port, hold=90)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        opened = flood.stdout.readline() if flood.stdout else ""  # once all are open; they stay so
        assert opened.startswith("opened "), flood.stderr.read() if flood.stderr else ""
        assert int(opened.split()[1]) >= 1000
        with EchoUpstream(gateway, pki) as api:
            # While the flood holds its 1,500 connections open: within a few auth_timeouts.
            via = mux("exec", other, "--", "sh", "-c",
                      f"for i in $(seq 12); do curl -sS --max-time 5 {api.url}/during-the-flood && exit 0; "
                      "sleep 1; done; exit 1")
            assert via.stdout.endswith("upstream ok\n"), via.stderr
            assert flood.poll() is None  # the flood still holds its connections
    finally:
        flood.kill()  # the exec's client; the session (and the flood in it) goes at teardown
        flood.communicate(timeout=60)
    (info,) = json.loads(docker("container", "inspect", relay).stdout)
    assert info["State"]["Running"] is True and info["State"]["OOMKilled"] is False
    assert info["RestartCount"] == 0
    logs = docker("logs", relay).stderr
    assert logs.count("mux-relay: port") == 1  # started once, never again


def test_one_sessions_idle_flood_does_not_starve_another_behind_the_relay(proxied, pki: Pki, gateway: str,
                                                                         unique_name: str) -> None:
    """Behind the relay every session reaches the proxy from the relay's one address; the
    relay tells the proxy each connection's real client (a line only the relay's key makes
    the proxy believe), so the per-address limit on unauthenticated connections
    (max_unauthenticated_connections, 64) is the flooding session's own: the other
    session's request goes through at once, long before auth_timeout (60 s here)."""
    config = Path(os.environ["MUX_CONFIG"])
    config.write_text(config.read_text().replace("timeout = 30\n", "timeout = 30\nauth_timeout = 60\n", 1))
    flooder, other = f"{unique_name}f", f"{unique_name}o"
    for name in (flooder, other):
        assert mux("new", "--egress", "proxy-only", name, env=proxied["env"]).returncode == 0
    host, port = relay_of(flooder)
    # 200 idle connections: past the proxy's 64 per address, under the relay's 256 per address.
    flood = subprocess.Popen(
        ["docker", "exec", f"mux-{flooder}", "bash", "-c", FLOOD.format(count=200, host=host, port=port, hold=90)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        opened = flood.stdout.readline() if flood.stdout else ""
        assert opened.startswith("opened "), flood.stderr.read() if flood.stderr else ""
        import time

        time.sleep(2)  # the relay has passed them on; the proxy holds 64 of them
        with EchoUpstream(gateway, pki) as api:
            start = time.monotonic()
            via = mux("exec", other, "--", "curl", "-sS", "--max-time", "10", f"{api.url}/during-the-flood")
            took = time.monotonic() - start
            assert via.stdout == "upstream ok\n", via.stderr
            assert took < 10, took
            # The flooder itself is the one held to the limit: its own new connections are refused.
            mine = mux("exec", flooder, "--", "curl", "-sS", "--max-time", "5", "-o", "/dev/null", f"{api.url}/mine")
            assert mine.returncode != 0
            assert [r[1] for r in api.requests] == ["/during-the-flood"]
            assert flood.poll() is None  # the flood still holds its connections
    finally:
        flood.kill()
        flood.communicate(timeout=60)
