"""git clone / fetch / push over https inside a real container, the proxy adding Basic auth."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.proxy.harness import (
    TOKEN_ENV,
    ProxyUnderTest,
    SessionContainer,
    docker,
    run_session,
    start_proxy,
)
from tests.integration.proxy.servers import Pki, TLSGitServer

pytestmark = pytest.mark.docker
GIT_USER = "agent-bot"


def git(*args: str, cwd: Path | None = None) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory, pki: Pki, gateway: str) -> Iterator[ProxyUnderTest]:
    config = f"""
[proxy]
[proxy.filters]
# The test's git server listens on the bridge gateway, a host address mux's
# destination policy refuses by default: allow exactly that one.
allowed_networks = ["{gateway}/32"]
[credentials.git]
domains = ["{gateway}"]
auth_type = "basic"
username = "{GIT_USER}"
password = "${{{TOKEN_ENV}}}"
# Pushes to main: what every rule allowed before git_push (test_proxy_gitpush.py has the policy).
git_push = "any"
"""
    yield from start_proxy(tmp_path_factory.mktemp("proxy-git"), config, pki, {})


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, pki: Pki, gateway: str,
           proxy: ProxyUnderTest) -> Iterator[TLSGitServer]:
    root = tmp_path_factory.mktemp("git-root")
    seed = tmp_path_factory.mktemp("seed")
    git("init", "-q", "-b", "main", str(seed))
    (seed / "README").write_text("hello\n")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "init", cwd=seed)
    git("add", "README", cwd=seed)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "readme", cwd=seed)
    git("clone", "-q", "--bare", str(seed), str(root / "project.git"))
    git("config", "http.receivepack", "true", cwd=root / "project.git")
    with TLSGitServer(root, gateway, pki, auth=(GIT_USER, proxy.token)) as srv:
        yield srv


@pytest.fixture(scope="module")
def box(proxy: ProxyUnderTest) -> Iterator[SessionContainer]:
    yield from run_session(proxy, None, ["--env", "GIT_TERMINAL_PROMPT=0"])


def test_clone_fetch_push_with_no_token_in_container(box: SessionContainer, server: TLSGitServer,
                                                     proxy: ProxyUnderTest) -> None:
    script = f"""set -e
cd /tmp
git clone -q {server.url}/project.git work
cd work
cat README
git -c user.name=agent -c user.email=a@b commit -q --allow-empty -m 'from the container'
git push -q origin HEAD:main
git fetch -q origin
git log --format=%s -1 origin/main
grep -rl '{proxy.token}' /tmp/work/.git ~ 2>/dev/null || echo no-token-in-files
"""
    res = box.sh(script, timeout=180)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split("\n")[:3] == ["hello", "from the container", "no-token-in-files"]
    pushed = [r for r in server.requests if r[1].endswith("git-receive-pack") and r[0] == "POST"]
    assert pushed and pushed[-1][2] == 200
    assert proxy.token not in box.sh("env").stdout
    assert proxy.token not in docker("inspect", box.name).stdout


def test_without_proxy_the_server_refuses(box: SessionContainer, server: TLSGitServer, gateway: str) -> None:
    # Control: the same clone with the proxy bypassed gets 401, so the test above proves injection.
    res = box.sh(f"cd /tmp && GIT_SSL_NO_VERIFY=1 git -c http.proxy= clone -q {server.url}/project.git direct",
                 timeout=120)
    assert res.returncode != 0
    assert "401" in res.stderr or "Authentication failed" in res.stderr or "could not read Username" in res.stderr
