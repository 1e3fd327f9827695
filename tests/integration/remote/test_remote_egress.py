"""proxy-only egress on another machine's engine: the session's only way out is
the relay there, which forwards to mux's ssh tunnel and so to the proxy here.
Everything else (that engine's host, its other containers, this machine) is out
of reach, and no credential or CA key is on the remote."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mux.proxy import egress
from tests.conftest import BUSYBOX, DEBIAN, mux
from tests.integration.remote.conftest import TOKEN, RemoteEngine, assert_nowhere_on, ca_key_line

pytestmark = pytest.mark.docker


def connects(remote: RemoteEngine, prefix: list[str], host: str, port: int) -> bool:
    """Whether a TCP connection opens from a container on the remote engine
    (``prefix``: the docker exec/run arguments that get into it)."""
    probe = ["timeout", "5", "bash", "-c", 'exec 3<>"/dev/tcp/$0/$1"', host, str(port)]
    return remote.docker(*prefix, *probe, check=False).returncode == 0


def test_proxy_only_remote_session_reaches_the_proxy_and_nothing_else(proxied_remote, remote: RemoteEngine, api,
                                                                      gateway: str, unique_name: str,
                                                                      own_instance: str, tmp_path: Path) -> None:
    proj = tmp_path / "proj"
    proj.mkdir()
    made = mux("-v", "--context", "box", "new", "--copy", "--workdir", str(proj), "--egress", "proxy-only",
               unique_name, env=proxied_remote)
    assert made.returncode == 0, made.stderr
    assert f"docker --context box network create --internal -o {egress.INHIBIT}=true" in made.stderr
    container = f"mux-{unique_name}"
    network = egress.network_name()
    networks = json.loads(remote.docker("inspect", "--format", "{{json .NetworkSettings.Networks}}",
                                        container).stdout)
    assert list(networks) == [network]
    # Through the proxy (relay there -> tunnel -> proxy here): the credential injected.
    via = remote.docker("exec", container, "curl", "-sS", "--max-time", "30", f"{api.url}/v1/models", check=False)
    assert via.stdout == "upstream ok\n", via.stderr
    assert api.requests[-1][2]["Authorization"] == f"Bearer {TOKEN}"
    # Directly: nothing. Each target answers a plain container on that engine's bridge
    # (so each refusal below is the egress network's doing, not a dead target).
    listener = remote.docker("run", "-d", "--label", f"mux.instance={own_instance}", BUSYBOX,
                             "httpd", "-f", "-p", "8000", "-h", "/").stdout.strip()
    listener_ip = remote.docker("inspect", "--format", "{{.NetworkSettings.IPAddress}}", listener).stdout.strip()
    state = next((Path(os.environ["MUX_DATA_DIR"]) / "tunnels").glob("*.json"))
    bridge_gw, tunnel_port = json.loads(state.read_text())["forwards"][0].split(":")[:2]  # where it listens there
    remote_host = remote.inside("hostname", "-i").stdout.split()[0]  # the remote machine's own address
    proxy_port = int(tunnel_port)
    api_port = int(api.url.rsplit(":", 1)[1].split("/")[0])
    targets = {
        "a container there": (listener_ip, 8000),
        "the tunnel's end on the engine's bridge gateway": (bridge_gw, proxy_port),
        "the remote machine's sshd": (remote_host, 22),
        "this machine's service": (gateway, api_port),
    }
    plain = ["run", "--rm", "--label", f"mux.instance={own_instance}", DEBIAN]
    session = ["exec", container]
    for what, (host, port) in targets.items():
        assert connects(remote, plain, host, port), f"{what} ({host}:{port}) should answer a container on the bridge"
        assert not connects(remote, session, host, port), f"the proxy-only session reached {what} ({host}:{port})"
    # The relay's alias, on any other port, is nothing either.
    assert not connects(remote, session, egress.alias(proxy_port), 22)
    # No credential and no CA key on the remote, with the relay and egress network there too.
    assert_nowhere_on(remote, TOKEN, ca_key_line())
    assert TOKEN not in remote.docker("inspect", egress.relay_name(proxy_port)).stdout
    # The relay stopped by hand: the next mux command of the session starts it again.
    remote.docker("stop", egress.relay_name(proxy_port))
    assert mux("--context", "box", "exec", unique_name, "--", "true", env=proxied_remote).returncode == 0
    again = remote.docker("exec", container, "curl", "-sS", "--max-time", "30", f"{api.url}/again", check=False)
    assert again.stdout == "upstream ok\n", again.stderr
    # Deleting the last proxy-only session there removes what mux made there, and the tunnel.
    assert mux("--context", "box", "delete", "--force", unique_name).returncode == 0
    assert remote.docker("network", "inspect", network, check=False).returncode != 0
    assert remote.docker("container", "inspect", egress.relay_name(proxy_port), check=False).returncode != 0
    assert not list((Path(os.environ["MUX_DATA_DIR"]) / "tunnels").glob("*.json"))
