"""A workdir session cannot reach what the user's own tools run: a hostile agent in a
real session writes at the user's .git, .envrc, editor and agent settings and shell
files; the host's copies (canaries) stay as they were, and its commits still work, in
a git directory of the session's own (mux/workspace/protect.py)."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import DEBIAN, mux, session_dir

pytestmark = pytest.mark.docker

HOSTILE = r"""
cd /workspace
echo work > agent.txt
git add agent.txt && git -c user.name=A -c user.email=a@e commit -q --no-verify -m "agent's commit" && echo COMMITTED
git log --format=%s
git ls-files | tr '\n' ' '; echo
for f in .envrc .gitmodules .mcp.json .bashrc .profile .zshrc .vscode/tasks.json .idea/workspace.xml \
         .claude/settings.json .claude/settings.local.json .claude/commands/evil.md .claude/agents/evil.md; do
    if (mkdir -p "$(dirname "$f")" && printf 'evil\n' > "$f") 2>/dev/null; then echo "WROTE $f"; fi
done
rm -rf .envrc .vscode 2>/dev/null && echo "REMOVED"
git config core.fsmonitor "touch /workspace/fsmonitor-ran" 2>/dev/null || true
printf '#!/bin/sh\ntouch /workspace/hook-ran\n' > .git/hooks/pre-commit && chmod +x .git/hooks/pre-commit
for f in .git/config .git/hooks/post-commit .git/HEAD .git/commondir; do printf 'x\n' >> "$f" || true; done
"""


def tree_digest(root: Path) -> dict[str, str]:
    """Every file under root, by path: its bytes' digest (links: their target)."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = "link:" + os.readlink(path)
        elif path.is_file():
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            out[rel] = "dir"
    return out


@pytest.fixture
def project(tmp_path: Path) -> Path:
    proj = tmp_path / "proj"
    proj.mkdir()
    git = ["git", "-c", "user.name=U", "-c", "user.email=u@e"]
    subprocess.run([*git, "init", "-q", "-b", "main"], cwd=proj, check=True)
    (proj / "app.py").write_text("print('hi')\n")
    (proj / ".envrc").write_text("export SAFE=1\n")
    subprocess.run([*git, "add", "app.py", ".envrc"], cwd=proj, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "user's commit"], cwd=proj, check=True)
    (proj / "staged.txt").write_text("staged\n")
    subprocess.run([*git, "add", "staged.txt"], cwd=proj, check=True)
    return proj


def test_a_hostile_agent_cannot_reach_what_the_users_tools_run(images, mux_home, unique_name: str,
                                                                project: Path) -> None:
    before_git = tree_digest(project / ".git")
    before_envrc = (project / ".envrc").read_text()
    made = mux("new", "--image", DEBIAN, "--workdir", str(project), unique_name)
    assert made.returncode == 0, made.stderr
    out = mux("exec", unique_name, "--", "bash", "-c", HOSTILE)
    assert "WROTE" not in out.stdout and "REMOVED" not in out.stdout, out.stdout + out.stderr
    # The agent still commits: in its own git directory, on top of the user's history and index.
    lines = out.stdout.splitlines()
    assert lines[:3] == ["COMMITTED", "agent's commit", "user's commit"], out.stdout + out.stderr
    assert lines[3].split() == [".envrc", "agent.txt", "app.py", "staged.txt"]  # what the user had staged came along
    # The host's repository and files are as they were: nothing there runs what the agent wrote.
    assert tree_digest(project / ".git") == before_git
    assert (project / ".envrc").read_text() == before_envrc
    host_status = subprocess.run(["git", "status", "--porcelain"], cwd=project, capture_output=True, text=True,
                                 check=True)
    assert not (project / "fsmonitor-ran").exists() and not (project / "hook-ran").exists()
    assert "agent.txt" in host_status.stdout  # the worktree is shared: the agent's edits are there
    assert (project / "agent.txt").read_text() == "work\n"
    # Placeholders stand in for the paths that did not exist, empty, while the session runs...
    assert (project / ".mcp.json").read_bytes() == b"" and (project / ".vscode").is_dir()
    assert mux("delete", "--force", unique_name).returncode == 0
    # ...and go with it; the user's own files stay.
    left = {p.name for p in project.iterdir()}
    assert left == {".git", "app.py", ".envrc", "staged.txt", "agent.txt"}, left
    assert not session_dir(unique_name).exists()


def test_outside_a_repository_the_agents_repository_is_its_own(images, mux_home, unique_name: str,
                                                               tmp_path: Path) -> None:
    work = tmp_path / "plain"
    work.mkdir()
    assert mux("new", "--image", DEBIAN, "--workdir", str(work), unique_name).returncode == 0
    init = mux("exec", unique_name, "--", "sh", "-c",
               "cd /workspace && git init -q . && echo x > f && git add f && "
               "git -c user.name=A -c user.email=a@e commit -qm one && git config core.fsmonitor 'touch /tmp/x' "
               "&& echo DONE")
    assert init.stdout == "DONE\n", init.stderr
    # The user's tree has only an empty placeholder: host git there finds no repository of the agent's.
    assert list((work / ".git").iterdir()) == []
    assert (session_dir(unique_name) / "git" / "config").is_file()
    assert mux("delete", "--force", unique_name).returncode == 0
    assert sorted(p.name for p in work.iterdir()) == ["f"]


def test_unprotected_warns_and_leaves_the_paths_writable(images, mux_home, unique_name: str,
                                                         tmp_path: Path) -> None:
    work = tmp_path / "open"
    work.mkdir()
    made = mux("new", "--unprotected", "--workdir", str(work), unique_name)
    assert made.returncode == 0 and "mux: warning: --unprotected: the agent can write" in made.stderr
    assert mux("exec", unique_name, "--", "sh", "-c", "echo x > /workspace/.envrc").returncode == 0
    assert (work / ".envrc").read_text() == "x\n"
    assert mux("delete", "--force", unique_name).returncode == 0
    assert (work / ".envrc").exists()  # the agent's file, not a placeholder of mux's


def test_dry_run_shows_the_placeholders_and_makes_none(images, mux_home, unique_name: str, project: Path) -> None:
    dry = mux("new", "--dry-run", "--workdir", str(project), unique_name)
    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.splitlines()
    assert f"touch {project}/.mcp.json" in lines and f"mkdir {project}/.vscode" in lines
    assert any(ln.startswith("git -c core.hooksPath=/dev/null clone --bare --no-hardlinks -q -- ") for ln in lines)
    assert f"{project}/.envrc:/workspace/.envrc:ro" in lines[-1]
    assert {p.name for p in project.iterdir()} == {".git", "app.py", ".envrc", "staged.txt"}


def test_sessions_of_one_workdir_share_the_placeholders(images, mux_home, unique_name: str,
                                                        tmp_path: Path) -> None:
    work = tmp_path / "shared"
    work.mkdir()
    first, second = f"{unique_name}-a", f"{unique_name}-b"
    assert mux("new", "--workdir", str(work), first).returncode == 0
    assert mux("new", "--workdir", str(work), second).returncode == 0
    assert mux("delete", "--force", first).returncode == 0
    # The second session still mounts them: they stay, and it starts again after a stop.
    assert (work / ".envrc").is_file() and (work / ".vscode").is_dir()
    assert mux("stop", second).returncode == 0
    started = mux("start", second)
    assert started.returncode == 0, started.stderr
    assert mux("delete", "--force", second).returncode == 0
    assert list(work.iterdir()) == []
