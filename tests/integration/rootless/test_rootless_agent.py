"""The real Claude Code (npm's native binary) as a headless agent on the rootless
engine: it runs as that engine's uid 0 (the user running mux), reaches a fake
Messages API (``*.test``, resolved only inside the proxy process) through the
proxy at 10.0.2.2, and holds only a placeholder key."""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from tests.conftest import DEBIAN, ROOT
from tests.integration.agents.conftest import FAKE_NAME, RESOLVE_DIR, clients, wait_exit  # noqa: F401 - fixture
from tests.integration.agents.fake_api import FakeMessagesAPI
from tests.integration.proxy.harness import free_port
from tests.integration.rootless.conftest import HOST_LOOPBACK, RootlessEngine

pytestmark = pytest.mark.docker



def test_headless_claude_runs_as_the_engine_s_root(rootless: RootlessEngine, clients: Path) -> None:  # noqa: F811
    key = f"sk-ant-real-{uuid.uuid4().hex}"
    reply = f"pong-{uuid.uuid4().hex[:12]}"
    claude = clients / "@anthropic-ai" / "claude-code-linux-x64" / "claude"
    with FakeMessagesAPI(rootless.base / "pki", FAKE_NAME, reply) as api:
        engine = replace(rootless, env={
            **rootless.env, "PYTHONPATH": os.pathsep.join([str(ROOT), str(RESOLVE_DIR)]),
            "MUX_TEST_RESOLVE": f"{FAKE_NAME}=127.0.0.1", "MUX_PROXY_UPSTREAM_CA": str(api.ca),
            "FAKE_ANTHROPIC_KEY": key})
        Path(engine.env["MUX_CONFIG"]).write_text(
            f'[docker]\nimage = "{DEBIAN}"\npull = "never"\n'
            f'[proxy]\nport = {free_port()}\ntimeout = 30\nbind = ["127.0.0.1"]\nhost_address = "{HOST_LOOPBACK}"\n'
            '[proxy.filters]\nallowed_networks = ["127.0.0.1/32"]\n'
            f'[agents.claude]\nbinary = "{claude}"\nenv = ["ANTHROPIC_BASE_URL={api.base_url}"]\n'
            f'[credentials.fake]\ndomains = ["{FAKE_NAME}"]\nheader = "x-api-key"\n'
            'value = "${FAKE_ANTHROPIC_KEY}"\n')
        made = engine.mux("new", "--agent", "claude", "--headless", "--prompt", "say pong", "rl-agent",
                          cwd=engine.base / "work")
        assert made.returncode == 0, made.stderr
        assert wait_exit("mux-rl-agent", 180, engine.docker) == 0, engine.docker("logs", "mux-rl-agent").stderr
        logs = engine.mux("logs", "rl-agent")
        assert reply in logs.stdout, logs.stdout + logs.stderr
        messages = [s for s in api.seen if s.path.startswith("/v1/messages")]
        assert messages and all(s.headers.get("x-api-key") == key for s in messages)
        inspect = json.loads(engine.docker("container", "inspect", "mux-rl-agent").stdout)[0]
        assert inspect["Config"]["User"] == "0:0"  # the engine's root: the user running mux
        assert key not in json.dumps(inspect)
        assert engine.mux("delete", "--force", "rl-agent").returncode == 0
