"""mux on a real rootless Docker engine (tests/integration/rootless/conftest.py):
plain sessions with the workdir bind-mounted, the proxied-session refusal read
from the engine's real `docker info`, and a proxied session through
`[proxy] host_address` with a credential injected."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from mux.egress import netinfo
from tests.conftest import DEBIAN, session_dir
from tests.integration.proxy.harness import free_port
from tests.integration.proxy.servers import EchoUpstream, Pki, make_pki
from tests.integration.rootless.conftest import HOST_LOOPBACK, RootlessEngine

pytestmark = pytest.mark.docker
TOKEN = "tok-rootless-3f9a-injected"
IMAGE_CONFIG = (f'[docker]\nimage = "{DEBIAN}"\npull = "never"\n'
                '[git]\nuser_name = "Rootless Agent"\nuser_email = "rl@example.com"\n')


def write_config(engine: RootlessEngine, text: str) -> None:
    Path(engine.env["MUX_CONFIG"]).write_text(IMAGE_CONFIG + text)


def test_engine_is_rootless_and_separate(rootless: RootlessEngine) -> None:
    info = json.loads(rootless.docker("info", "--format", "{{json .}}").stdout)
    assert "name=rootless" in info["SecurityOptions"]
    assert info["DockerRootDir"].startswith(os.path.dirname(rootless.host.removeprefix("unix://")))


def test_plain_session_new_list_delete(rootless: RootlessEngine) -> None:
    work = rootless.base / "work"
    (work / "seen.txt").write_text("from the host\n")
    write_config(rootless, "")
    made = rootless.mux("new", "rl-plain", cwd=work)
    assert made.returncode == 0, made.stderr
    listed = json.loads(rootless.mux("list", "--json").stdout)
    assert [(s["name"], s["status"], s["workdir"]) for s in listed] == [("rl-plain", "running", str(work))]
    seen = rootless.mux("exec", "rl-plain", "--", "cat", "/workspace/seen.txt")
    assert seen.stdout == "from the host\n", seen.stderr
    wrote = rootless.mux("exec", "rl-plain", "--", "sh", "-c",
                         'echo from-inside > /workspace/made.txt && touch "$HOME/.state" && id -un')
    assert wrote.returncode == 0, wrote.stderr
    assert wrote.stdout == "mux-rootless\n"  # the host's name for whom the session runs as
    made_inside = work / "made.txt"
    assert made_inside.read_text() == "from-inside\n"
    assert made_inside.stat().st_uid == rootless.uid  # the user's file, not a subordinate id's
    assert rootless.mux("stop", "rl-plain").returncode == 0
    assert rootless.mux("delete", "rl-plain").returncode == 0
    assert json.loads(rootless.mux("list", "--json").stdout) == []
    assert rootless.docker("ps", "-aq").stdout == ""


def test_limits_the_engine_would_drop_are_refused(rootless: RootlessEngine) -> None:
    """This host's cgroup v1 gives the rootless engine no cgroups: docker itself takes
    --memory there and runs the container without the limit."""
    write_config(rootless, "")
    info = json.loads(rootless.docker("info", "--format", "{{json .}}").stdout)
    if info["CgroupDriver"] != "none":
        pytest.skip(f"the rootless engine has cgroups here ({info['CgroupDriver']})")
    refused = rootless.mux("new", "--memory", "256m", "rl-limited", cwd=rootless.base / "work")
    assert refused.returncode == 2, refused.stderr
    assert "mux: error: the engine is rootless Docker without cgroups" in refused.stderr
    assert "memory 256m" in refused.stderr
    assert rootless.docker("ps", "-aq").stdout == ""
    assert not session_dir("rl-limited", Path(rootless.env["MUX_DATA_DIR"]), rootless.env).exists()


@pytest.mark.parametrize("egress", ["open", "proxy-only"])
def test_proxied_session_without_host_address_is_refused(rootless: RootlessEngine, egress: str) -> None:
    write_config(rootless, f"[proxy]\nport = {free_port()}\n")
    refused = rootless.mux("new", "--proxy", "--egress", egress, "rl-refused", cwd=rootless.base / "work")
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.startswith("mux: error: the engine is rootless Docker"), refused.stderr
    assert "host_address" in refused.stderr and "10.0.2.2" in refused.stderr
    # Decided from the engine's own `docker info` (cached under the data dir), not a recording.
    data = Path(rootless.env["MUX_DATA_DIR"])
    cached = [json.loads(p.read_text()) for p in (data / "engines").glob("*.json")]
    assert [c["host"] for c in cached] == [rootless.host]
    assert "name=rootless" in cached[0]["SecurityOptions"]
    assert rootless.docker("ps", "-aq").stdout == ""
    assert "mux-egress" not in rootless.docker("network", "ls").stdout
    assert not session_dir("rl-refused", data, rootless.env).exists()
    assert rootless.mux("proxy", "status").returncode == 5  # not running: nothing was started


@pytest.fixture
def upstream(rootless: RootlessEngine) -> Iterator[EchoUpstream]:
    """An HTTPS upstream on the main engine's bridge address: on this machine, but not
    what that address means inside the rootless engine's network, so only the proxy
    (which runs here) reaches it."""
    gateway = netinfo.bridge_gateway()
    assert gateway, "no Docker bridge gateway address here"
    pki: Pki = make_pki(rootless.base / "pki", [gateway])
    with EchoUpstream(gateway, pki) as server:
        yield server


def proxied(rootless: RootlessEngine, upstream: EchoUpstream, port: int) -> RootlessEngine:
    """The config for sessions reaching ``upstream`` through the proxy at 10.0.2.2, and
    the proxy's environment (the upstream CA is part of its settings: every mux call sees it)."""
    write_config(rootless, f'[proxy]\nport = {port}\ntimeout = 30\nbind = ["127.0.0.1"]\n'
                           f'host_address = "{HOST_LOOPBACK}"\n'
                           f'[proxy.filters]\nallowed_networks = ["{upstream.host}/32"]\n'
                           f'[credentials.api]\ndomains = ["{upstream.host}"]\nauth_type = "bearer"\n'
                           'value = "${API_TOKEN}"\n')
    return replace(rootless, env={**rootless.env, "API_TOKEN": TOKEN, "MUX_PROXY_UPSTREAM_CA": str(upstream.pki.ca)})


def test_proxied_session_with_host_address_injects_the_credential(
        rootless: RootlessEngine, upstream: EchoUpstream) -> None:
    port = free_port()
    rootless = proxied(rootless, upstream, port)
    made = rootless.mux("-v", "new", "--proxy", "rl-proxied", cwd=rootless.base / "work")
    assert made.returncode == 0, made.stderr
    assert "--add-host" not in made.stderr
    printed = rootless.mux("exec", "rl-proxied", "--", "printenv", "HTTPS_PROXY")
    assert printed.stdout.strip().endswith(f"@{HOST_LOOPBACK}:{port}"), printed.stderr + made.stderr
    url = f"{upstream.url}/v1/models"
    out = rootless.mux("exec", "rl-proxied", "--", "curl", "-sS", "--max-time", "30", url)
    assert out.stdout == "upstream ok\n", out.stderr
    assert upstream.requests[-1][2]["Authorization"] == f"Bearer {TOKEN}"
    # Without the proxy the session cannot reach that upstream: it exists only on this machine.
    direct = rootless.mux("exec", "rl-proxied", "--", "curl", "-sS", "--max-time", "10", "--noproxy", "*", url)
    assert direct.returncode != 0
    assert len(upstream.requests) == 1
    assert TOKEN not in rootless.docker("inspect", "mux-rl-proxied").stdout
    assert rootless.mux("delete", "--force", "rl-proxied").returncode == 0


def test_proxy_only_session_goes_out_through_the_proxy_alone(
        rootless: RootlessEngine, upstream: EchoUpstream) -> None:
    port = free_port()
    rootless = proxied(rootless, upstream, port)
    made = rootless.mux("-v", "new", "--egress", "proxy-only", "rl-only", cwd=rootless.base / "work")
    assert made.returncode == 0, made.stderr
    assert f"{HOST_LOOPBACK} {port}" in made.stderr  # the relay's target: the proxy, through slirp4netns
    url = f"{upstream.url}/v1/models"
    out = rootless.mux("exec", "rl-only", "--", "curl", "-sS", "--max-time", "30", url)
    assert out.stdout == "upstream ok\n", out.stderr
    assert upstream.requests[-1][2]["Authorization"] == f"Bearer {TOKEN}"
    # This machine's loopback (the proxy's port itself) is reachable from the engine's
    # bridge, and not from the session: its one way out is the relay.
    probe = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5", "--noproxy", "*",
             f"http://{HOST_LOOPBACK}:{port}/"]
    on_bridge = rootless.docker("run", "--rm", "--label", f"mux.instance={rootless.env['MUX_INSTANCE']}",
                                DEBIAN, *probe)
    assert on_bridge.stdout not in ("", "000"), on_bridge.stderr
    from_session = rootless.mux("exec", "rl-only", "--", *probe)
    assert from_session.returncode != 0 and from_session.stdout == "000"
    direct = rootless.mux("exec", "rl-only", "--", "curl", "-sS", "--max-time", "5", "--noproxy", "*", url)
    assert direct.returncode != 0
    assert len(upstream.requests) == 1
    assert rootless.mux("delete", "--force", "rl-only").returncode == 0
    assert rootless.docker("ps", "-aq").stdout == ""  # the relay went with the last proxy-only session


def test_repo_session_commits_pushes_and_guards_unsaved_work(rootless: RootlessEngine) -> None:
    """A --repo session there: mux clones here (as the user), the agent (the engine's
    root: the user) commits; the local source is out of its reach (never mounted: a
    push to it fails), and `mux delete` refuses while a commit is on no remote branch."""
    seed, bare = rootless.base / "seed", rootless.base / "remote.git"
    setup = ("git init -q -b main seed && cd seed && echo hello > README && git add README && "
             "git -c user.name=T -c user.email=t@example.com commit -qm first && cd .. && "
             "git clone -q --bare seed remote.git")
    made_repo = rootless.run("sh", "-c", setup, cwd=rootless.base)
    assert made_repo.returncode == 0 and seed.is_dir(), made_repo.stderr
    write_config(rootless, "")
    made = rootless.mux("new", "--repo", str(bare), "--branch", "agent/fix", "rl-repo")
    assert made.returncode == 0, made.stderr
    script = ("echo change > agent.txt && git add agent.txt && git commit -qm 'agent change' && "
              "if git push -q origin agent/fix 2>/dev/null; then echo pushed; fi && "
              "echo more > more.txt && git add more.txt && git commit -qm unpushed && git log -1 --format=%an")
    out = rootless.mux("exec", "rl-repo", "--", "sh", "-c", script)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "Rootless Agent\n", out.stdout
    pushed = rootless.run("git", "--git-dir", str(bare), "branch", "--list", "agent/fix")
    assert pushed.stdout == "", pushed.stderr
    clone = session_dir("rl-repo", Path(rootless.env["MUX_DATA_DIR"]), rootless.env) / "repo"
    assert (clone / "more.txt").stat().st_uid == rootless.uid  # the agent's files are the user's
    assert rootless.mux("stop", "rl-repo").returncode == 0
    refused = rootless.mux("delete", "rl-repo")
    assert refused.returncode == 1 and "not on any remote branch" in refused.stderr, refused.stderr
    assert clone.is_dir()
    assert rootless.mux("delete", "--force", "rl-repo").returncode == 0
    assert not clone.exists()
