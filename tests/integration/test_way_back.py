"""The way back from a session, as data only: `mux diff` and `mux fetch` on a real engine.

The agent's changes are made by scripts inside real sessions; host git never opens
the session's clone (a canary on this machine says so), and `mux fetch` writes only
refs/remotes/mux/NAME/* of the repository it fetches into.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tests.conftest import DEBIAN, mux, session_dir
from tests.integration.test_repo_sessions import git

pytestmark = pytest.mark.docker


@pytest.fixture
def user_repo(tmp_path: Path) -> Path:
    """The user's own repository (not bare): the --repo source, and where fetch lands."""
    repo = tmp_path / "project"
    repo.mkdir()
    git("init", "-q", "-b", "main", cwd=repo)
    (repo / "README").write_text("hello\n")
    (repo / "keep.txt").write_text("keep\n")
    git("add", "-A", cwd=repo)
    git("commit", "-qm", "first", cwd=repo)
    return repo


@pytest.fixture
def debian_home(mux_home: Path) -> Path:
    Path(os.environ["MUX_CONFIG"]).write_text(
        f'[docker]\nimage = "{DEBIAN}"\npull = "never"\n'
        '[git]\nuser_name = "Agent"\nuser_email = "agent@example.com"\n')
    return mux_home


AGENT_WORK = r"""
set -e
git switch -qc agent/idea && echo idea > idea.txt && git add idea.txt && git commit -qm 'agent: idea'
git switch -q main
echo agent line >> README
git commit -qam 'agent: committed'
echo staged > staged.txt && git add staged.txt
echo unstaged >> keep.txt
echo brand new > untracked.txt
printf 'bell\007 esc\033[31mred\n' > hostile.txt
"""


def snapshot(repo: Path) -> dict[str, str]:
    """What must not change in the user's repository: branches, HEAD, index, config, hooks, files."""
    files = {}
    for p in sorted(repo.rglob("*")):
        rel = p.relative_to(repo)
        if p.is_file() and not str(rel).startswith((".git/objects", ".git/refs/remotes", ".git/logs/refs/remotes")) \
                and rel.name != "packed-refs":
            files[str(rel)] = hashlib.sha256(p.read_bytes()).hexdigest()
    files["branches"] = git("for-each-ref", "--format=%(refname) %(objectname)", "refs/heads/", cwd=repo)
    return files


def test_diff_shows_everything_the_agent_changed(debian_home, user_repo, unique_name) -> None:
    assert mux("new", "--repo", str(user_repo), unique_name).returncode == 0
    done = mux("exec", unique_name, "--", "sh", "-c", AGENT_WORK)
    assert done.returncode == 0, done.stderr
    out = mux("diff", unique_name)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    for needle in ("+agent line", "+staged", "+unstaged", "+brand new", "diff --git a/untracked.txt"):
        assert needle in text, needle
    assert "\x1b" not in text and "\x07" not in text and "\\x1b[31m" in text and "\\x07" in text
    assert "idea.txt" not in text  # another branch: not what the work tree changed (fetch brings it)
    stat = mux("diff", "--stat", unique_name)
    assert stat.returncode == 0 and "README" in stat.stdout and "untracked.txt" in stat.stdout
    assert "+agent line" not in stat.stdout
    narrowed = mux("diff", unique_name, "--", "untracked.txt")
    assert narrowed.returncode == 0 and "+brand new" in narrowed.stdout and "README" not in narrowed.stdout
    # Reading it changed nothing in the clone: the box mounts it read-only.
    assert git("status", "--porcelain", cwd=session_dir(unique_name) / "repo").count("??") == 2


def test_diff_and_fetch_run_no_git_of_the_agent_here(debian_home, user_repo, tmp_path, unique_name) -> None:
    canary = tmp_path / "canary"
    assert mux("new", "--repo", str(user_repo), unique_name).returncode == 0
    hostile = (f"git config core.fsmonitor 'touch {canary}; false' && "
               f"echo '* filter=evil diff=evil' > .git/info/attributes && "
               f"git config filter.evil.clean 'touch {canary}; cat' && "
               f"git config diff.evil.textconv 'touch {canary}; cat' && git config core.pager 'touch {canary}' && "
               f"git config uploadpack.packObjectsHook 'touch {canary}' && "
               "sleep 1 && touch README && echo x >> keep.txt && git commit -qam x")
    assert mux("exec", unique_name, "--", "sh", "-c", hostile).returncode == 0
    assert mux("diff", unique_name).returncode == 0
    assert mux("fetch", unique_name).returncode == 0
    assert mux("stop", unique_name).returncode == 0
    assert mux("diff", unique_name).returncode == 0  # stopped: the same box
    assert not canary.exists()


def test_fetch_brings_branches_into_quarantine_refs_only(debian_home, user_repo, unique_name) -> None:
    assert mux("new", "--repo", str(user_repo), "--branch", "main", unique_name).returncode == 0
    assert mux("exec", unique_name, "--", "sh", "-c", AGENT_WORK).returncode == 0
    before = snapshot(user_repo)
    head = git("rev-parse", "HEAD", cwd=user_repo)
    printed = mux("fetch", "--dry-run", unique_name)
    assert printed.returncode == 0, printed.stderr
    # Two commands: the box (its script is one quoted argument, over several lines) and host git.
    box, _, fetch = printed.stdout.rpartition("\ngit -C ")
    assert box.startswith("docker run --rm") and " > " in box.splitlines()[-1]
    assert fetch.startswith(f"{user_repo} -c transfer.fsckObjects=true")
    assert fetch.rstrip().endswith(f"'+refs/heads/*:refs/remotes/mux/{unique_name}/*'")
    assert git("for-each-ref", f"refs/remotes/mux/{unique_name}/", cwd=user_repo) == ""  # nothing fetched
    fetched = mux("fetch", unique_name)  # default: the local --repo source
    assert fetched.returncode == 0, fetched.stderr
    assert f"mux/{unique_name}/main" in fetched.stdout and f"mux/{unique_name}/agent/idea" in fetched.stdout
    refs = git("for-each-ref", "--format=%(refname)", "refs/remotes/mux/", cwd=user_repo).split()
    assert refs == [f"refs/remotes/mux/{unique_name}/agent/idea", f"refs/remotes/mux/{unique_name}/main"]
    assert git("log", "-1", "--format=%s", f"mux/{unique_name}/main", cwd=user_repo) == "agent: committed\n"
    assert snapshot(user_repo) == before and git("rev-parse", "HEAD", cwd=user_repo) == head
    assert git("merge", "-q", "--ff-only", f"mux/{unique_name}/main", cwd=user_repo) == ""  # the way back
    # Again, after the agent dropped a branch: the quarantine follows, nothing else moves.
    assert mux("exec", unique_name, "--", "git", "branch", "-qD", "agent/idea").returncode == 0
    assert mux("-q", "fetch", unique_name).returncode == 0
    refs = git("for-each-ref", "--format=%(refname)", "refs/remotes/mux/", cwd=user_repo).split()
    assert refs == [f"refs/remotes/mux/{unique_name}/main"]


def test_fetch_into_another_repository_and_the_current_directory(debian_home, user_repo, tmp_path,
                                                                  unique_name) -> None:
    assert mux("new", "--repo", str(user_repo), unique_name).returncode == 0
    assert mux("exec", unique_name, "--", "sh", "-c", AGENT_WORK).returncode == 0
    other = tmp_path / "other"
    git("clone", "-q", str(user_repo), str(other))
    assert mux("fetch", "--into", str(other), unique_name).returncode == 0
    assert git("rev-parse", f"mux/{unique_name}/agent/idea", cwd=other).strip()
    third = tmp_path / "third"
    git("clone", "-q", str(user_repo), str(third))
    assert mux("fetch", unique_name, cwd=third).returncode == 0  # a local --repo source comes first
    assert git("for-each-ref", "refs/remotes/mux/", cwd=third) == ""
    assert git("rev-parse", f"mux/{unique_name}/main", cwd=user_repo).strip()


@pytest.mark.parametrize("args, code, words", [
    (["fetch", "bad/name"], 2, "invalid session name"),
    (["diff", "bad/name"], 2, "invalid session name"),
    (["fetch", "nosuch"], 3, "no session named"),
    (["diff", "nosuch"], 3, "no session named"),
], ids=["fetch-bad-name", "diff-bad-name", "fetch-missing", "diff-missing"])
def test_bad_names_get_one_line(debian_home, args, code, words) -> None:
    out = mux(*args)
    assert out.returncode == code, out.stderr
    assert words in out.stderr and out.stderr.count("mux: error:") <= 1


def test_a_session_without_a_repository_gets_one_line(debian_home, tmp_path, unique_name) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    assert mux("new", "--workdir", str(plain), unique_name).returncode == 0
    for verb in ("diff", "fetch"):
        out = mux(verb, unique_name, cwd=tmp_path)
        assert out.returncode == 1 and "has no git repository" in out.stderr, out.stderr
        assert out.stderr.startswith("mux: error:") and len(out.stderr.splitlines()) <= 2


def test_fetch_refuses_the_data_dir_and_a_non_repository(debian_home, user_repo, tmp_path, unique_name) -> None:
    assert mux("new", "--repo", str(user_repo), unique_name).returncode == 0
    clone = session_dir(unique_name) / "repo"
    refused = mux("fetch", "--into", str(clone), unique_name)
    assert refused.returncode == 2 and "data dir" in refused.stderr
    nothing = tmp_path / "nothing"
    nothing.mkdir()
    refused = mux("fetch", "--into", str(nothing), unique_name)
    assert refused.returncode == 2 and "not a git repository" in refused.stderr


def test_diff_of_a_workdir_session_against_its_head_at_creation(debian_home, user_repo, tmp_path,
                                                                unique_name) -> None:
    assert mux("new", "--workdir", str(user_repo), unique_name).returncode == 0
    assert mux("exec", unique_name, "--", "sh", "-c", "echo from agent >> README").returncode == 0
    out = mux("diff", unique_name)
    assert out.returncode == 0 and "+from agent" in out.stdout, out.stderr
    # The agent commits into the session's own git directory (mux.workspace.protect), which the box reads.
    assert mux("exec", unique_name, "--", "git", "commit", "-qam", "agent: workdir commit").returncode == 0
    assert git("log", "-1", "--format=%s", cwd=user_repo) == "first\n"  # the user's .git: untouched
    mine = tmp_path / "mine"
    git("clone", "-q", str(user_repo), str(mine))
    fetched = mux("fetch", unique_name, cwd=mine)  # no --repo source: the repository here
    assert fetched.returncode == 0, fetched.stderr
    assert git("log", "-1", "--format=%s", f"mux/{unique_name}/main", cwd=mine) == "agent: workdir commit\n"
    out = mux("diff", unique_name)
    assert out.returncode == 0 and "+from agent" in out.stdout, out.stderr  # committed since its start


def test_diff_and_fetch_of_a_repository_the_agent_made(debian_home, tmp_path, unique_name) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    assert mux("new", "--workdir", str(plain), unique_name).returncode == 0
    work = "git init -q -b main && echo hi > a.txt && git add a.txt && git commit -qm 'agent: init'"
    assert mux("exec", unique_name, "--", "sh", "-c", work).returncode == 0
    out = mux("diff", unique_name, cwd=tmp_path)
    assert out.returncode == 0 and "+hi" in out.stdout, out.stderr
    mine = tmp_path / "mine"
    git("init", "-q", "-b", "main", str(mine))
    fetched = mux("fetch", unique_name, cwd=mine)
    assert fetched.returncode == 0, fetched.stderr
    assert git("log", "-1", "--format=%s", f"mux/{unique_name}/main", cwd=mine) == "agent: init\n"
