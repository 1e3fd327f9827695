"""Previews on another machine's engine (reached over ssh): `mux forward` needs
no port on that machine (nor a route to the session: it reaches a proxy-only
one too), and `-p` publishes on that machine's loopback."""

from __future__ import annotations

import concurrent.futures
import json
from pathlib import Path

import pytest

from mux.egress import loopback
from mux.egress import relay as egress
from tests.conftest import BUSYBOX, mux
from tests.integration.proxy.harness import free_port
from tests.integration.remote.conftest import RemoteEngine, connects, direct_targets
from tests.integration.test_ports import Forward, get, port_is_free

pytestmark = pytest.mark.docker


@pytest.fixture
def remote_session(remote_home: Path, remote: RemoteEngine, unique_name: str, tmp_path: Path) -> str:
    # What mux's refusal asks for on an engine before Docker 28 that it cannot reach the
    # iptables of: the guard, installed as root on the engine's machine, and the setting.
    if remote.inside(*loopback.CHECK, check=False).returncode != 0:
        remote.inside(*loopback.INSTALL)
    (remote_home / "config.toml").write_text(f'[docker]\nimage = "{BUSYBOX}"\npull = "never"\n'
                                             "loopback_guarded = true\n")
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "index.html").write_text("served on the other machine\n")
    made = mux("--context", "box", "new", "--copy", "--workdir", str(proj), "-p", "8080", unique_name)
    assert made.returncode == 0, made.stderr
    served = mux("--context", "box", "exec", unique_name, "--", "httpd", "-p", "127.0.0.1:8000", "-h", "/workspace")
    assert served.returncode == 0, served.stderr
    return unique_name


def test_a_remote_loopback_publish_without_the_setting_is_refused(remote_home: Path, remote: RemoteEngine,
                                                                  unique_name: str, tmp_path: Path) -> None:
    (remote_home / "config.toml").write_text(f'[docker]\nimage = "{BUSYBOX}"\npull = "never"\n')
    version = remote.docker("version", "--format", "{{.Server.Version}}").stdout.strip()
    work = tmp_path / "proj"  # tmp_path holds mux's data dir and config: never a workdir
    work.mkdir()
    made = mux("--context", "box", "new", "--copy", "--workdir", str(work), "-p", "8080", unique_name)
    if not loopback.before_fix(version):
        assert made.returncode == 0, made.stderr
        return
    assert made.returncode == 2
    assert made.stderr.startswith(f"mux: error: -p 127.0.0.1::8080: Docker {version} (before 28) lets other "
                                  "machines on the network reach ports published on 127.0.0.1, and mux cannot "
                                  "block that (the engine is on another machine)"), made.stderr
    assert len(made.stderr.splitlines()) == 1
    assert remote.docker("ps", "-aq", "--filter", f"name=mux-{unique_name}").stdout == ""


def test_forward_through_the_remote_engine(remote_session: str, remote: RemoteEngine) -> None:
    fwd = Forward(remote_session, ":8000", options=("--context", "box"))
    try:
        local = fwd.local_port(8000)
        url = f"http://127.0.0.1:{local}/index.html"
        with concurrent.futures.ThreadPoolExecutor(max_workers=10) as pool:
            bodies = list(pool.map(lambda _: get(url), range(40)))
        assert bodies == [b"served on the other machine\n"] * 40
        # The helper went over with docker cp: it is in the remote container, not a mount.
        listing = remote.docker("exec", f"mux-{remote_session}", "ls", "-a", "/").stdout.split()
        assert [f for f in listing if f.startswith(".mux-forward-")]
        code, _, err = fwd.ctrl_c()
        assert code == 0, err
        assert port_is_free(local)
    finally:
        fwd.kill()


def test_publish_binds_the_remote_machines_loopback(remote_session: str, remote: RemoteEngine) -> None:
    listed = json.loads(mux("--context", "box", "port", "--json", remote_session, check=True).stdout)
    assert [(p["kind"], p["container_port"], p["host_ip"]) for p in listed] == [("published", 8080, "127.0.0.1")]
    bindings = remote.docker("container", "inspect", "--format", "{{json .HostConfig.PortBindings}}",
                             f"mux-{remote_session}").stdout
    assert json.loads(bindings) == {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}


def test_forward_into_a_proxy_only_session(proxied_remote, remote: RemoteEngine, api, gateway: str,
                                           unique_name: str, own_instance: str, tmp_path: Path) -> None:
    """The forward is docker exec's stream, not a route: a session on the internal
    egress network serves this machine through it and still reaches only the proxy."""
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "index.html").write_text("served behind the egress wall\n")
    made = mux("--context", "box", "new", "--image", BUSYBOX, "--copy", "--workdir", str(proj),
               "--egress", "proxy-only", unique_name, env=proxied_remote)
    assert made.returncode == 0, made.stderr
    container = f"mux-{unique_name}"
    served = mux("--context", "box", "exec", unique_name, "--", "httpd", "-p", "127.0.0.1:8000", "-h", "/workspace")
    assert served.returncode == 0, served.stderr
    local = free_port()
    fwd = Forward(unique_name, f"{local}:8000", options=("--context", "box"))
    try:
        assert fwd.local_port(8000) == local
        assert get(f"http://127.0.0.1:{local}/index.html") == b"served behind the egress wall\n"
        # While it forwards: the session is on the egress network only, reaches the proxy
        # (through the relay's alias) and nothing else.
        networks = remote.docker("inspect", "--format", "{{json .NetworkSettings.Networks}}", container).stdout
        assert list(json.loads(networks)) == [egress.network_name()]
        targets = direct_targets(remote, own_instance, gateway, api.url)
        proxy_port = targets["the tunnel's end on the engine's bridge gateway"][1]
        session = ["exec", container]
        assert connects(remote, session, egress.alias(proxy_port), proxy_port)
        for what, (host, port) in targets.items():
            assert not connects(remote, session, host, port), f"the proxy-only session reached {what} ({host}:{port})"
        assert get(f"http://127.0.0.1:{local}/index.html") == b"served behind the egress wall\n"
        code, _, err = fwd.ctrl_c()
        assert code == 0, err
    finally:
        fwd.kill()
