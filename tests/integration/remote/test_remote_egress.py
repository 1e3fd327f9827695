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
from tests.conftest import mux
from tests.integration.remote.conftest import (
    TOKEN,
    RemoteEngine,
    assert_nowhere_on,
    ca_key_line,
    connects,
    direct_targets,
)

pytestmark = pytest.mark.docker


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
    # Directly: nothing (each target answers a plain container on that engine's bridge).
    targets = direct_targets(remote, own_instance, gateway, api.url)
    proxy_port = targets["the tunnel's end on the engine's bridge gateway"][1]
    session = ["exec", container]
    for what, (host, port) in targets.items():
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
