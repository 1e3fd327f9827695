"""`mux new --agent` with the real Claude Code and Codex clients from npm."""

from __future__ import annotations

import fcntl
import json
import os
import select
import struct
import subprocess
import sys
import termios
import time

import pytest

from mux.session.agents import PLACEHOLDER
from tests.conftest import BUSYBOX, docker, mux, session_dir
from tests.integration.agents.conftest import AGENT_UID, AgentWorld, wait_exit

pytestmark = pytest.mark.docker


def audit(world: AgentWorld) -> list[dict]:
    return [json.loads(line) for line in (world.data / "proxy" / "audit.jsonl").read_text().splitlines()]


def session_files_text(world: AgentWorld, name: str) -> str:
    out = []
    for path in session_dir(name, world.data).rglob("*"):
        if path.is_file():
            out.append(path.read_bytes().decode(errors="replace"))
    return "\n".join(out)


@pytest.mark.parametrize(("auth", "variable", "header", "sent"), [
    pytest.param('header = "x-api-key"', "ANTHROPIC_API_KEY", "x-api-key", "{key}", id="api-key"),
    # An OAuth token from `claude setup-token`: Authorization: Bearer, never an x-api-key.
    pytest.param('auth_type = "bearer"', "CLAUDE_CODE_OAUTH_TOKEN", "authorization", "Bearer {key}", id="oauth"),
])
def test_headless_claude_answers_through_the_proxy_and_holds_no_key(
        world: AgentWorld, unique_name: str, auth: str, variable: str, header: str, sent: str) -> None:
    world.write_config(auth=auth)
    prompt = "-v: say pong"  # starts like an option, and is still the prompt
    created = mux("new", "--agent", "claude", "--headless", "--prompt", prompt, unique_name, cwd=world.work)
    assert created.returncode == 0, created.stderr
    container = f"mux-{unique_name}"
    assert wait_exit(container) == 0, docker("logs", container).stderr

    logs = mux("logs", unique_name)
    assert world.reply in logs.stdout, logs.stdout + logs.stderr
    # The fake (the "API") got the real key, put there by the proxy...
    messages = [s for s in world.api.seen if s.path.startswith("/v1/messages")]
    assert messages and all(s.headers.get(header) == sent.format(key=world.key) for s in messages)
    assert any(s.body.get("stream") for s in messages)  # the streamed (SSE) reply was what it printed
    assert any(prompt in json.dumps(s.body["messages"]) for s in messages)
    other = {"x-api-key", "authorization"} - {header}
    assert not any(h in s.headers for s in messages for h in other)  # no placeholder got through
    proxy_user = f"{os.environ['MUX_INSTANCE']}+{unique_name}"  # the proxy serves every instance
    assert any(e["host"] == world.api.name and e["injected"] is True and e["session"] == proxy_user
               for e in audit(world))
    # ...while the container held only the placeholder, although the key is in mux's environment.
    inspect = json.loads(docker("container", "inspect", container).stdout)[0]
    env = dict(e.split("=", 1) for e in inspect["Config"]["Env"])
    assert env[variable] == PLACEHOLDER
    assert world.key not in json.dumps(inspect)
    assert world.key not in logs.stdout + logs.stderr
    assert world.key not in session_files_text(world, unique_name)  # its HOME, env-file
    assert inspect["Config"]["User"] == f"{AGENT_UID}:{AGENT_UID}"  # never root
    assert env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1"
    listed = json.loads(mux("list", "--json").stdout)
    assert [(s["agent"], s["status"], s["exit_code"]) for s in listed if s["name"] == unique_name] == [
        ("claude", "stopped", 0)]  # the one-shot run is over, and went well
    assert "AGENT" in mux("list").stdout


# The footer of Claude Code's prompt screen (either hint, as its width and state allow).
PROMPT_SCREEN = (b"for shortcuts", b"/effort")


def read_until(fd: int, needle: bytes | tuple[bytes, ...], limit: float = 60.0) -> bytes:
    """Read the terminal until ``needle`` (or one of them) shows up (bounded)."""
    needles = needle if isinstance(needle, tuple) else (needle,)
    seen = b""
    deadline = time.monotonic() + limit
    while not any(n in seen for n in needles) and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    return seen


def test_interactive_claude_in_a_terminal(world: AgentWorld, unique_name: str) -> None:
    """`mux new --agent claude NAME`, `mux attach NAME`, type a question, read the answer."""
    assert mux("new", "--agent", "claude", unique_name, cwd=world.work).returncode == 0
    container = f"mux-{unique_name}"
    deadline = time.monotonic() + 60
    while b"folder" not in (shown := subprocess.run(["docker", "logs", container], capture_output=True).stdout):
        assert time.monotonic() < deadline, shown[-2000:]  # the workspace trust question, Claude's own
        time.sleep(0.5)
    primary, secondary = os.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "mux", "attach", unique_name],
                            stdin=secondary, stdout=secondary, stderr=secondary, start_new_session=True)
    os.close(secondary)
    try:
        # The question, redrawn for this terminal's size once docker attach is connected.
        assert b"confirm" in read_until(primary, b"confirm")
        os.write(primary, b"\r")  # "Yes, I trust this folder"
        screen = read_until(primary, PROMPT_SCREEN)
        assert any(n in screen for n in PROMPT_SCREEN), screen[-2000:]  # the prompt box
        os.write(primary, b"say pong")
        read_until(primary, b"pong", 10)
        os.write(primary, b"\r")
        assert world.reply.encode() in read_until(primary, world.reply.encode())
        os.write(primary, b"\x10\x11")  # detach; the agent keeps running
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(primary)
    assert any(s.headers.get("x-api-key") == world.key for s in world.api.seen if s.method == "POST")
    assert docker("container", "inspect", "--format", "{{.State.Running}}", container).stdout.strip() == "true"
    # The answer to the trust question is agent state: kept in the session HOME across stop/start.
    state = session_dir(unique_name, world.data) / "home" / ".claude.json"
    assert json.loads(state.read_text())["projects"]["/workspace"]["hasTrustDialogAccepted"] is True
    assert mux("stop", unique_name).returncode == 0
    assert mux("start", unique_name).returncode == 0
    assert json.loads(state.read_text())["projects"]["/workspace"]["hasTrustDialogAccepted"] is True
    started = docker("container", "inspect", "--format", "{{.State.StartedAt}}", container).stdout.strip()
    deadline = time.monotonic() + 60
    while not any(n in (since := subprocess.run(["docker", "logs", "--since", started, container],
                                                capture_output=True).stdout) for n in PROMPT_SCREEN):
        assert time.monotonic() < deadline, since[-2000:]
        time.sleep(0.5)
    assert b"folder" not in since  # straight to its prompt: no trust question the second time


def test_agent_state_survives_stop_and_start(world: AgentWorld, clients, unique_name: str,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # No `binary` this time: the host's claude is found on PATH (npm's, a native executable).
    monkeypatch.setenv("PATH", f"{clients / '.bin'}{os.pathsep}{os.environ['PATH']}")
    world.write_config(binary=False)
    printed = mux("new", "--dry-run", "--agent", "claude", unique_name, cwd=world.work).stdout
    assert f"{(clients / '.bin' / 'claude').resolve()}:/opt/mux/agents/claude:ro" in printed
    assert mux("new", "--agent", "claude", "--headless", "--prompt", "remember", unique_name,
               cwd=world.work).returncode == 0
    container = f"mux-{unique_name}"
    assert wait_exit(container) == 0
    home = session_dir(unique_name, world.data) / "home"
    first = sorted(p.relative_to(home) for p in (home / ".claude").rglob("*.jsonl"))
    assert first, "claude kept no transcript in its HOME"
    assert mux("start", unique_name).returncode == 0  # the same agent run again, same HOME
    assert wait_exit(container) == 0
    second = sorted(p.relative_to(home) for p in (home / ".claude").rglob("*.jsonl"))
    assert set(first) < set(second)  # the first run's state is still there, next to the new one
    assert mux("logs", unique_name).stdout.count(world.reply) == 2


def test_shared_settings_are_read_only(world: AgentWorld, unique_name: str) -> None:
    claude_dir = world.home / ".claude"
    (claude_dir / "commands").mkdir(parents=True)
    (claude_dir / "settings.json").write_text('{"model": "claude-fake"}\n')
    (claude_dir / "commands" / "hello.md").write_text("Say hello.\n")
    # World-writable here, so only the mount (not file permissions) can refuse the agent's
    # write (root inside cannot: under no-new-privileges, `docker exec -u 0` has no capabilities).
    (claude_dir / "settings.json").chmod(0o666)
    (claude_dir / "commands").chmod(0o777)
    world.write_config(claude='share = ["~/.claude/settings.json", "~/.claude/commands"]')
    # An interactive agent (it waits on its terminal), so the session stays up to look inside.
    assert mux("new", "--agent", "claude", unique_name, cwd=world.work).returncode == 0
    container = f"mux-{unique_name}"
    shown = docker("exec", container, "cat", "/home/mux/.claude/settings.json", "/home/mux/.claude/commands/hello.md")
    assert shown.stdout == '{"model": "claude-fake"}\nSay hello.\n'
    for target in ("/home/mux/.claude/settings.json", "/home/mux/.claude/commands/new.md"):
        write = docker("exec", container, "sh", "-c", f'echo x >> "{target}"', check=False)
        assert write.returncode != 0 and "Read-only file system" in write.stderr
    # The rest of ~/.claude is the session's own, writable by the agent's user.
    assert docker("exec", container, "touch", "/home/mux/.claude/mine", check=False).returncode == 0
    assert (claude_dir / "settings.json").read_text() == '{"model": "claude-fake"}\n'
    assert docker("exec", container, "id", "-u").stdout.strip() == str(AGENT_UID)
    inside = docker("exec", container, "env").stdout
    assert f"ANTHROPIC_API_KEY={PLACEHOLDER}" in inside and world.key not in inside


@pytest.mark.parametrize(("files", "share", "named"), [
    pytest.param({".claude/.credentials.json": '{"claudeAiOauth": {}}'}, '["~/.claude/.credentials.json"]',
                 ".credentials.json", id="credentials-file"),
    pytest.param({".claude/settings.json": '{"env": {"ANTHROPIC_API_KEY": "sk-ant-abc"}}'},
                 '["~/.claude/settings.json"]', "settings.json", id="key-in-settings"),
    pytest.param({".claude/agents/a.md": "x", ".claude/agents/auth.json": "{}"}, '["~/.claude/agents"]',
                 "auth.json", id="inside-a-directory"),
])
def test_credential_files_are_refused(world: AgentWorld, unique_name: str, files: dict, share: str,
                                      named: str) -> None:
    for rel, text in files.items():
        (world.home / rel).parent.mkdir(parents=True, exist_ok=True)
        (world.home / rel).write_text(text)
    world.write_config(claude=f"share = {share}")
    result = mux("new", "--agent", "claude", unique_name, cwd=world.work)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("mux: error: ") and named in result.stderr
    assert "Traceback" not in result.stderr
    assert docker("container", "inspect", f"mux-{unique_name}", check=False).returncode != 0
    assert not session_dir(unique_name, world.data).exists()


def test_no_credential_rule_is_exit_2_naming_the_rule(world: AgentWorld, unique_name: str) -> None:
    world.config.write_text(world.config.read_text().split("[credentials.fake]")[0])
    result = mux("new", "--agent", "claude", unique_name, cwd=world.work)
    assert result.returncode == 2, result.stderr
    assert "no [credentials.*] rule covers fake-anthropic.test" in result.stderr
    assert "mux config init --agent claude" in result.stderr
    assert not session_dir(unique_name, world.data).exists()
    assert mux("proxy", "status").returncode == 5  # refused before anything started


def test_codex_static_binary_from_the_host_runs_in_busybox(world: AgentWorld, clients, unique_name: str,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # The host's `codex` is npm's node script; mux finds the static binary inside the package.
    monkeypatch.setenv("PATH", f"{clients / '.bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-real-never-inside")
    world.write_config(extra='[credentials.openai]\ndomains = ["api.openai.com"]\nauth_type = "bearer"\n'
                             'value = "${OPENAI_API_KEY}"\n')
    printed = mux("new", "--dry-run", "--agent", "codex", "--image", BUSYBOX, unique_name, "--", "--version",
                  cwd=world.work).stdout
    assert "codex-linux-x64/vendor/x86_64-unknown-linux-musl/bin/codex:/opt/mux/agents/codex:ro" in printed
    created = mux("new", "--agent", "codex", "--image", BUSYBOX, unique_name, "--", "--version", cwd=world.work)
    assert created.returncode == 0, created.stderr
    assert wait_exit(f"mux-{unique_name}") == 0
    out = mux("logs", unique_name).stdout
    assert out.startswith("codex-cli "), out
    env = docker("container", "inspect", "--format", "{{json .Config.Env}}", f"mux-{unique_name}").stdout
    assert f"OPENAI_API_KEY={PLACEHOLDER}" in env and "sk-openai-real-never-inside" not in env


def test_headless_codex_answers_through_the_proxy(world: AgentWorld, clients, unique_name: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", f"{clients / '.bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("OPENAI_API_KEY", world.key)  # in mux's environment; never passed in
    # codex moves its API with a config setting; the fake answers OpenAI's Responses API too.
    world.write_config(auth='auth_type = "bearer"',
                       extra=f'[agents.codex]\nargs = ["-c", "openai_base_url={world.api.base_url}/v1"]\n')
    created = mux("new", "--agent", "codex", "--headless", "--prompt", "say pong", unique_name, cwd=world.work)
    assert created.returncode == 0, created.stderr
    assert wait_exit(f"mux-{unique_name}") == 0
    assert world.reply in mux("logs", unique_name).stdout
    posts = [s for s in world.api.seen if s.method == "POST" and s.path.endswith("/responses")]
    assert posts and all(s.headers["authorization"] == f"Bearer {world.key}" for s in posts)
    inspect = docker("container", "inspect", f"mux-{unique_name}").stdout
    assert f"OPENAI_API_KEY={PLACEHOLDER}" in inspect and world.key not in inspect


def test_script_agent_missing_from_the_image_says_how_to_fix(world: AgentWorld, unique_name: str) -> None:
    world.write_config(extra='[credentials.gemini]\ndomains = ["generativelanguage.googleapis.com"]\n'
                             'header = "x-goog-api-key"\nvalue = "${FAKE_ANTHROPIC_KEY}"\n')
    assert mux("new", "--agent", "gemini", "--image", BUSYBOX, unique_name, cwd=world.work).returncode == 0
    assert wait_exit(f"mux-{unique_name}") == 2
    listed = json.loads(mux("list", "--json").stdout)
    assert [(s["agent"], s["exit_code"]) for s in listed if s["name"] == unique_name] == [("gemini", 2)]
    logs = docker("logs", f"mux-{unique_name}")
    err = logs.stdout + logs.stderr  # one stream: the session has a terminal
    assert "mux: gemini is not in this image" in err and "npm install -g @google/gemini-cli" in err


def test_the_image_s_own_agent_wins_over_the_host_binary(world: AgentWorld, unique_name: str) -> None:
    # A made-up agent whose program ("echo") the image has; the host binary offered for it
    # (false) would exit 1. One `docker run`: the wrapper picks, inside the container.
    world.write_config(extra='[agents.echoer]\ncommand = "echo"\nbinary = "/bin/false"\n'
                             'api_host = "fake-anthropic.test"\nkey_env = ["ECHOER_KEY"]\n')
    created = mux("-v", "new", "--agent", "echoer", unique_name, "--", "from", "the", "image", cwd=world.work)
    assert created.returncode == 0, created.stderr
    assert created.stderr.count("docker run") == 1
    assert wait_exit(f"mux-{unique_name}") == 0
    assert mux("logs", unique_name).stdout.strip() == "from the image"


def test_headless_agent_with_proxy_only_egress(world: AgentWorld, unique_name: str) -> None:
    # Contained: the session's only way out is the proxy, and the agent still gets its answer.
    created = mux("new", "--agent", "claude", "--egress", "proxy-only", "--headless", "--prompt", "say pong",
                  unique_name, cwd=world.work)
    assert created.returncode == 0, created.stderr
    assert wait_exit(f"mux-{unique_name}") == 0
    assert world.reply in mux("logs", unique_name).stdout
    listed = json.loads(mux("list", "--json").stdout)
    assert [s["egress"] for s in listed if s["name"] == unique_name] == ["proxy-only"]


def test_headless_agent_in_a_copied_workspace(world: AgentWorld, unique_name: str) -> None:
    # --copy: /workspace and HOME are volumes filled by mux, not this machine's directories;
    # a shared file is mounted into the HOME volume, whose ~/.claude must stay the agent's.
    (world.home / ".claude").mkdir()
    (world.home / ".claude" / "settings.json").write_text('{"model": "claude-fake"}\n')
    world.write_config(claude='share = ["~/.claude/settings.json"]')
    created = mux("new", "--agent", "claude", "--copy", "--headless", "--prompt", "say pong", unique_name,
                  cwd=world.work)
    assert created.returncode == 0, created.stderr
    assert wait_exit(f"mux-{unique_name}") == 0, mux("logs", unique_name).stderr
    assert world.reply in mux("logs", unique_name).stdout
    home = next(m["Name"] for m in json.loads(docker("container", "inspect", f"mux-{unique_name}").stdout)[0]["Mounts"]
                if m["Destination"] == "/home/mux")
    kept = docker("run", "--rm", "-v", f"{home}:/h", BUSYBOX, "sh", "-c",
                  "stat -c '%u' /h/.claude && find /h/.claude -name '*.jsonl' | wc -l").stdout.split()
    assert kept[0] == str(AGENT_UID) and int(kept[1]) >= 1  # the agent's own ~/.claude, with its transcript
