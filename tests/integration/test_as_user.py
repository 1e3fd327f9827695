"""mux run by an ordinary (non-root) user: file ownership, HOME, git, socket errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import docker, session_dir

pytestmark = pytest.mark.docker


def mux_as(user: dict, *args: str, groups: bool = True, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mux", *args], cwd=cwd or user["base"] / "work",
        env=user["env"], capture_output=True, text=True,
        user=user["uid"], group=user["uid"], extra_groups=[user["docker_gid"]] if groups else [],
    )


def test_files_belong_to_the_user_and_git_commit_works(images, other_user, unique_name, cleanup_containers) -> None:
    user = other_user
    work = user["base"] / "work"
    cleanup_containers.append(f"mux-{unique_name}")
    created = mux_as(user, "new", unique_name)
    assert created.returncode == 0, created.stderr

    def run(script: str) -> str:
        out = mux_as(user, "exec", unique_name, "--", "bash", "-c", script)
        assert out.returncode == 0, out.stderr
        return out.stdout

    assert run("id -u; id -g") == f"{user['uid']}\n{user['uid']}\n"
    run("echo made-inside > /workspace/agent.txt")
    assert (work / "agent.txt").stat().st_uid == user["uid"]
    home = run('echo "$HOME"; touch "$HOME/.agent-state" && echo writable').split()
    assert home == ["/home/mux", "writable"]
    assert not (work / ".agent-state").exists()  # HOME is not inside the project
    run("git init -q && git add agent.txt && git commit -qm 'from the agent'")
    log = run("git log --format='%an <%ae>|%s'")
    assert log == "Agent Smith <agent@example.com>|from the agent\n"
    assert (work / ".git").stat().st_uid == user["uid"]
    assert mux_as(user, "delete", "--force", unique_name).returncode == 0


def test_root_in_container_still_trusts_the_workspace(
    images, mux_home, unique_name, cleanup_containers, tmp_path
) -> None:
    """With run_as_user off the agent is root over a user's files: git must not
    refuse them as "dubious ownership"."""
    import os

    work = tmp_path / "w"
    work.mkdir()
    os.chown(work, 4242, 4242)
    config = Path(os.environ["MUX_CONFIG"])
    config.write_text('[docker]\nimage = "mux-test/debian"\npull = "never"\nrun_as_user = false\n'
                      '[git]\nuser_name = "R"\nuser_email = "r@example.com"\n')
    cleanup_containers.append(f"mux-{unique_name}")
    from tests.conftest import mux

    assert mux("new", "--workdir", str(work), unique_name).returncode == 0
    result = mux("exec", unique_name, "--", "sh", "-c", "git init -q . && git status --short && id -u")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("0")
    assert "dubious" not in result.stderr


def test_socket_permission_denied_explains_the_docker_group(images, other_user) -> None:
    result = mux_as(other_user, "list", groups=False)
    assert result.returncode == 4
    assert "permission denied" in result.stderr
    assert "usermod -aG docker" in result.stderr and "newgrp docker" in result.stderr
    assert "Traceback" not in result.stderr


def test_new_without_engine_access_leaves_nothing(images, other_user, unique_name) -> None:
    result = mux_as(other_user, "new", unique_name, groups=False)
    assert result.returncode == 4
    assert not session_dir(unique_name, other_user["base"] / "data", other_user["env"]).exists()
    assert docker("container", "inspect", f"mux-{unique_name}", check=False).returncode != 0
