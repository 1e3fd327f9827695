"""A proxied session on another machine's engine: it reaches this machine's proxy
through the ssh tunnel mux manages, gets the credential injected, and no
credential or CA key is ever on the remote."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from mux.egress.wiring import registry_key
from tests.conftest import BUSYBOX, mux, session_dir
from tests.integration.remote.conftest import TOKEN, assert_nowhere_on, ca_key_line

pytestmark = pytest.mark.docker


def test_remote_session_uses_the_proxy_here_and_no_secret_is_there(proxied_remote, remote, api, unique_name,
                                                                   tmp_path, own_instance: str) -> None:
    proj = tmp_path / "proj"
    proj.mkdir()
    made = mux("-v", "--context", "box", "new", "--copy", "--workdir", str(proj), unique_name, env=proxied_remote)
    assert made.returncode == 0, made.stderr
    assert "ssh -S" in made.stderr  # the tunnel's commands are printed like every other
    doctor = json.loads(mux("doctor", "--context", "box", "--json").stdout)["checks"]
    found = {c["name"]: c for c in doctor}
    assert found["tunnel"]["ok"] and found["tunnel"]["detail"].startswith("up")
    assert found["reach"]["ok"], found["reach"]  # one short-lived container there got an answer from the proxy
    out = remote.docker("exec", f"mux-{unique_name}", "curl", "-sS", "--max-time", "30", f"{api.url}/v1/models",
                        check=False)
    assert out.stdout == "upstream ok\n", out.stderr
    assert api.requests[-1][2]["Authorization"] == f"Bearer {TOKEN}"
    # The credential and the CA's key are on this machine only: not in the session,
    # not anywhere on the remote machine's filesystem (its engine's data included).
    data = Path(os.environ["MUX_DATA_DIR"])
    key_line = ca_key_line()
    assert_nowhere_on(remote, TOKEN, key_line)
    # The same search does find what must be there: the session's own proxy secret.
    secret = (session_dir(unique_name) / "proxy.env").read_text().split(":")[2].split("@")[0]
    assert remote.inside("grep", "-rlsF", "--exclude-dir=proc", "--exclude-dir=sys", "--exclude-dir=dev", "-e",
                         secret, "/var/lib/docker/containers", check=False).stdout != ""
    assert TOKEN not in remote.docker("inspect", f"mux-{unique_name}").stdout
    # `mux proxy status` shows the tunnel: its engine, where it listens there, up, its session.
    status = mux("-v", "proxy", "status", "--json")
    tunnels = json.loads(status.stdout)["tunnels"]
    route = remote.docker("run", "--rm", "--label", f"mux.instance={own_instance}", BUSYBOX, "ip", "route").stdout
    gateway_there = route.split("default via ", 1)[1].split()[0]  # the engine's bridge gateway, as a container sees it
    port = json.loads(status.stdout)["port"]
    assert tunnels == [{"context": "box", "host": remote.host, "listen": [f"{gateway_there}:{port}"], "up": True,
                        "sessions": [unique_name]}]
    line = next(ln for ln in mux("proxy", "status").stdout.splitlines() if ln.startswith("tunnel: "))
    assert line == (f"tunnel: context 'box' ({remote.host}): up, listening there on {gateway_there}:{port}; "
                    f"sessions: {unique_name}")
    # Its ssh master gone (ended through the control socket that -v showed): down...
    check = next(ln for ln in status.stderr.splitlines() if ln.startswith("+ ssh -S ") and " -O check " in ln)
    ended = subprocess.run(check[2:].replace(" -O check ", " -O exit ").split(), capture_output=True, text=True)
    assert ended.returncode == 0, ended.stderr
    assert json.loads(mux("proxy", "status", "--json").stdout)["tunnels"][0]["up"] is False
    assert ": down, listening there on " in mux("proxy", "status").stdout
    # doctor fails on it while the session runs (it has lost its way to the proxy), and
    # its fix, the session's next mux command, brings it up again.
    down = mux("doctor", "--context", "box", "--json")
    tunnel = next(c for c in json.loads(down.stdout)["checks"] if c["name"] == "tunnel")
    assert down.returncode == 1 and tunnel == {
        "name": "tunnel", "ok": False,
        "detail": f"not up, while proxied session {unique_name} runs there: no way to the proxy (and its credentials)",
        "fix": f"`mux --context box exec {unique_name} -- true` brings it up"}, down.stdout
    # --dry-run prints the tunnel's two ssh steps that exec would take, and takes neither.
    dry = mux("--context", "box", "exec", "--dry-run", unique_name, "--", "true", env=proxied_remote)
    steps = [ln for ln in dry.stdout.splitlines() if ln.startswith("ssh ")]
    assert dry.returncode == 0 and len(steps) == 2, dry.stdout
    assert steps[0].startswith("ssh -N -M -S ") and " -O forward -R " in steps[1], dry.stdout
    assert json.loads(mux("proxy", "status", "--json").stdout)["tunnels"][0]["up"] is False
    assert mux("--context", "box", "exec", unique_name, "--", "true", env=proxied_remote).returncode == 0
    assert json.loads(mux("proxy", "status", "--json").stdout)["tunnels"][0]["up"] is True
    up = json.loads(mux("doctor", "--context", "box", "--json").stdout)["checks"]
    assert next(c for c in up if c["name"] == "tunnel")["ok"] is True
    # Stopped and started again, the session still gets through (the tunnel is brought up).
    assert mux("--context", "box", "stop", unique_name).returncode == 0
    assert mux("--context", "box", "start", unique_name, env=proxied_remote).returncode == 0
    again = remote.docker("exec", f"mux-{unique_name}", "curl", "-sS", "--max-time", "30", f"{api.url}/v1/models",
                          check=False)
    assert again.stdout == "upstream ok\n", again.stderr
    registry = data / "proxy" / "sessions.json"
    assert registry_key(unique_name) in json.loads(registry.read_text())["sessions"]
    assert mux("--context", "box", "delete", "--force", unique_name).returncode == 0
    assert registry_key(unique_name) not in json.loads(registry.read_text())["sessions"]  # its secret opens nothing
    assert not list((data / "tunnels").glob("*.json"))  # the last remote session took the tunnel with it
    assert json.loads(mux("proxy", "status", "--json").stdout)["tunnels"] == []


def test_the_tunnel_stays_while_another_instance_uses_it(proxied_remote, remote, api, unique_name, tmp_path,
                                                         own_instance: str) -> None:
    """Instances of one data dir share its tunnels: one instance deleting its last
    session must not cut another's running session off the proxy."""
    proj = tmp_path / "proj"
    proj.mkdir()
    other, theirs = {**proxied_remote, "MUX_INSTANCE": f"{own_instance}-o"}, f"{unique_name}o"
    data = Path(os.environ["MUX_DATA_DIR"])
    try:
        for name, env in ((unique_name, proxied_remote), (theirs, other)):
            made = mux("--context", "box", "new", "--copy", "--workdir", str(proj), name, env=env)
            assert made.returncode == 0, made.stderr
        assert mux("--context", "box", "delete", "--force", unique_name, env=proxied_remote).returncode == 0
        assert list((data / "tunnels").glob("*.json"))  # the other instance's session still needs it
        out = remote.docker("exec", f"mux-{theirs}", "curl", "-sS", "--max-time", "30", f"{api.url}/v1/models",
                            check=False)
        assert out.stdout == "upstream ok\n", out.stderr
    finally:
        mux("--context", "box", "delete", "--force", theirs, env=other)
    assert not list((data / "tunnels").glob("*.json"))  # its last session, of any instance, took it along
