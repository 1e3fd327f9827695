"""`mux new --repo` end to end: real git, real engine, nothing lost, nothing left."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DEBIAN, docker, mux, session_dir
from tests.integration.git_http import GitHTTPServer

pytestmark = pytest.mark.docker


def git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["git", "-c", "user.name=T", "-c", "user.email=t@example.com", *args],
                          cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    """A bare repo with branches main (default) and feature."""
    seed = tmp_path / "seed"
    seed.mkdir()
    git("init", "-q", "-b", "main", cwd=seed)
    (seed / "README").write_text("hello\n")
    git("add", "README", cwd=seed)
    git("commit", "-qm", "first", cwd=seed)
    git("checkout", "-qb", "feature", cwd=seed)
    (seed / "feature.txt").write_text("feature\n")
    git("add", "feature.txt", cwd=seed)
    git("commit", "-qm", "feature work", cwd=seed)
    git("checkout", "-q", "main", cwd=seed)  # the bare clone's HEAD: its default branch
    bare = tmp_path / "remote.git"
    git("clone", "-q", "--bare", str(seed), str(bare))
    return bare


def nothing_left(name: str) -> bool:
    gone = docker("container", "inspect", f"mux-{name}", check=False).returncode != 0
    listed = {s["name"] for s in json.loads(mux("list", "--json", check=True).stdout)}
    return gone and not session_dir(name).exists() and name not in listed


def test_agent_commits_inside_and_the_local_source_is_out_of_reach(images, mux_home, remote, unique_name) -> None:
    # A local --repo is never mounted: origin names a path that does not exist inside.
    Path(os.environ["MUX_CONFIG"]).write_text(
        f'[docker]\nimage = "{DEBIAN}"\npull = "never"\n'
        '[git]\nuser_name = "Agent"\nuser_email = "agent@example.com"\n')
    made = mux("new", "--repo", str(remote), "--branch", "agent/fix", unique_name)
    assert made.returncode == 0, made.stderr
    info = json.loads(mux("list", "--json", check=True).stdout)[0]
    assert (info["repo"], info["branch"]) == (str(remote), "agent/fix")
    assert info["workdir"] == str(session_dir(unique_name) / "repo")
    script = ("git log --format=%s && echo change > agent.txt && git add agent.txt && "
              "git commit -qm 'agent change' && git log -1 --format=%an && git remote get-url origin && "
              "if git push -q origin agent/fix 2>/dev/null; then echo pushed; else echo no-push; fi")
    out = mux("exec", unique_name, "--", "sh", "-c", script)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["first", "Agent", str(remote), "no-push"]
    assert "agent/fix" not in git("--git-dir", str(remote), "branch", "--list")
    assert mux("stop", unique_name).returncode == 0
    assert mux("delete", "--force", unique_name).returncode == 0
    assert nothing_left(unique_name)


def test_a_volume_of_yours_at_the_repo_path_is_kept_as_given(images, mux_home, remote, unique_name) -> None:
    Path(os.environ["MUX_CONFIG"]).write_text(
        f'[docker]\nimage = "{DEBIAN}"\npull = "never"\nvolumes = ["{remote}:{remote}:ro"]\n')
    printed = mux("new", "--dry-run", "--repo", str(remote), unique_name, check=True).stdout
    assert printed.count(f"{remote}:{remote}") == 1 and f"{remote}:{remote}:ro" in printed
    assert mux("new", "--repo", str(remote), unique_name).returncode == 0


def test_existing_branch_and_default_branch(images, mux_home, remote) -> None:
    for name, flags, branch, files in (("r-feat", ["--branch", "feature"], "feature", {"README", "feature.txt"}),
                                       # No --branch: the session's own branch, from the default
                                       ("r-main", [], "mux/r-main", {"README"})):
        assert mux("new", "--repo", str(remote), *flags, name).returncode == 0
        clone = session_dir(name) / "repo"
        assert git("-C", str(clone), "branch", "--show-current").strip() == branch
        assert {p.name for p in clone.iterdir()} - {".git"} == files
        labels = json.loads(docker("container", "inspect", f"mux-{name}").stdout)[0]["Config"]["Labels"]
        assert labels["mux.branch"] == branch
        assert mux("delete", "--force", name).returncode == 0


@pytest.mark.parametrize("mess, reason", [
    ("echo more >> README", "uncommitted"),
    ("echo new > scratch.txt", "untracked"),
    ("echo c > c.txt && git add c.txt && git commit -qm c", "not on any remote branch"),
    ("echo s >> README && git stash -q", "stash"),
], ids=["uncommitted", "untracked", "unpushed", "stash"])
def test_delete_refuses_to_lose_work(images, mux_home, remote, unique_name, mess, reason) -> None:
    # The guard's git runs in the git box, a container of the session's image: one with git.
    assert mux("new", "--image", DEBIAN, "--repo", str(remote), unique_name).returncode == 0
    assert mux("stop", unique_name).returncode == 0
    clone = session_dir(unique_name) / "repo"
    subprocess.run(["sh", "-c", mess], cwd=clone, check=True, capture_output=True,
                   env={**os.environ, "GIT_AUTHOR_NAME": "A", "GIT_AUTHOR_EMAIL": "a@b",
                        "GIT_COMMITTER_NAME": "A", "GIT_COMMITTER_EMAIL": "a@b"})
    refused = mux("delete", unique_name)
    assert refused.returncode == 1 and reason in refused.stderr
    assert clone.is_dir()
    all_refused = mux("delete", "--all")
    assert all_refused.returncode == 1 and clone.is_dir()
    assert mux("delete", "--force", unique_name).returncode == 0
    assert nothing_left(unique_name)


def test_dry_run_prints_the_clone_and_clones_nothing(images, mux_home, remote, unique_name) -> None:
    out = mux("new", "--dry-run", "--repo", str(remote), "--branch", "feature", unique_name, check=True).stdout
    lines = out.splitlines()
    assert lines[0] == f"git clone --no-local --branch feature -- {remote} {session_dir(unique_name) / 'repo'}"
    assert lines[-1].startswith("docker run ") and f"--label mux.repo={remote}" in lines[-1]
    assert nothing_left(unique_name)


def test_failed_clones_leave_nothing(images, mux_home, tmp_path, unique_name) -> None:
    missing = mux("new", "--repo", str(tmp_path / "no-such-repo"), unique_name)
    assert missing.returncode == 2 and "no-such-repo" in missing.stderr
    with GitHTTPServer(tmp_path) as server:  # serves no repository at that path
        unreachable = mux("new", "--repo", f"{server.url}/nothing.git", unique_name)
    assert unreachable.returncode == 1 and unreachable.stderr.count("\n") <= 2
    assert nothing_left(unique_name)
    assert "--branch needs --repo" in mux("new", "--branch", "x", unique_name).stderr


def test_auth_failure_names_the_url_never_the_password(images, mux_home, remote, tmp_path, unique_name) -> None:
    served = tmp_path / "served"
    served.mkdir()
    git("clone", "-q", "--bare", str(remote), str(served / "app.git"))
    with GitHTTPServer(served, auth=("agent", "right-pass")) as server:
        url = server.url_with_auth("agent", "wrong-pass-9134") + "/app.git"
        result = mux("new", "--repo", url, unique_name)
        good = mux("new", "--repo", server.url_with_auth("agent", "right-pass") + "/app.git", unique_name + "ok")
        where = server.url.split("//")[1]
    assert result.returncode == 1
    assert "wrong-pass-9134" not in result.stderr + result.stdout
    assert "authentication" in result.stderr.lower() and where in result.stderr
    assert nothing_left(unique_name)
    assert good.returncode == 0, good.stderr
    clone = session_dir(unique_name + "ok") / "repo"
    assert "right-pass" not in git("-C", str(clone), "remote", "get-url", "origin")
    assert mux("delete", "--force", unique_name + "ok").returncode == 0


def test_docker_run_failing_after_a_good_clone_removes_the_clone(images, mux_home, remote, unique_name) -> None:
    result = mux("new", "--repo", str(remote), "--image", "mux-test/absent:1", "--pull", "never", unique_name)
    assert result.returncode == 4
    assert nothing_left(unique_name)


def test_sigterm_during_clone_leaves_nothing(images, mux_home, remote, tmp_path, unique_name) -> None:
    served = tmp_path / "served"
    served.mkdir()
    git("clone", "-q", "--bare", str(remote), str(served / "app.git"))
    with GitHTTPServer(served) as server:
        server.hold_uploads()  # the fetch waits here, so the signal lands mid-clone
        proc = subprocess.Popen([sys.executable, "-m", "mux", "new", "--repo", f"{server.url}/app.git", unique_name],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert server.upload_waiting.wait(60)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        server.release()
    assert proc.returncode != 0 and "Traceback" not in err
    assert nothing_left(unique_name)
