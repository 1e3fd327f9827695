"""`mux new --agent` on another machine's engine: the host's agent binary is copied
once into a volume there (named by its digest), the shared files into a volume
of the session's, read-only at their places in HOME; the key stays here."""

from __future__ import annotations

import json
import subprocess

import pytest

from mux.session.agents import PLACEHOLDER
from tests.conftest import mux
from tests.integration.agents.conftest import AGENT_UID, AgentWorld, clients, wait_exit, world  # noqa: F401 - fixtures
from tests.integration.remote.conftest import RemoteEngine

pytestmark = pytest.mark.docker
BOX = ("--context", "box")



def volumes(remote: RemoteEngine, label: str) -> list[str]:
    return sorted(remote.docker("volume", "ls", "-q", "--filter", f"label={label}").stdout.split())


def test_agent_there_gets_its_binary_and_shared_files_in_volumes(
        world: AgentWorld, remote: RemoteEngine, own_instance: str, unique_name: str) -> None:  # noqa: F811
    claude_dir = world.home / ".claude"
    (claude_dir / "commands").mkdir(parents=True)
    (claude_dir / "settings.json").write_text('{"model": "claude-fake"}\n')
    (claude_dir / "commands" / "hello.md").write_text("Say hello.\n")
    # World-writable here, so only the mount (not file permissions) can refuse the agent's
    # write (root inside cannot: under no-new-privileges, `docker exec -u 0` has no capabilities).
    (claude_dir / "settings.json").chmod(0o666)
    (claude_dir / "commands").chmod(0o777)
    # A credential is refused there as here: exit 2, nothing made on the engine.
    (claude_dir / ".credentials.json").write_text('{"claudeAiOauth": {}}')
    world.write_config(claude='share = ["~/.claude/.credentials.json"]')
    refused = mux(*BOX, "new", "--agent", "claude", "--copy", unique_name, cwd=world.work)
    assert refused.returncode == 2 and ".credentials.json is a credential file" in refused.stderr, refused.stderr
    assert volumes(remote, f"mux.instance={own_instance}") == []
    world.write_config(claude='share = ["~/.claude/settings.json", "~/.claude/commands"]')
    one_shot, name = f"{unique_name}-h", unique_name
    try:
        # The real claude from this machine, copied there, answers through the proxy here.
        made = mux("-v", *BOX, "new", "--agent", "claude", "--copy", "--headless", "--prompt", "say pong",
                   one_shot, cwd=world.work)
        assert made.returncode == 0, made.stderr
        assert f" cp -L {world.claude} " in made.stderr
        assert wait_exit(f"mux-{one_shot}", engine=remote.docker) == 0, mux(*BOX, "logs", one_shot).stderr
        assert world.reply in mux(*BOX, "logs", one_shot).stdout
        # An interactive one stays up to look inside; its binary's volume is already there.
        made = mux("-v", *BOX, "new", "--agent", "claude", "--copy", name, cwd=world.work)
        assert made.returncode == 0, made.stderr
        assert f" cp -L {world.claude} " not in made.stderr
        container = f"mux-{name}"
        shown = remote.docker("exec", container, "cat", "/home/mux/.claude/settings.json",
                              "/home/mux/.claude/commands/hello.md")
        assert shown.stdout == '{"model": "claude-fake"}\nSay hello.\n'
        for target in ("/home/mux/.claude/settings.json", "/home/mux/.claude/commands/new.md"):
            write = remote.docker("exec", container, "sh", "-c", f'echo x >> "{target}"', check=False)
            assert write.returncode != 0 and "Read-only file system" in write.stderr
        # The rest of ~/.claude is the session's own, writable by the agent's user.
        assert remote.docker("exec", container, "touch", "/home/mux/.claude/mine", check=False).returncode == 0
        assert remote.docker("exec", container, "id", "-u").stdout.strip() == str(AGENT_UID)
        inside = remote.docker("exec", container, "env").stdout
        assert f"ANTHROPIC_API_KEY={PLACEHOLDER}" in inside and world.key not in inside
        mounts = {m["Destination"]: m for m in
                  json.loads(remote.docker("container", "inspect", container).stdout)[0]["Mounts"]}
        assert mounts["/opt/mux/shared"]["Name"] == f"mux-{name}-shared" and not mounts["/opt/mux/shared"]["RW"]
        assert mounts["/opt/mux/agents"]["Type"] == "volume" and not mounts["/opt/mux/agents"]["RW"]
        # Every shell there finds the agent: its wrapper in the session's own volume, read-only.
        assert mounts["/opt/mux/bin"]["Name"] == f"mux-{name}-bin" and not mounts["/opt/mux/bin"]["RW"]
        version = subprocess.run([str(world.claude), "--version"], capture_output=True, text=True).stdout.strip()
        for shell in (["claude", "--version"], ["bash", "-lc", "claude --version"]):
            done = mux(*BOX, "exec", name, "--", *shell)
            assert done.returncode == 0 and done.stdout.strip() == version, (shell, done.stderr)
        found = mux(*BOX, "exec", name, "--", "bash", "-lc", "command -v claude; echo $ANTHROPIC_API_KEY").stdout
        assert found.split() == ["/opt/mux/bin/claude", PLACEHOLDER]
        write = remote.docker("exec", "-u", "0", container, "sh", "-c", "echo x >> /opt/mux/bin/claude", check=False)
        # (an exec'd root has no capabilities under no-new-privileges: the mode refuses it too)
        assert write.returncode != 0 and any(r in write.stderr for r in ("Read-only file system",
                                                                         "Permission denied"))
        assert all(m["Type"] == "volume" for m in mounts.values())  # nothing of this machine's paths
        # Deleted: the session's volumes (shared files included) go; the program's stays for the next.
        for session in (one_shot, name):
            deleted = mux(*BOX, "delete", "--force", session)
            assert deleted.returncode == 0, deleted.stderr
            assert volumes(remote, f"mux.session={session}") == []
        program = volumes(remote, f"mux.instance={own_instance}")
        assert len(program) == 1 and program[0].startswith(f"mux_{own_instance}_claude-"), program
        assert (claude_dir / "settings.json").read_text() == '{"model": "claude-fake"}\n'
    finally:
        mux(*BOX, "delete", "--all", "--force")
