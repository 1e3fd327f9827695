"""A remote engine whose sshd cannot give containers the proxy fails closed, and
the tunnel ends with the proxy.

The second engine's own sshd (port 22) runs with `GatewayPorts clientspecified`;
for the failing cases more sshds run on that same machine beside it, one with
sshd's defaults (`GatewayPorts no`: a remote forward binds its own loopback) and
one with `AllowTcpForwarding no`, each reached through a docker context of its
own (the same engine behind them). `mux new` there must exit 5 with one line
naming the setting and leave nothing on either engine; a firewall between that
engine's containers and the tunnel is caught by the check from the session's
network itself. After `mux proxy stop`, nothing on the remote reaches this
machine's loopback port any more; the next `mux exec` brings proxy and tunnel back.
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mux.egress.reach import parse_listening
from mux.egress.tunnel import _files
from mux.engine.choice import Engine
from tests.conftest import BUSYBOX, DEBIAN, mux, session_dir
from tests.integration.remote.conftest import RemoteEngine

pytestmark = pytest.mark.docker
GATEWAY_LINE = "set `GatewayPorts clientspecified` in its sshd_config and reload sshd"


def _variant(engine: RemoteEngine, context: str, port: int, *options: str) -> RemoteEngine:
    """Another sshd on the remote machine (``options`` as sshd_config lines), and a
    docker context reaching the same engine through it."""
    base = Path(engine.env["DOCKER_CONFIG"]).parent
    engine.inside("/usr/sbin/sshd", "-p", str(port), "-o", "PasswordAuthentication=no", *options)
    ip = subprocess.run(["docker", "inspect", "--format", "{{.NetworkSettings.IPAddress}}", engine.container],
                        capture_output=True, text=True, check=True).stdout.strip()
    key = engine.inside("cat", "/etc/ssh/ssh_host_ed25519_key.pub").stdout.split()[:2]
    with open(base / "known_hosts", "a") as known:
        known.write(f"[{ip}]:{port} {' '.join(key)}\n")
    config = base / "ssh_config"
    if f"Host {ip}\n" not in config.read_text():
        with open(config, "a") as fh:
            fh.write(f"Host {ip}\n  IdentityFile {base / 'id_ed25519'}\n  IdentitiesOnly yes\n"
                     f"  UserKnownHostsFile {base / 'known_hosts'}\n  StrictHostKeyChecking yes\n"
                     "  BatchMode yes\n  ConnectTimeout 10\n")
    host = f"ssh://root@{ip}:{port}"
    subprocess.run(["docker", "context", "create", context, "--docker", f"host={host}"],
                   capture_output=True, text=True, check=True, env={**os.environ, **engine.env})
    return RemoteEngine(container=engine.container, host=host, env=engine.env, context=context)


@pytest.fixture(scope="module")
def default_sshd(remote_engine: RemoteEngine) -> RemoteEngine:
    return _variant(remote_engine, "box-default-sshd", 2222)  # sshd's defaults: GatewayPorts no


@pytest.fixture(scope="module")
def no_forwarding_sshd(remote_engine: RemoteEngine) -> RemoteEngine:
    return _variant(remote_engine, "box-no-forwarding", 2223, "-o", "AllowTcpForwarding=no",
                    "-o", "GatewayPorts=clientspecified")


def proxy_port() -> int:
    return int(Path(os.environ["MUX_CONFIG"]).read_text().split("port = ", 1)[1].split()[0])


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:  # that process has ended since the listing
        return b""


def assert_nothing_left(engine: RemoteEngine, own_instance: str, name: str, port: int) -> None:
    """Of this test's session: nothing on the remote engine (containers, the probe's
    included, volumes, networks), no forward listening on the remote machine, no ssh
    master here, nothing on this machine's engine, no session files."""
    label = f"label=mux.instance={own_instance}"
    for kind, listed in (("container", ["ps", "-a"]), ("volume", ["volume", "ls"]), ("network", ["network", "ls"])):
        there = engine.docker(*listed, "-q", "--filter", label).stdout.split()
        here = subprocess.run(["docker", *listed, "-q", "--filter", label], capture_output=True, text=True,
                              check=True).stdout.split()
        assert there == [] and here == [], (kind, there, here)
    assert parse_listening(engine.inside("cat", "/proc/net/tcp").stdout, port) == set()
    sock, state, _ = _files(Engine(engine.context, engine.host, "test"))
    assert not sock.exists() and not state.exists()
    assert [p for p in Path("/proc").glob("[0-9]*/cmdline") if str(sock).encode() in _read(p)] == []
    assert not session_dir(name).exists()


@pytest.mark.parametrize("egress", ["open", "proxy-only"])
def test_an_sshd_with_gateway_ports_no_gets_exit_5_and_nothing_is_left(
        proxied_remote, remote, default_sshd, unique_name, tmp_path, own_instance: str, egress: str) -> None:
    proj = tmp_path / "proj"
    proj.mkdir()
    made = mux("--context", default_sshd.context, "new", "--egress", egress, "--copy", "--workdir", str(proj),
               unique_name, env=proxied_remote)
    lines = made.stderr.splitlines()
    assert made.returncode == 5 and len(lines) == 1, made.stderr
    assert lines[0].startswith(f"mux: error: sessions on context '{default_sshd.context}'") and GATEWAY_LINE in lines[0]
    assert "loopback" in lines[0] and "AllowTcpForwarding" not in lines[0]
    assert_nothing_left(default_sshd, own_instance, unique_name, proxy_port())


def test_an_sshd_that_refuses_forwarding_names_allow_tcp_forwarding(
        proxied_remote, remote, no_forwarding_sshd, unique_name, tmp_path, own_instance: str) -> None:
    proj = tmp_path / "proj"
    proj.mkdir()
    made = mux("--context", no_forwarding_sshd.context, "new", "--copy", "--workdir", str(proj), unique_name,
               env=proxied_remote)
    lines = made.stderr.splitlines()
    assert made.returncode == 5 and len(lines) == 1, made.stderr
    assert "refused the proxy's tunnel forward" in lines[0] and "`AllowTcpForwarding yes`" in lines[0], lines[0]
    assert_nothing_left(no_forwarding_sshd, own_instance, unique_name, proxy_port())


@pytest.mark.parametrize("egress", ["open", "proxy-only"])
def test_a_firewall_between_the_sessions_network_and_the_tunnel_is_caught(
        proxied_remote, remote, unique_name, tmp_path, own_instance: str, egress: str) -> None:
    """The forward binds the bridge gateway as it should, but that machine's firewall
    rejects its containers there: only the check from the session's own network sees
    it, and the session (and its relay, network, tunnel) goes."""
    port = proxy_port()
    rule = ["INPUT", "-p", "tcp", "--dport", str(port), "-j", "REJECT", "--reject-with", "tcp-reset"]
    remote.inside("iptables", "-I", *rule)
    try:
        proj = tmp_path / "proj"
        proj.mkdir()
        made = mux("--context", "box", "new", "--egress", egress, "--copy", "--workdir", str(proj), unique_name,
                   env=proxied_remote)
    finally:
        remote.inside("iptables", "-D", *rule)
    lines = made.stderr.splitlines()
    assert made.returncode == 5 and len(lines) == 1, made.stderr
    assert "a container on the session's network" in lines[0] and "cannot reach the proxy" in lines[0], lines[0]
    assert "`GatewayPorts clientspecified`" in lines[0]
    assert_nothing_left(remote, own_instance, unique_name, port)


def test_doctor_names_a_tunnel_its_sshd_bound_to_loopback(proxied_remote, remote, default_sshd,
                                                          own_instance: str) -> None:
    """A tunnel made that way by hand (as an older mux did): doctor fails on it."""
    assert mux("proxy", "start", env=proxied_remote).returncode == 0
    port = proxy_port()
    sock, state, _ = _files(Engine(default_sshd.context, default_sshd.host, "test"))
    state.parent.mkdir(parents=True, exist_ok=True)
    ip, ssh_port = default_sshd.host.split("@")[1].split(":")
    target = ["-l", "root", "-p", ssh_port, "--", ip]
    route = remote.docker("run", "--rm", "--label", f"mux.instance={own_instance}", BUSYBOX, "ip", "route").stdout
    gateway = route.split("default via ", 1)[1].split()[0]  # the engine's bridge gateway
    env = {**os.environ, **default_sshd.env}
    master = subprocess.Popen(["ssh", "-N", "-M", "-S", str(sock), "-o", "ControlPersist=no", *target], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if subprocess.run(["ssh", "-S", str(sock), "-O", "check", *target], env=env,
                              capture_output=True).returncode == 0:
                break
            threading.Event().wait(0.1)
        forward = f"{gateway}:{port}:127.0.0.1:{port}"
        subprocess.run(["ssh", "-S", str(sock), "-O", "forward", "-R", forward, *target], env=env, check=True,
                       capture_output=True)
        state.write_text(json.dumps({"host": default_sshd.host, "context": default_sshd.context,
                                     "forwards": [forward]}))
        out = mux("doctor", "--context", default_sshd.context, "--json", env=proxied_remote)
        tunnel = next(c for c in json.loads(out.stdout)["checks"] if c["name"] == "tunnel")
        assert out.returncode == 1 and tunnel["ok"] is False, out.stdout
        assert "bound the tunnel's forward to its own loopback" in tunnel["detail"]
        assert GATEWAY_LINE in tunnel["detail"] and tunnel["fix"].startswith("set `GatewayPorts clientspecified`")
        # mux proxy stop ends it, like every tunnel of this data dir.
        assert mux("proxy", "stop", env=proxied_remote).returncode == 0
        master.wait(timeout=10)  # its master ended
        assert not state.exists()
    finally:
        if master.poll() is None:
            master.kill()
        master.wait()
    assert parse_listening(default_sshd.inside("cat", "/proc/net/tcp").stdout, port) == set()


class _Canary(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        body = b"canary: this machine's loopback\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def canary() -> Iterator[list[http.server.HTTPServer]]:
    servers: list[http.server.HTTPServer] = []
    yield servers
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("egress", ["open", "proxy-only"])
def test_the_tunnel_ends_with_the_proxy(proxied_remote, remote, api, unique_name, tmp_path, own_instance: str,
                                        canary, egress: str) -> None:
    proj = tmp_path / "proj"
    proj.mkdir()
    made = mux("--context", "box", "new", "--egress", egress, "--copy", "--workdir", str(proj), unique_name,
               env=proxied_remote)
    assert made.returncode == 0, made.stderr
    container = f"mux-{unique_name}"
    through = ["exec", container, "curl", "-sS", "--max-time", "20", f"{api.url}/v1/models"]
    assert remote.docker(*through, check=False).stdout == "upstream ok\n"
    port = proxy_port()
    stopped = mux("proxy", "stop", env=proxied_remote)
    assert stopped.returncode == 0 and stopped.stdout == "mux proxy stopped\n", stopped.stderr
    # Whatever listens on this machine's loopback at the proxy's port now (a web server
    # started after the stop) is out of reach of the remote engine: no forward is left.
    server = http.server.HTTPServer(("127.0.0.1", port), _Canary)
    canary.append(server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    assert b"canary" in subprocess.run(["curl", "-sS", f"http://127.0.0.1:{port}/"], capture_output=True).stdout
    plain = ["run", "--rm", "--label", f"mux.instance={own_instance}", "--add-host",
             "host.docker.internal:host-gateway", DEBIAN, "curl", "-sS", "--max-time", "5",
             f"http://host.docker.internal:{port}/"]
    reached = remote.docker(*plain, check=False)
    assert reached.returncode != 0 and "canary" not in reached.stdout, reached.stdout
    near = "host.docker.internal" if egress == "open" else f"mux-proxy-{port}"  # its way to the proxy
    from_session = remote.docker("exec", container, "curl", "-sS", "--max-time", "5", "--noproxy", "*",
                                 f"http://{near}:{port}/", check=False)
    assert "canary" not in from_session.stdout, from_session.stdout
    assert parse_listening(remote.inside("cat", "/proc/net/tcp").stdout, port) == set()  # no forward there
    server.shutdown()
    server.server_close()
    canary.clear()
    # The session's next mux command brings the proxy and its tunnel back, and it works again.
    again = mux("--context", "box", "exec", unique_name, "--", "true", env=proxied_remote)
    assert again.returncode == 0, again.stderr
    assert remote.docker(*through, check=False).stdout == "upstream ok\n"
    assert json.loads(mux("proxy", "status", "--json").stdout)["tunnels"][0]["up"] is True


def test_exec_that_revives_the_tunnel_checks_the_sessions_network(proxied_remote, remote, unique_name,
                                                                   tmp_path) -> None:
    """The tunnel gone (its ssh master ended) and that machine's firewall now in the
    way: the `mux exec` that makes the tunnel again checks from the session's own
    network namespace, exits 5 with the one line and runs nothing; once the firewall
    is gone, the next one works."""
    proj = tmp_path / "proj"
    proj.mkdir()
    assert mux("--context", "box", "new", "--copy", "--workdir", str(proj), unique_name,
               env=proxied_remote).returncode == 0
    port = proxy_port()
    sock, state, _ = _files(Engine("box", remote.host, "test"))
    ssh_port = remote.host.rsplit(":", 1)[1]
    subprocess.run(["ssh", "-S", str(sock), "-O", "exit", "-l", "root", "-p", ssh_port, "--", "127.0.0.1"],
                   env={**os.environ, **remote.env}, check=True, capture_output=True)
    rule = ["INPUT", "-p", "tcp", "--dport", str(port), "-j", "REJECT", "--reject-with", "tcp-reset"]
    remote.inside("iptables", "-I", *rule)
    try:
        cut = mux("--context", "box", "exec", unique_name, "--", "touch", "/tmp/ran", env=proxied_remote)
    finally:
        remote.inside("iptables", "-D", *rule)
    lines = cut.stderr.splitlines()
    assert cut.returncode == 5 and len(lines) == 1, cut.stderr
    assert "a container on the session's network" in lines[0] and "cannot reach the proxy" in lines[0]
    assert remote.docker("exec", f"mux-{unique_name}", "test", "-e", "/tmp/ran", check=False).returncode == 1
    subprocess.run(["ssh", "-S", str(sock), "-O", "exit", "-l", "root", "-p", ssh_port, "--", "127.0.0.1"],
                   env={**os.environ, **remote.env}, capture_output=True)
    again = mux("--context", "box", "exec", unique_name, "--", "true", env=proxied_remote)
    assert again.returncode == 0, again.stderr
