"""An agent's work on real rootless Podman: the real Claude Code (npm's native binary)
as a headless ``--agent`` session reaching a fake Messages API through the proxy (over
slirp4netns' 10.0.2.2), and ``mux diff`` / ``mux fetch`` of a ``--repo`` session,
read through the git box (mux/workspace/gitbox.py), which podman runs too."""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.integration.agents.conftest import FAKE_NAME, RESOLVE_DIR, clients, wait_exit  # noqa: F401 - fixture
from tests.integration.agents.fake_api import FakeMessagesAPI
from tests.integration.podman.conftest import PodmanUser
from tests.integration.podman.test_podman import leftovers
from tests.integration.proxy.harness import free_port

pytestmark = pytest.mark.docker


def test_headless_claude_on_podman_holds_no_key(podman: PodmanUser, podman_debian: str,
                                                clients: Path) -> None:  # noqa: F811
    key = f"sk-ant-real-{uuid.uuid4().hex}"
    reply = f"pong-{uuid.uuid4().hex[:12]}"
    claude = clients / "@anthropic-ai" / "claude-code-linux-x64" / "claude"
    with FakeMessagesAPI(podman.base / "pki", FAKE_NAME, reply) as api:
        who = replace(podman, env={
            **podman.env, "PYTHONPATH": os.pathsep.join([str(ROOT), str(RESOLVE_DIR)]),
            "MUX_TEST_RESOLVE": f"{FAKE_NAME}=127.0.0.1", "MUX_PROXY_UPSTREAM_CA": str(api.ca),
            "FAKE_ANTHROPIC_KEY": key})
        Path(who.env["MUX_CONFIG"]).write_text(
            f'[docker]\nimage = "{podman_debian}"\npull = "never"\n'
            '[git]\nuser_name = "Podman Agent"\nuser_email = "pm@example.com"\n'
            f'[proxy]\nport = {free_port()}\ntimeout = 30\n'
            '[proxy.filters]\nallowed_networks = ["127.0.0.1/32"]\n'
            f'[agents.claude]\nbinary = "{claude}"\nenv = ["ANTHROPIC_BASE_URL={api.base_url}"]\n'
            f'[credentials.fake]\ndomains = ["{FAKE_NAME}"]\nheader = "x-api-key"\n'
            'value = "${FAKE_ANTHROPIC_KEY}"\n')
        made = who.mux("new", "--agent", "claude", "--headless", "--prompt", "say pong", "pm-agent",
                       cwd=who.base / "work")
        assert made.returncode == 0, made.stderr
        assert wait_exit("mux-pm-agent", 180, who.podman) == 0, who.podman("logs", "mux-pm-agent").stderr
        logs = who.mux("logs", "pm-agent")
        assert reply in logs.stdout, logs.stdout + logs.stderr
        messages = [s for s in api.seen if s.path.startswith("/v1/messages")]
        assert messages and all(s.headers.get("x-api-key") == key for s in messages)
        inspect = json.loads(who.podman("container", "inspect", "mux-pm-agent").stdout)[0]
        assert inspect["Config"]["Labels"]["mux.agent"] == "claude"
        assert key not in json.dumps(inspect)
        listed = json.loads(who.mux("list", "--json").stdout)
        assert [(r["name"], r["agent"]) for r in listed] == [("pm-agent", "claude")]
        assert who.mux("delete", "--force", "pm-agent").returncode == 0
        assert leftovers(who) == []


def test_diff_and_fetch_of_a_repo_session(podman: PodmanUser, podman_debian: str) -> None:
    Path(podman.env["MUX_CONFIG"]).write_text(
        f'[docker]\nimage = "{podman_debian}"\npull = "never"\n'
        '[git]\nuser_name = "Podman Agent"\nuser_email = "pm@example.com"\n')
    setup = ("git init -q -b main seed && cd seed && echo hello > README && git add README && "
             "git -c user.name=T -c user.email=t@example.com commit -qm first && cd .. && "
             "git clone -q --bare seed remote.git")
    assert podman.run("sh", "-c", setup).returncode == 0
    remote = podman.base / "remote.git"
    made = podman.mux("new", "--repo", str(remote), "--branch", "agent/fix", "pm-git")
    assert made.returncode == 0, made.stderr
    work = ("echo more >> README && echo change > agent.txt && git add -A && git commit -qm 'agent work' && "
            "echo wip > wip.txt && echo ok")
    out = podman.mux("exec", "pm-git", "--", "sh", "-c", work)
    assert out.stdout == "ok\n", out.stderr

    stat = podman.mux("-v", "diff", "--stat", "pm-git")
    assert stat.returncode == 0, stat.stderr
    assert [line.split("|")[0].strip() for line in stat.stdout.splitlines()[:-1]] == ["README", "agent.txt", "wip.txt"]
    assert "+ podman run " in stat.stderr  # the git box ran on podman
    patch = podman.mux("diff", "pm-git", "--", "README")
    assert patch.returncode == 0, patch.stderr
    assert "+more" in patch.stdout and "agent.txt" not in patch.stdout

    fetched = podman.mux("fetch", "pm-git")
    assert fetched.returncode == 0, fetched.stderr
    assert "mux/pm-git/agent/fix" in fetched.stdout
    log = podman.run("git", "-C", str(remote), "log", "--format=%s %an", "refs/remotes/mux/pm-git/agent/fix")
    assert log.stdout.splitlines() == ["agent work Podman Agent", "first T"], log.stderr
    assert podman.mux("delete", "--force", "pm-git").returncode == 0
    assert leftovers(podman) == []
