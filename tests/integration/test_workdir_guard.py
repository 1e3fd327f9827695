"""`mux delete` guards the commits of a workdir session's own git directory.

A workdir session (no --repo, inside a git repository) commits into a git
directory of its own (mux/workspace/protect.py), which `mux fetch NAME` brings
back as refs/remotes/mux/NAME/*. Deleting the session deletes that directory, so
`mux delete` refuses while it holds commits that are in neither the refs it
started with (recorded by mux at `mux new`, outside the agent's reach) nor what
`mux fetch` brought here; the workdir's files themselves are the user's own and
are never counted. The check runs in the git box, never in host git.

mux runs here as an ordinary user (uid 4242) with its own repository, and the
session (the agent) runs as that user too: the agent's commits are made by
scripts inside the real session.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import docker, session_dir

pytestmark = pytest.mark.docker


def mux_as(user: dict, *args: str, cwd: Path | None = None,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mux", *args], cwd=cwd or user["base"] / "work",
                          env={**user["env"], **(env or {})}, capture_output=True, text=True,
                          user=user["uid"], group=user["uid"], extra_groups=[user["docker_gid"]])


def git_as(user: dict, *args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-c", "user.name=U", "-c", "user.email=u@example.com", *args], cwd=cwd,
                          env={**user["env"], "GIT_CONFIG_NOSYSTEM": "1"}, capture_output=True, text=True,
                          check=check, user=user["uid"], group=user["uid"])


@pytest.fixture
def project(other_user: dict) -> Path:
    """The user's own repository, their workdir: one commit on main, a tag, a second branch."""
    work = other_user["base"] / "work"
    git_as(other_user, "init", "-q", "-b", "main", cwd=work)
    (work / "app.py").write_text("print('hi')\n")
    os.chown(work / "app.py", other_user["uid"], other_user["uid"])
    git_as(other_user, "add", "app.py", cwd=work)
    git_as(other_user, "commit", "-qm", "user's commit", cwd=work)
    git_as(other_user, "tag", "v1", cwd=work)
    git_as(other_user, "branch", "side", cwd=work)
    return work


COMMIT = ("cd /workspace && echo agent > agent.txt && git add agent.txt && "
          "git commit -qm \"agent's commit\" && git rev-parse HEAD")


def new_session(user: dict, name: str) -> None:
    made = mux_as(user, "new", "--workdir", str(user["base"] / "work"), name)
    assert made.returncode == 0, made.stderr


def agent(user: dict, name: str, script: str) -> str:
    out = mux_as(user, "exec", name, "--", "sh", "-c", script)
    assert out.returncode == 0, out.stderr
    return out.stdout


def has_object(user: dict, repo: Path, sha: str) -> bool:
    return git_as(user, "cat-file", "-e", f"{sha}^{{commit}}", cwd=repo, check=False).returncode == 0


def test_delete_refuses_while_the_agents_commits_are_only_in_its_git_dir(
        images, other_user, project, unique_name, cleanup_containers) -> None:
    user = other_user
    cleanup_containers.append(f"mux-{unique_name}")
    new_session(user, unique_name)
    assert agent(user, unique_name, "id -u").strip() == str(user["uid"])  # the agent is the session's user
    sha = agent(user, unique_name, COMMIT).strip()
    assert not has_object(user, project, sha)  # only in the session's own git directory
    assert mux_as(user, "stop", unique_name).returncode == 0
    own_git = session_dir(unique_name, user["base"] / "data", user["env"]) / "git"
    refused = mux_as(user, "delete", unique_name)
    lost = refused.returncode == 0 and not own_git.exists() and not has_object(user, project, sha)
    assert not lost, "mux delete removed the session and its commit is gone: in no repository here"
    assert refused.returncode == 1, refused.stderr
    lines = refused.stderr.splitlines()
    assert lines[0].startswith(f"mux: error: not deleting session {unique_name!r}: ") and len(lines) == 2, lines
    assert "1 commit" in lines[0] and "branch 'main'" in lines[0], lines[0]
    assert f"mux fetch {unique_name}" in lines[1] and "--force" in lines[1], lines[1]
    # The session is whole: its container, its git directory and the commit in it.
    assert (own_git / "HEAD").is_file()
    assert docker("container", "inspect", f"mux-{unique_name}", check=False).returncode == 0
    # `mux fetch` brings the commit here as data; then nothing would be lost.
    fetched = mux_as(user, "fetch", unique_name)
    assert fetched.returncode == 0, fetched.stderr
    assert has_object(user, project, sha)
    deleted = mux_as(user, "delete", unique_name)
    assert deleted.returncode == 0, deleted.stderr
    assert not own_git.exists()
    assert git_as(user, "rev-parse", f"mux/{unique_name}/main", cwd=project).stdout.strip() == sha


def test_a_session_whose_agent_did_nothing_deletes_at_once(images, other_user, project, unique_name,
                                                           cleanup_containers) -> None:
    user = other_user
    cleanup_containers.append(f"mux-{unique_name}")
    new_session(user, unique_name)
    # Edits to the workdir's files are the user's own files on this machine: nothing is lost.
    agent(user, unique_name, "cd /workspace && echo edit >> app.py && echo new > new.txt && git add new.txt")
    assert mux_as(user, "stop", unique_name).returncode == 0
    deleted = mux_as(user, "-v", "delete", unique_name)
    assert deleted.returncode == 0 and "mux: " not in deleted.stderr, deleted.stderr
    # Its refs' files are as mux copied them (mux's record says so): no box was needed.
    assert "+ docker run" not in deleted.stderr
    assert (project / "new.txt").read_text() == "new\n"


def test_new_refs_on_the_users_commits_are_nothing_new(images, other_user, project, unique_name,
                                                       cleanup_containers) -> None:
    user = other_user
    cleanup_containers.append(f"mux-{unique_name}")
    new_session(user, unique_name)
    agent(user, unique_name, "cd /workspace && git branch agent-copy side && git tag -a -m t agent-tag v1 && "
                             "git checkout -q side && git pack-refs --all")
    assert mux_as(user, "stop", unique_name).returncode == 0
    deleted = mux_as(user, "-v", "delete", unique_name)
    assert deleted.returncode == 0, deleted.stderr
    assert "+ docker run" in deleted.stderr  # its refs changed: the box counted, and found nothing new


def test_commits_on_no_branch_and_the_users_own_refs(images, other_user, project, unique_name,
                                                     cleanup_containers) -> None:
    """The agent's branch on the user's old commit is nothing new; a commit of its own
    on a detached HEAD or in a stash is, and `mux fetch` (branches only) does not bring it."""
    user = other_user
    cleanup_containers.append(f"mux-{unique_name}")
    new_session(user, unique_name)
    agent(user, unique_name, "cd /workspace && git branch agent-copy side && git tag agent-tag v1 && "
                             "git checkout -q --detach && echo d > d.txt && git add d.txt && git commit -qm d")
    assert mux_as(user, "stop", unique_name).returncode == 0
    refused = mux_as(user, "delete", unique_name)
    assert refused.returncode == 1 and "detached HEAD: 1 commit" in refused.stderr, refused.stderr
    assert "agent-copy" not in refused.stderr and "agent-tag" not in refused.stderr
    assert mux_as(user, "fetch", unique_name).returncode == 0
    still = mux_as(user, "delete", unique_name)
    assert still.returncode == 1 and "detached HEAD: 1 commit" in still.stderr, still.stderr
    forced = mux_as(user, "delete", "--force", unique_name)
    assert forced.returncode == 0, forced.stderr
    assert not session_dir(unique_name, user["base"] / "data", user["env"]).exists()


def test_force_deletes_and_a_running_session_is_refused_first(images, other_user, project, unique_name,
                                                              cleanup_containers) -> None:
    user = other_user
    cleanup_containers.append(f"mux-{unique_name}")
    new_session(user, unique_name)
    agent(user, unique_name, COMMIT)
    running = mux_as(user, "-v", "delete", unique_name)
    assert running.returncode == 1 and "it is running" in running.stderr, running.stderr
    assert "+ docker run" not in running.stderr  # nothing read its git directory
    forced = mux_as(user, "delete", "--force", unique_name)
    assert forced.returncode == 0, forced.stderr
    assert not session_dir(unique_name, user["base"] / "data", user["env"]).exists()


def test_a_repository_the_agent_made_in_a_plain_workdir(images, other_user, unique_name,
                                                        cleanup_containers) -> None:
    user = other_user
    cleanup_containers.append(f"mux-{unique_name}")
    new_session(user, unique_name)  # the work dir is no repository: the agent's own starts empty
    agent(user, unique_name, "cd /workspace && git init -q -b main && echo x > f && git add f && git commit -qm x")
    assert mux_as(user, "stop", unique_name).returncode == 0
    refused = mux_as(user, "delete", unique_name)
    assert refused.returncode == 1 and "1 commit" in refused.stderr, refused.stderr
    assert mux_as(user, "delete", "--force", unique_name).returncode == 0


def test_delete_all_checks_workdir_and_clone_sessions_in_one_box(images, other_user, project, unique_name,
                                                                 cleanup_containers) -> None:
    user = other_user
    clean, busy, cloned = f"{unique_name}a", f"{unique_name}b", f"{unique_name}c"
    cleanup_containers.extend(f"mux-{n}" for n in (clean, busy, cloned))
    new_session(user, clean)
    new_session(user, busy)
    agent(user, busy, COMMIT)
    made = mux_as(user, "new", "--repo", str(project), cloned)
    assert made.returncode == 0, made.stderr
    for name in (clean, busy, cloned):
        assert mux_as(user, "stop", name).returncode == 0
    out = mux_as(user, "-v", "delete", "--all")
    assert out.returncode == 1 and f"{busy}: " in out.stderr, out.stderr
    assert len([ln for ln in out.stderr.splitlines() if ln.startswith("+ docker run")]) == 1, out.stderr
    # Host git reads only the refs of the user's own repository, never a session's files.
    host_git = [ln for ln in out.stderr.splitlines() if ln.startswith("+ git")]
    assert host_git and all(ln == f"+ git --git-dir {project}/.git for-each-ref '--format=%(objectname)'"
                            for ln in host_git), host_git
    left = {s["name"] for s in json.loads(mux_as(user, "list", "--json").stdout)}
    assert left == {busy}
    assert mux_as(user, "delete", "--force", busy).returncode == 0


# What a hostile agent plants in its own git directory (SESSION/git, /workspace/.git in
# the session) for host git to run; CANARY is a path on this machine.
PLANTS = {
    "fsmonitor": 'git config core.fsmonitor "touch CANARY; false" && git config core.untrackedCache true',
    "hooks": ("for h in reference-transaction post-index-change pre-auto-gc post-checkout post-merge; do "
              "printf '#!/bin/sh\\ntouch CANARY\\n' > .git/hooks/$h && chmod +x .git/hooks/$h; done && "
              "git config core.hooksPath .git/hooks && git config core.pager 'touch CANARY; cat' && "
              "git config uploadpack.packObjectsHook 'touch CANARY' && "
              "echo '* filter=evil' > .git/info/attributes && git config filter.evil.clean 'touch CANARY; cat' && "
              "git config filter.evil.process 'touch CANARY'"),
    "commondir": ("mkdir -p /tmp/evil && cp -r .git/. /tmp/evil/ && "
                  "git config -f /tmp/evil/config core.fsmonitor 'touch CANARY; false' && "
                  "cp -r /tmp/evil .git/evil && echo evil > .git/commondir"),
}


@pytest.mark.parametrize("plant", sorted(PLANTS))
def test_a_hostile_git_dir_runs_nothing_here(images, other_user, project, unique_name, cleanup_containers,
                                             plant) -> None:
    user = other_user
    canary = user["base"] / "canary"
    cleanup_containers.append(f"mux-{unique_name}")
    new_session(user, unique_name)
    agent(user, unique_name, COMMIT + " && " + PLANTS[plant].replace("CANARY", str(canary)))
    assert mux_as(user, "stop", unique_name).returncode == 0
    refused = mux_as(user, "delete", unique_name)
    assert not canary.exists(), f"the agent's {plant} ran on this machine at delete"
    assert refused.returncode == 1 and len(refused.stderr.splitlines()) == 2, refused.stderr
    fetched = mux_as(user, "fetch", unique_name)
    assert not canary.exists(), f"the agent's {plant} ran on this machine at fetch"
    assert fetched.returncode == 0, fetched.stderr
    deleted = mux_as(user, "delete", "--all")  # fetched: nothing is lost
    assert not canary.exists(), f"the agent's {plant} ran on this machine at delete --all"
    assert deleted.returncode == 0, deleted.stderr
    assert not session_dir(unique_name, user["base"] / "data", user["env"]).exists()


def test_a_session_without_mux_s_record_is_vouched_for_by_the_users_repository(
        images, other_user, project, unique_name, cleanup_containers) -> None:
    """A session made before the record (an older mux): only the user's own refs count as saved."""
    user = other_user
    cleanup_containers.append(f"mux-{unique_name}")
    new_session(user, unique_name)
    directory = session_dir(unique_name, user["base"] / "data", user["env"])
    record = directory / "git-base"
    assert record.read_text().startswith("# mux git-base v1\n= ")
    assert (record.stat().st_mode & 0o777) == 0o600
    record.unlink()
    assert mux_as(user, "stop", unique_name).returncode == 0
    deleted = mux_as(user, "-v", "delete", unique_name)
    assert deleted.returncode == 0 and "+ docker run" in deleted.stderr, deleted.stderr
    assert not directory.exists()
