"""mux on real rootless Podman (tests/integration/podman/conftest.py): a session's whole
life cycle, files in /workspace owned by the user (keep-id), and the printed lines of
`--dry-run`, pasted, making the same session."""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from mux.egress import netinfo
from tests.integration.podman.conftest import PodmanUser
from tests.integration.proxy.harness import free_port
from tests.integration.proxy.servers import EchoUpstream, Pki, make_pki

pytestmark = pytest.mark.docker
TOKEN = "tok-podman-7c1e-injected"


def sessions(who: PodmanUser) -> dict[str, dict[str, object]]:
    listed = who.mux("list", "--json")
    assert listed.returncode == 0, listed.stderr
    return {row["name"]: row for row in json.loads(listed.stdout)}


def leftovers(who: PodmanUser) -> list[str]:
    label = f"label=mux.instance={who.env['MUX_INSTANCE']}"
    found = [*who.podman("ps", "-aq", "--filter", label).stdout.split(),
             *who.podman("volume", "ls", "-q", "--filter", label).stdout.split(),
             *who.podman("network", "ls", "-q", "--filter", label).stdout.split()]
    return found


def test_life_cycle(podman: PodmanUser) -> None:
    work = podman.base / "work"
    (work / "seen.txt").write_text("from the host\n")
    made = podman.mux("new", "s1", cwd=work)
    assert made.returncode == 0, made.stderr
    assert "Created session s1" in made.stdout
    assert sessions(podman)["s1"]["status"] == "running"
    cli = podman.podman("ps", "-a", "--filter", f"label=mux.instance={podman.env['MUX_INSTANCE']}",
                        "--format", '{{index .Labels "mux.backend"}}')
    assert cli.stdout.split() == ["podman"]

    # keep-id: the session's user is the user, and what it writes is the user's on the host.
    ran = podman.mux("exec", "s1", "sh", "-c", "id -u; cat /workspace/seen.txt; echo made > /workspace/out.txt")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines() == [str(podman.uid), "from the host"]
    assert (work / "out.txt").read_text() == "made\n"
    assert (work / "out.txt").stat().st_uid == podman.uid
    assert (work / "out.txt").stat().st_gid == podman.gid

    stopped = podman.mux("stop", "s1")
    assert stopped.returncode == 0, stopped.stderr
    assert sessions(podman)["s1"]["status"] == "stopped"
    started = podman.mux("start", "s1")
    assert started.returncode == 0, started.stderr
    assert sessions(podman)["s1"]["status"] == "running"
    logs = podman.mux("logs", "s1")
    assert logs.returncode == 0, logs.stderr
    assert "/bin/bash is not in this image, using /bin/sh" in logs.stdout + logs.stderr

    assert podman.mux("stop", "s1").returncode == 0
    deleted = podman.mux("delete", "s1")
    assert deleted.returncode == 0, deleted.stderr
    assert "s1" not in sessions(podman)
    assert leftovers(podman) == []
    assert not (podman.base / "data" / "instances").exists() or not any(
        (podman.base / "data").glob("instances/*/sessions/s1"))
    assert (work / "out.txt").exists()  # the user's files stay


def test_not_found_is_exit_3(podman: PodmanUser) -> None:
    gone = podman.mux("exec", "nope", "true")
    assert gone.returncode == 3, gone.stderr
    assert gone.stderr.startswith("mux: error: ")


def test_dry_run_lines_pasted_make_the_session(podman: PodmanUser) -> None:
    work = podman.base / "work"
    printed = podman.mux("new", "s2", "--dry-run", "--memory", "64m", cwd=work)
    assert printed.returncode == 0, printed.stderr
    lines = printed.stdout.splitlines()
    assert lines[-1].startswith("podman run ") and "--userns=keep-id" in lines[-1]
    assert "--memory" not in lines[-1]  # ignored rootless on cgroup v1: dropped, and said once
    assert printed.stderr.count("podman ignores --memory and --cpus") == 1
    assert leftovers(podman) == [] and "s2" not in sessions(podman)
    for line in lines:
        done = podman.run("sh", "-c", line, cwd=work)
        assert done.returncode == 0, (line, done.stderr)
    assert sessions(podman)["s2"]["status"] == "running"
    ran = podman.mux("exec", "s2", "sh", "-c", "id -u")
    assert ran.stdout.strip() == str(podman.uid), ran.stderr
    deleted = podman.mux("delete", "--force", "s2")
    assert deleted.returncode == 0, deleted.stderr
    assert leftovers(podman) == []


def test_name_in_use_by_another_container(podman: PodmanUser) -> None:
    squatter = podman.podman("create", "--name", "mux-s3", "--label", f"mux.instance={podman.env['MUX_INSTANCE']}",
                             "mux-test/busybox")
    assert squatter.returncode == 0, squatter.stderr
    made = podman.mux("new", "s3", cwd=podman.base / "work")
    assert made.returncode == 1
    assert made.stderr.splitlines()[0] == "mux: error: container mux-s3 already exists but is not a mux session " \
        "of this instance", made.stderr
    assert shlex.split(podman.podman("ps", "-aq", "--filter", "name=mux-s3").stdout) != []


def doctor(who: PodmanUser, env: dict[str, str] | None = None) -> dict[str, dict[str, object]]:
    ran = who.mux("doctor", "--json", env=env)
    return {c["name"]: c for c in json.loads(ran.stdout)["checks"]}


def test_doctor_names_the_podman_set_up(podman: PodmanUser) -> None:
    checks = doctor(podman)
    for name in ("podman CLI", "engine", "subids", "runtime dir", "tun", "init", "storage", "cgroups", "image"):
        assert checks[name]["ok"], checks[name]
    assert "socket" not in checks  # podman needs no service socket
    assert checks["storage"]["detail"].startswith("vfs")
    assert checks["init"]["detail"].startswith("catatonit")


def test_doctor_names_each_gap_with_its_fix(podman: PodmanUser) -> None:
    from tests.integration.podman.conftest import grant_tun, revoke_tun

    revoke_tun(podman.uid)
    try:
        checks = doctor(podman, env={"XDG_RUNTIME_DIR": str(podman.base / "missing")})
        made = podman.mux("new", "s4", cwd=podman.base / "work")
    finally:
        grant_tun(podman.uid)
    assert not checks["tun"]["ok"] and "setfacl -m u:$USER:rw /dev/net/tun" in checks["tun"]["fix"]
    assert not checks["runtime dir"]["ok"] and "XDG_RUNTIME_DIR" in checks["runtime dir"]["fix"]
    # and `mux new` itself points there, leaving nothing behind
    assert made.returncode == 4
    assert "mux: hint: rootless podman needs some set-up on this machine: `mux doctor`" in made.stderr
    assert leftovers(podman) == []


@pytest.fixture
def upstream(podman: PodmanUser) -> Iterator[EchoUpstream]:
    """An HTTPS upstream on this machine (the Docker bridge's address; any host address would do)."""
    gateway = netinfo.bridge_gateway()
    assert gateway, "no Docker bridge gateway address here"
    pki: Pki = make_pki(podman.base / "pki", [gateway])
    with EchoUpstream(gateway, pki) as server:
        yield server


def test_proxied_session_reaches_the_proxy_through_slirp4netns(
        podman: PodmanUser, podman_debian: str, upstream: EchoUpstream) -> None:
    port = free_port()
    Path(podman.env["MUX_CONFIG"]).write_text(
        f'[docker]\nimage = "{podman_debian}"\npull = "never"\n'
        '[git]\nuser_name = "Podman Agent"\nuser_email = "pm@example.com"\n'
        f'[proxy]\nport = {port}\ntimeout = 30\n'
        f'[proxy.filters]\nallowed_networks = ["{upstream.host}/32"]\n'
        f'[credentials.api]\ndomains = ["{upstream.host}"]\nauth_type = "bearer"\nvalue = "${{API_TOKEN}}"\n')
    who = replace(podman, env={**podman.env, "API_TOKEN": TOKEN, "MUX_PROXY_UPSTREAM_CA": str(upstream.pki.ca)})
    made = who.mux("-v", "new", "--proxy", "pm-proxied", cwd=who.base / "work")
    assert made.returncode == 0, made.stderr
    assert "--network slirp4netns:allow_host_loopback=true --add-host host.docker.internal:10.0.2.2" in made.stderr
    url = f"{upstream.url}/v1/models"
    out = who.mux("exec", "pm-proxied", "--", "curl", "-sS", "--max-time", "30", url)
    assert out.stdout == "upstream ok\n", out.stderr + made.stderr
    assert upstream.requests[-1][2]["Authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in who.podman("inspect", "mux-pm-proxied").stdout
    assert who.mux("delete", "--force", "pm-proxied").returncode == 0
    assert leftovers(who) == []


def test_proxy_only_session_goes_out_through_the_relay_alone(
        podman: PodmanUser, podman_debian: str, upstream: EchoUpstream) -> None:
    port = free_port()
    Path(podman.env["MUX_CONFIG"]).write_text(
        f'[docker]\nimage = "{podman_debian}"\npull = "never"\n'
        '[git]\nuser_name = "Podman Agent"\nuser_email = "pm@example.com"\n'
        f'[proxy]\nport = {port}\ntimeout = 30\n'
        f'[proxy.filters]\nallowed_networks = ["{upstream.host}/32"]\n'
        f'[credentials.api]\ndomains = ["{upstream.host}"]\nauth_type = "bearer"\nvalue = "${{API_TOKEN}}"\n')
    who = replace(podman, env={**podman.env, "API_TOKEN": TOKEN, "MUX_PROXY_UPSTREAM_CA": str(upstream.pki.ca)})
    made = who.mux("-v", "new", "--egress", "proxy-only", "pm-only", cwd=who.base / "work")
    assert made.returncode == 0, made.stderr
    url = f"{upstream.url}/v1/models"
    out = who.mux("exec", "pm-only", "--", "curl", "-sS", "--max-time", "30", url)
    assert out.stdout == "upstream ok\n", out.stderr + made.stderr
    assert upstream.requests[-1][2]["Authorization"] == f"Bearer {TOKEN}"
    # No host address answers from the session: not the upstream's, not the proxy's own port.
    for target in (url, f"http://{upstream.host}:{port}/", f"http://10.0.2.2:{port}/"):
        direct = who.mux("exec", "pm-only", "--", "curl", "-sS", "-o", "/dev/null", "--max-time", "5",
                         "--noproxy", "*", target)
        assert direct.returncode != 0, target
    assert len(upstream.requests) == 1
    assert who.mux("delete", "--force", "pm-only").returncode == 0
    assert leftovers(who) == []  # the relay and the network went with the last proxy-only session


def test_published_port_and_forward(podman: PodmanUser) -> None:
    import subprocess
    import urllib.request

    work = podman.base / "work"
    (work / "index.html").write_text("hello from the session\n")
    made = podman.mux("new", "pm-web", "-p", "8000", "--", "httpd", "-f", "-p", "8000", "-h", "/workspace",
                      cwd=work)
    assert made.returncode == 0, made.stderr
    listed = json.loads(podman.mux("port", "pm-web", "--json").stdout)
    assert [(p["kind"], p["container_port"], p["host_ip"]) for p in listed] == [("published", 8000, "127.0.0.1")]
    with urllib.request.urlopen(f"http://127.0.0.1:{listed[0]['host_port']}/index.html", timeout=10) as r:
        assert r.read() == b"hello from the session\n"
    # Rootless, the port is a socket of podman's rootlessport on 127.0.0.1, not a DNAT rule
    # (what lets a neighbour reach docker's "loopback" ports, mux/egress/loopback.py): no guard needed.
    nat = subprocess.run(["iptables", "-t", "nat", "-S"], capture_output=True, text=True).stdout
    assert f"--dport {listed[0]['host_port']}" not in nat
    fwd = subprocess.Popen([sys.executable, "-m", "mux", "forward", "pm-web", "0:8000"], env=podman.env,
                           cwd=podman.base, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           user=podman.uid, group=podman.gid, extra_groups=[])
    try:
        assert fwd.stdout is not None
        first = fwd.stdout.readline()
        local = int(first.split(" -> ")[0].rsplit(":", 1)[1])
        with urllib.request.urlopen(f"http://127.0.0.1:{local}/index.html", timeout=10) as r:
            assert r.read() == b"hello from the session\n"
    finally:
        fwd.terminate()
        fwd.wait(timeout=20)
    assert podman.mux("delete", "--force", "pm-web").returncode == 0
    assert leftovers(podman) == []


def test_repo_session_clones_and_commits_as_the_user(podman: PodmanUser) -> None:
    setup = ("git init -q -b main seed && cd seed && echo hello > README && git add README && "
             "git -c user.name=T -c user.email=t@example.com commit -qm first && cd .. && "
             "git clone -q --bare seed remote.git")
    assert podman.run("sh", "-c", setup).returncode == 0
    made = podman.mux("new", "--repo", str(podman.base / "remote.git"), "--branch", "agent/fix", "pm-repo")
    assert made.returncode == 0, made.stderr
    script = "echo change > agent.txt && echo ok"
    out = podman.mux("exec", "pm-repo", "--", "sh", "-c", script)
    assert out.stdout == "ok\n", out.stderr
    clone = next((podman.base / "data").glob("instances/*/sessions/pm-repo/repo"))
    assert (clone / "README").read_text() == "hello\n"
    assert (clone / "agent.txt").stat().st_uid == podman.uid  # keep-id: the agent's files are the user's
    assert podman.mux("delete", "--force", "pm-repo").returncode == 0
    assert not clone.exists() and leftovers(podman) == []


def test_attach_hands_over_the_terminal_and_detaches(podman: PodmanUser) -> None:
    """Attach starts the stopped session, carries the terminal both ways, and Ctrl-P
    Ctrl-Q detaches even written in one write (podman 4.3 alone needs a read per key:
    mux/engine/podman_tty.py); the session runs on."""
    import os
    import subprocess

    from tests.integration.test_attach import read_until

    assert podman.mux("new", "pm-tty", cwd=podman.base / "work").returncode == 0
    assert podman.mux("stop", "pm-tty").returncode == 0
    primary, secondary = os.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "mux", "attach", "pm-tty"], env=podman.env, cwd=podman.base,
                            stdin=secondary, stdout=secondary, stderr=secondary, start_new_session=True,
                            user=podman.uid, group=podman.gid, extra_groups=[])
    os.close(secondary)
    try:
        assert b"detach with Ctrl-P Ctrl-Q" in read_until(primary, b"Ctrl-Q")
        os.write(primary, b"echo answer-$((40+2))\r")
        assert b"answer-42" in read_until(primary, b"answer-42")
        os.write(primary, b"\x10\x11")
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        os.close(primary)
    assert sessions(podman)["pm-tty"]["status"] == "running"
    assert podman.mux("delete", "--force", "pm-tty").returncode == 0
    assert leftovers(podman) == []


def test_detach_in_tmux(podman: PodmanUser) -> None:
    """The same in a real terminal: tmux sends Ctrl-P Ctrl-Q in one write (``send-keys C-p
    C-q``); the pane's size reaches the session and follows a resize."""
    import shlex
    import subprocess
    import time

    assert podman.mux("new", "pm-tmux", cwd=podman.base / "work").returncode == 0
    socket = f"mux-{podman.env['MUX_INSTANCE']}"
    env = " ".join(shlex.quote(f"{k}={v}") for k, v in podman.env.items())
    line = (f"setpriv --reuid={podman.uid} --regid={podman.gid} --clear-groups env -i {env} "
            f"{shlex.quote(sys.executable)} -m mux attach pm-tmux; echo EXITED=$?; sleep 60")

    def tmux(*args: str) -> str:
        return subprocess.run(["tmux", "-L", socket, "-f", "/dev/null", *args], capture_output=True,
                              text=True, timeout=30).stdout

    def screen_has(text: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            shown = tmux("capture-pane", "-p", "-t", "pm")
            if text in shown:
                return shown
            time.sleep(0.2)
        raise AssertionError(f"{text!r} not on the screen:\n{shown}")

    tmux("new-session", "-d", "-x", "100", "-y", "30", "-s", "pm", f"bash --norc -c {shlex.quote(line)}")
    try:
        screen_has("detach with Ctrl-P Ctrl-Q")
        time.sleep(1)
        tmux("send-keys", "-t", "pm", "stty size; echo sum-$((2+3))", "Enter")
        screen_has("30 100")
        screen_has("sum-5")
        tmux("resize-window", "-t", "pm", "-x", "90", "-y", "25")
        tmux("send-keys", "-t", "pm", "clear; stty size", "Enter")
        screen_has("25 90")
        tmux("send-keys", "-t", "pm", "C-p", "C-q")
        screen_has("EXITED=0")
    finally:
        tmux("kill-server")
    assert sessions(podman)["pm-tmux"]["status"] == "running"
    assert podman.mux("delete", "--force", "pm-tmux").returncode == 0
    assert leftovers(podman) == []


def test_messages_name_podman_commands(podman: PodmanUser) -> None:
    """On a podman engine the error and its hint suggest podman's commands, not docker's."""
    network = f"mux-egress-{podman.env['MUX_INSTANCE']}"
    assert podman.podman("network", "create", "--label", f"mux.instance={podman.env['MUX_INSTANCE']}",
                         network).returncode == 0
    made = podman.mux("new", "--egress", "proxy-only", "pm-msg", cwd=podman.base / "work")
    assert made.returncode == 4, made.stderr
    assert made.stderr.splitlines()[:2] == [
        f"mux: error: a podman network named {network} exists but mux did not make it as its proxy-only network",
        f"mux: hint: remove or rename it (`podman network rm {network}`)"], made.stderr
    assert "docker" not in made.stderr.lower()
    assert leftovers(podman) == [network]
