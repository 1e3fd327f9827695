"""The agent in every shell of its session (`mux exec`, `bash -l`, a shell's own
lookup), with the settings of the main process: the real Claude Code and Codex."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import pytest

from mux.session.agents import PLACEHOLDER
from tests.conftest import BUSYBOX, DEBIAN, docker, mux, session_dir
from tests.integration.agents.conftest import AgentWorld

pytestmark = pytest.mark.docker


def real_version(binary: object) -> str:
    """What the host's own binary prints for --version."""
    return subprocess.run([str(binary), "--version"], capture_output=True, text=True, check=True).stdout.strip()


def running(name: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while docker("container", "inspect", "--format", "{{.State.Running}}", f"mux-{name}").stdout.strip() != "true":
        assert time.monotonic() < deadline, mux("logs", name).stdout[-2000:]
        time.sleep(0.3)


def in_session(name: str, *command: str) -> subprocess.CompletedProcess[str]:
    return mux("exec", name, "--", *command)


def typed_in_a_terminal(name: str, line: bytes, until: bytes) -> bytes:
    """What `mux exec -it NAME bash` shows on a terminal after ``line`` is typed."""
    from tests.integration.agents.test_agents import read_until

    primary, secondary = os.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "mux", "exec", "-it", name, "bash"],
                            stdin=secondary, stdout=secondary, stderr=secondary, start_new_session=True)
    os.close(secondary)
    try:
        read_until(primary, b"$ ", 30)  # its prompt
        os.write(primary, line)
        shown = read_until(primary, until, 60)
        os.write(primary, b"exit\r")
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(primary)
    return shown


def codex_binary(clients: object) -> str:
    return f"{clients}/@openai/codex-linux-x64/vendor/x86_64-unknown-linux-musl/bin/codex"


def test_claude_in_exec_login_and_interactive_shells(world: AgentWorld, unique_name: str) -> None:
    # An interactive agent (it waits on its terminal), so the session stays up to open shells in.
    created = mux("new", "--agent", "claude", unique_name, cwd=world.work)
    assert created.returncode == 0, created.stderr
    running(unique_name)
    version = real_version(world.claude)
    assert version and "Claude Code" in version
    for shell in (["claude", "--version"],                      # mux exec NAME -- claude
                  ["sh", "-c", "claude --version"],             # a shell's own lookup
                  ["bash", "-lc", "claude --version"],          # a login shell: /etc/profile resets PATH
                  ["bash", "-ic", "claude --version"]):         # `mux exec -it NAME bash`, then typing it
        done = in_session(unique_name, *shell)
        assert done.returncode == 0 and done.stdout.strip().splitlines()[-1] == version, (shell, done.stderr)
    for shell in ("sh -c", "bash -lc"):
        found = in_session(unique_name, *shell.split(), "command -v claude").stdout.strip().splitlines()[-1]
        assert found == "/opt/mux/bin/claude", (shell, found)
        # The main process's settings: base URL, placeholder key, variables, HOME.
        env = in_session(unique_name, *shell.split(), 'echo "$ANTHROPIC_BASE_URL|$ANTHROPIC_API_KEY|'
                         '$CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC|$HOME|$HTTPS_PROXY"').stdout.strip()
        base, key, quiet, home, proxy = env.splitlines()[-1].split("|")
        assert (base, key, quiet, home) == (world.api.base_url, PLACEHOLDER, "1", "/home/mux"), shell
        assert proxy.startswith("http://"), shell
    # `mux exec -it NAME bash` on a real terminal, then typing the agent's name.
    typed = typed_in_a_terminal(unique_name, b"claude --version; echo done-$((6*7))\r", b"done-42")
    assert version.encode() in typed, typed[-2000:]
    login_path = in_session(unique_name, "bash", "-lc", 'echo "$PATH"').stdout.strip().splitlines()[-1]
    assert login_path.split(":")[0] == "/opt/mux/bin" and "/usr/bin" in login_path.split(":")
    # And it answers: claude run by `mux exec` goes through the proxy, which injects the key.
    before = len(world.api.seen)
    asked = in_session(unique_name, "claude", "-p", "say pong")
    assert asked.returncode == 0 and world.reply in asked.stdout, asked.stderr
    posts = [s for s in world.api.seen[before:] if s.path.startswith("/v1/messages")]
    assert posts and all(s.headers.get("x-api-key") == world.key for s in posts)
    # The container-wide PATH: the image's own (docker's default here), behind the wrapper.
    env = json.loads(docker("container", "inspect", "--format", "{{json .Config.Env}}", f"mux-{unique_name}").stdout)
    assert "PATH=/opt/mux/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" in env
    assert world.key not in json.dumps(env)


def test_wrapper_and_login_snippet_are_read_only(world: AgentWorld, unique_name: str) -> None:
    assert mux("new", "--agent", "claude", unique_name, cwd=world.work).returncode == 0
    running(unique_name)
    container = f"mux-{unique_name}"
    for target in ("/opt/mux/bin/claude", "/opt/mux/bin/new", "/etc/profile.d/mux-agent.sh"):
        # As root inside too (under no-new-privileges, `docker exec -u 0` has no capabilities, so
        # the file's mode refuses it as well as the mount).
        for user in ("0", None):
            argv = ["exec", *(["-u", user] if user else []), container, "sh", "-c", f'echo "exit 9" >> {target}']
            write = docker(*argv, check=False)
            assert write.returncode != 0, (target, user)
            refusals = ("Read-only file system", "Permission denied")
            assert any(r in write.stderr for r in refusals), (target, user, write.stderr)
    assert in_session(unique_name, "claude", "--version").stdout.strip() == real_version(world.claude)
    # On the host, the wrapper is mux's file, not the agent's: not writable by the agent's uid.
    wrapper = session_dir(unique_name, world.data) / "bin" / "claude"
    st = wrapper.stat()
    assert st.st_uid == os.getuid() and st.st_mode & 0o222 == 0, oct(st.st_mode)
    assert (wrapper.parent.stat().st_mode & 0o022) == 0
    deleted = mux("delete", "--force", unique_name)  # read-only files and all
    assert deleted.returncode == 0, deleted.stderr
    assert not session_dir(unique_name, world.data).exists()


@pytest.mark.parametrize("image", [pytest.param(BUSYBOX, id="busybox"), pytest.param(DEBIAN, id="debian")])
def test_codex_in_exec_shells_gets_its_settings(world: AgentWorld, clients, unique_name: str, image: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", f"{clients / '.bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("OPENAI_API_KEY", world.key)  # in mux's environment; never passed in
    # codex's base URL is one of its arguments: an exec'd codex must get it too.
    world.write_config(auth='auth_type = "bearer"',
                       extra=f'[agents.codex]\nargs = ["-c", "openai_base_url={world.api.base_url}/v1"]\n')
    created = mux("new", "--agent", "codex", "--image", image, unique_name, cwd=world.work)
    assert created.returncode == 0, created.stderr
    running(unique_name)
    version = real_version(codex_binary(clients))
    assert version.startswith("codex-cli ")
    shells = [["codex", "--version"], ["sh", "-c", "codex --version"]]
    shells += [["bash", "-lc", "codex --version"]] if image == DEBIAN else [["sh", "-lc", "codex --version"]]
    for shell in shells:
        done = in_session(unique_name, *shell)
        assert done.returncode == 0 and done.stdout.strip().splitlines()[-1] == version, (shell, done.stderr)
    assert in_session(unique_name, "sh", "-c", "command -v codex").stdout.strip() == "/opt/mux/bin/codex"
    env = in_session(unique_name, "sh", "-c", 'echo "$OPENAI_API_KEY|$CODEX_API_KEY"').stdout.strip()
    assert env == f"{PLACEHOLDER}|{PLACEHOLDER}"
    # An exec'd one-shot run talks to the configured base URL (the fake), not api.openai.com.
    before = len(world.api.seen)
    asked = in_session(unique_name, "codex", "exec", "--skip-git-repo-check", "--", "say pong")
    assert asked.returncode == 0 and world.reply in asked.stdout, asked.stdout[-2000:] + asked.stderr[-2000:]
    posts = [s for s in world.api.seen[before:] if s.method == "POST" and s.path.endswith("/responses")]
    assert posts and all(s.headers["authorization"] == f"Bearer {world.key}" for s in posts)


def test_the_image_s_path_is_kept_behind_the_wrapper(world: AgentWorld, unique_name: str) -> None:
    # An image with a PATH and a claude of its own (a script that stays up when it is the
    # main process): the session keeps that PATH, read from the image, the wrapper first.
    tag = f"mux-test/agentpath-{uuid.uuid4().hex[:10]}"
    script = 'echo image-own "$@"; if [ "$2" = --main ]; then exec sleep 600; fi'
    built = subprocess.run(["docker", "build", "-q", "-t", tag, "-"], text=True, capture_output=True,
                           input=f"FROM {BUSYBOX}\nRUN mkdir -p /own/bin && "
                                 f"printf '%s\\n' '#!/bin/sh' '{script}' > /own/bin/claude && "
                                 "chmod 755 /own/bin/claude\nENV PATH=/own/bin:/bin\n")
    assert built.returncode == 0, built.stderr
    try:
        world.write_config(claude='args = ["--from-config"]')
        created = mux("new", "--agent", "claude", "--image", tag, unique_name, "--", "--main", cwd=world.work)
        assert created.returncode == 0, created.stderr
        running(unique_name)
        deadline = time.monotonic() + 30
        while "image-own" not in (logs := mux("logs", unique_name).stdout):
            assert time.monotonic() < deadline, logs
            time.sleep(0.3)
        assert logs.strip() == "image-own --from-config --main"  # the image's own wins, with its arguments
        env = json.loads(docker("container", "inspect", "--format", "{{json .Config.Env}}",
                                f"mux-{unique_name}").stdout)
        assert "PATH=/opt/mux/bin:/own/bin:/bin" in env
        # An exec'd claude is the image's too, with the same arguments first.
        assert in_session(unique_name, "claude", "x").stdout.strip() == "image-own --from-config x"
        assert in_session(unique_name, "sh", "-c", "command -v claude").stdout.strip() == "/opt/mux/bin/claude"
    finally:
        mux("delete", "--all", "--force")
        subprocess.run(["docker", "image", "rm", "-f", tag], capture_output=True)
