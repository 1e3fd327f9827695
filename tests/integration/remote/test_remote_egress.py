"""proxy-only egress on another machine's engine: the session's only way out is
the relay there, which forwards to mux's ssh tunnel and so to the proxy here.
Everything else (that engine's host, its other containers, this machine) is out
of reach, and no credential or CA key is on the remote."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest

from mux.egress import relay as egress
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
TUNNEL_END = "the tunnel's end on the engine's bridge gateway"


def relay_check(env: dict[str, str]) -> dict[str, object]:
    """doctor's relay check, as --json has it (doctor exits 0 exactly when it passes:
    every other check does here)."""
    out = mux("doctor", "--context", "box", "--json", env=env)
    check = next(c for c in json.loads(out.stdout)["checks"] if c["name"] == "relay")
    assert out.returncode == (0 if check["ok"] else 1), out.stdout
    return check


def follow_the_fix(env: dict[str, str], problem: str) -> list[str]:
    """doctor fails on ``problem`` (exit 1, the line and its fix in the text; the same
    in --json); run the command its fix names, exactly; then the check passes.
    Returns that command."""
    out = mux("doctor", "--context", "box", env=env)
    assert out.returncode == 1, out.stdout
    lines = out.stdout.splitlines()
    failed = next(i for i, ln in enumerate(lines) if ln.split()[:2] == ["FAIL", "relay"])
    assert lines[failed].split(None, 2)[2] == problem, out.stdout
    fix = lines[failed + 1].strip()
    check = relay_check(env)
    assert (check["ok"], check["detail"], f"fix: {check['fix']}") == (False, problem, fix)
    command = shlex.split(fix.split("`")[1])
    assert command[0] == "mux"
    done = mux(*command[1:], env=env)
    assert done.returncode == 0, done.stderr
    assert relay_check(env)["ok"] is True
    return command


def tunnel_socket() -> str:
    """The control socket of this data dir's one tunnel (as `mux -v proxy status` runs `ssh -S`)."""
    status = mux("-v", "proxy", "status").stderr
    line = next(ln for ln in status.splitlines() if ln.startswith("+ ssh -S ") and " -O check " in ln)
    return line.split()[3]


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
    proxy_port = targets[TUNNEL_END][1]
    session = ["exec", container]
    for what, (host, port) in targets.items():
        assert not connects(remote, session, host, port), f"the proxy-only session reached {what} ({host}:{port})"
    # The relay's alias, on any other port, is nothing either.
    assert not connects(remote, session, egress.alias(proxy_port), 22)
    # No credential and no CA key on the remote, with the relay and egress network there too.
    assert_nowhere_on(remote, TOKEN, ca_key_line())
    assert TOKEN not in remote.docker("inspect", egress.relay_name(proxy_port)).stdout
    # doctor checks the relay: it runs, to the tunnel's end there.
    relay = egress.relay_name(proxy_port)
    assert relay_check(proxied_remote) == {
        "name": "relay", "ok": True, "fix": "",
        "detail": f"{relay} runs, to the tunnel at {targets[TUNNEL_END][0]}:{proxy_port} (of {unique_name})"}
    # The relay stopped by hand: doctor fails naming it, and its fix (the next mux
    # command of the session) starts it again.
    remote.docker("stop", relay)
    fixed = follow_the_fix(proxied_remote, f"{relay} (of {unique_name}) is stopped: the session cannot reach the proxy")
    assert fixed == ["mux", "--context", "box", "exec", unique_name, "--", "true"]
    again = remote.docker("exec", container, "curl", "-sS", "--max-time", "30", f"{api.url}/again", check=False)
    assert again.stdout == "upstream ok\n", again.stderr
    # The tunnel down (its ssh master ended): the relay runs, but to nothing; the same fix.
    ended = subprocess.run(["ssh", "-S", tunnel_socket(), "-O", "exit", "--", "127.0.0.1"], capture_output=True,
                           text=True)
    assert ended.returncode == 0, ended.stderr
    fixed = follow_the_fix(proxied_remote, f"{relay} (of {unique_name}) forwards to "
                           f"{targets[TUNNEL_END][0]}:{proxy_port}, where no tunnel to the proxy is up")
    assert fixed == ["mux", "--context", "box", "exec", unique_name, "--", "true"]
    # The relay removed by hand: gone; the same fix makes it again, and the session gets through.
    remote.docker("rm", "-f", relay)
    fixed = follow_the_fix(proxied_remote, f"{relay} (of {unique_name}) is gone: the session cannot reach the proxy")
    assert fixed == ["mux", "--context", "box", "exec", unique_name, "--", "true"]
    remade = remote.docker("exec", container, "curl", "-sS", "--max-time", "30", f"{api.url}/remade", check=False)
    assert remade.stdout == "upstream ok\n", remade.stderr
    assert api.requests[-1][2]["Authorization"] == f"Bearer {TOKEN}"
    for what, (host, port) in targets.items():  # and still nothing else
        assert not connects(remote, session, host, port), f"the proxy-only session reached {what} ({host}:{port})"
    # Deleting the last proxy-only session there removes what mux made there, and the tunnel.
    assert mux("--context", "box", "delete", "--force", unique_name).returncode == 0
    assert remote.docker("network", "inspect", network, check=False).returncode != 0
    assert remote.docker("container", "inspect", egress.relay_name(proxy_port), check=False).returncode != 0
    assert not list((Path(os.environ["MUX_DATA_DIR"]) / "tunnels").glob("*.json"))
