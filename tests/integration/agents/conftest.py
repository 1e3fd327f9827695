"""Fixtures for the agent tests: the real clients from npm, a fake Messages API
under a ``*.test`` name, and a mux config whose credential rule covers it.

Network: loopback, the Docker bridge and containers the tests start. The fake's
name resolves only inside the proxy process (resolve/sitecustomize.py); no real
API name is mapped anywhere.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import DEBIAN, ROOT, docker, mux
from tests.integration.agents.fake_api import FakeMessagesAPI
from tests.integration.proxy.harness import free_port

AGENT_UID = 4242  # the working directory's owner: the agent runs as it, never as root
RESOLVE_DIR = Path(__file__).resolve().parent / "resolve"
FAKE_NAME = "fake-anthropic.test"


@pytest.fixture(scope="session")
def clients() -> Path:
    """node_modules holding the real Claude Code and Codex (tests/agents.sh, cached)."""
    done = subprocess.run(["bash", str(ROOT / "tests" / "agents.sh")], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"tests/agents.sh could not install the agent clients: {done.stderr.strip()}")
    return Path(done.stdout.strip().splitlines()[-1]) / "node_modules"


@dataclass
class AgentWorld:
    api: FakeMessagesAPI
    key: str
    reply: str
    config: Path
    data: Path
    work: Path
    home: Path  # the host user's HOME (what `share` paths are under)
    claude: Path  # the native binary from npm

    def write_config(self, extra: str = "", claude: str = "", binary: bool = True,
                     auth: str = 'header = "x-api-key"') -> None:
        """``binary``: name npm's claude in [agents.claude] (else it is found on PATH);
        ``auth``: how the rule for the fake sends the key."""
        self.config.write_text(
            f'[docker]\nimage = "{DEBIAN}"\npull = "never"\n'
            f"[proxy]\nport = {free_port()}\ntimeout = 30\n"
            # The fake API is on loopback, which the proxy refuses unless allowed.
            f'[proxy.filters]\nallowed_networks = ["127.0.0.1/32"]\n'
            "[agents.claude]\n" + (f'binary = "{self.claude}"\n' if binary else "")
            + f'env = ["ANTHROPIC_BASE_URL={self.api.base_url}"]\n{claude}\n'
            f'[credentials.fake]\ndomains = ["{FAKE_NAME}"]\n{auth}\n'
            'value = "${FAKE_ANTHROPIC_KEY}"\n' + extra
        )


@pytest.fixture
def world(images, clients: Path, mux_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AgentWorld]:
    key = f"sk-ant-real-{uuid.uuid4().hex}"
    reply = f"pong-{uuid.uuid4().hex[:12]}"
    work = mux_home / "work"
    work.mkdir()
    os.chown(work, AGENT_UID, AGENT_UID)
    home = mux_home / "host-home"
    home.mkdir()
    with FakeMessagesAPI(mux_home / "pki", FAKE_NAME, reply) as api:
        monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), str(RESOLVE_DIR)]))
        monkeypatch.setenv("MUX_TEST_RESOLVE", f"{FAKE_NAME}=127.0.0.1")
        monkeypatch.setenv("MUX_PROXY_UPSTREAM_CA", str(api.ca))
        monkeypatch.setenv("FAKE_ANTHROPIC_KEY", key)
        monkeypatch.setenv("ANTHROPIC_API_KEY", key)  # the host's real key, in mux's own environment
        monkeypatch.setenv("HOME", str(home))
        w = AgentWorld(api, key, reply, Path(os.environ["MUX_CONFIG"]), Path(os.environ["MUX_DATA_DIR"]),
                       work, home, clients / "@anthropic-ai" / "claude-code-linux-x64" / "claude")
        w.write_config()
        try:
            yield w
        finally:
            mux("delete", "--all", "--force")
            mux("proxy", "stop")


def wait_exit(container: str, timeout: float = 240,
              engine: Callable[..., subprocess.CompletedProcess[str]] = docker) -> int:
    """The container's exit code once its main process has ended (``engine``: the
    docker of the engine it runs on, the second engine's or rootless Docker's)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = engine("container", "inspect", "--format", "{{.State.Running}} {{.State.ExitCode}}",
                       container).stdout.split()
        if state[0] == "false":
            return int(state[1])
        time.sleep(0.5)
    raise AssertionError(f"{container} still running after {timeout} s")
