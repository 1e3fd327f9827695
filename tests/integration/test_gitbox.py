"""A session is an untrusted remote: no host git ever opens its clone.

Each attack is written by a script inside a real --repo session (the agent's own
writes), aimed at a canary file on this machine that host git would create.
`mux delete` (and `--all`) read the clone only through the git box, a throwaway
container on the session's engine, so the canary must never appear.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import DEBIAN, docker, mux, session_dir
from tests.integration.test_repo_sessions import git

pytestmark = pytest.mark.docker


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    seed = tmp_path / "seed"
    seed.mkdir()
    git("init", "-q", "-b", "main", cwd=seed)
    (seed / "README").write_text("hello\n")
    git("add", "README", cwd=seed)
    git("commit", "-qm", "first", cwd=seed)
    bare = tmp_path / "origin.git"
    git("clone", "-q", "--bare", str(seed), str(bare))
    return bare


@pytest.fixture
def debian_home(mux_home: Path) -> Path:
    Path(os.environ["MUX_CONFIG"]).write_text(
        f'[docker]\nimage = "{DEBIAN}"\npull = "never"\n'
        '[git]\nuser_name = "Agent"\nuser_email = "agent@example.com"\n')
    return mux_home


# What a hostile agent writes into its own clone; CANARY is a path on this machine.
ATTACKS = {
    "fsmonitor": 'git config core.fsmonitor "touch CANARY; false"',
    "clean-filter": ("echo '* filter=evil diff=evil' > .git/info/attributes && "
                     'git config filter.evil.clean "touch CANARY; cat" && '
                     'git config filter.evil.process "touch CANARY" && '
                     'git config diff.evil.textconv "touch CANARY; cat" && '
                     "sleep 1 && touch README"),  # same size, new mtime: git re-reads it through the filter
    "commondir": ("cp -r .git .evil && git config -f .evil/config core.fsmonitor 'touch CANARY; false' && "
                  "echo ../.evil > .git/commondir"),
    "hooks-and-pager": ("printf '#!/bin/sh\\ntouch CANARY\\n' > .git/hooks/post-index-change && "
                        "chmod +x .git/hooks/post-index-change && "
                        "git config core.pager 'touch CANARY; cat' && git config diff.external 'touch CANARY' && "
                        "git config core.hooksPath .git/hooks && git config log.showSignature true && "
                        "git config gpg.program 'touch CANARY'"),
}


def hostile_session(name: str, origin: Path, canary: Path, attack: str) -> Path:
    assert mux("new", "--repo", str(origin), name).returncode == 0
    done = mux("exec", name, "--", "sh", "-c", ATTACKS[attack].replace("CANARY", str(canary)))
    assert done.returncode == 0, done.stderr
    return session_dir(name) / "repo"


@pytest.mark.parametrize("attack", sorted(ATTACKS))
@pytest.mark.parametrize("how", ["name", "all"])
def test_delete_runs_no_git_of_the_agent_here(debian_home, origin, tmp_path, unique_name, attack, how) -> None:
    canary = tmp_path / "canary"
    hostile_session(unique_name, origin, canary, attack)
    assert mux("stop", unique_name).returncode == 0
    deleted = mux("delete", *([unique_name] if how == "name" else ["--all"]))
    assert not canary.exists(), f"the agent's {attack} ran on this machine"
    assert deleted.returncode in (0, 1), deleted.stderr
    assert len(deleted.stderr.splitlines()) <= 2  # one error line and its hint at most
    assert mux("delete", "--force", unique_name).returncode in (0, 3)
    assert not canary.exists()


def test_a_running_session_is_refused_before_its_clone_is_read(debian_home, origin, tmp_path, unique_name) -> None:
    canary = tmp_path / "canary"
    hostile_session(unique_name, origin, canary, "fsmonitor")
    refused = mux("delete", unique_name)
    assert refused.returncode == 1 and "it is running" in refused.stderr
    assert not canary.exists()
    refused = mux("delete", "--all")
    assert refused.returncode == 1 and not canary.exists()
    assert mux("delete", "--force", unique_name).returncode == 0


def test_delete_all_uses_one_git_box_for_every_session(debian_home, origin, tmp_path, unique_name) -> None:
    names = [f"{unique_name}a", f"{unique_name}b", f"{unique_name}c"]
    for name in names:
        assert mux("new", "--repo", str(origin), name).returncode == 0
        assert mux("stop", name).returncode == 0
    mux("exec", names[1], check=False)  # stopped: refused, nothing changes
    (session_dir(names[1]) / "repo" / "scratch.txt").write_text("agent's work\n")
    # Any git run here (GitPython's too) is this one first on PATH: it leaves a mark.
    bin_dir, mark = tmp_path / "bin", tmp_path / "host-git-ran"
    bin_dir.mkdir()
    (bin_dir / "git").write_text(f'#!/bin/sh\ntouch {mark}\nexec /usr/bin/git "$@"\n')
    (bin_dir / "git").chmod(0o755)
    out = mux("-v", "delete", "--all", env={"PATH": f"{bin_dir}:{os.environ['PATH']}"})
    assert not mark.exists(), "mux delete ran git on this machine"
    assert out.returncode == 1 and f"{names[1]}: 1 untracked file" in out.stderr, out.stderr
    runs = [ln for ln in out.stderr.splitlines() if ln.startswith("+ docker run")]
    assert len(runs) == 1, runs
    for flag in ("--network none", "--cap-drop ALL", "--security-opt no-new-privileges", "--read-only"):
        assert flag in runs[0]
    assert not any(ln.startswith("+ git") for ln in out.stderr.splitlines())
    left = {s["name"] for s in json.loads(mux("list", "--json", check=True).stdout)}
    assert left == {names[1]}
    assert mux("delete", "--force", names[1]).returncode == 0


@pytest.mark.parametrize("mess, reason", [
    ("echo more >> README", "1 file with uncommitted changes"),
    ("echo new > scratch.txt", "1 untracked file"),
    ("echo c > c.txt && git add c.txt && git commit -qm c", "': 1 commit not on any remote branch"),
    ("echo s >> README && git stash -q", "1 stash"),
    ("git switch -q --detach && echo d > d && git add d && git commit -qm d",
     "detached HEAD: 1 commit not on any branch"),
], ids=["uncommitted", "untracked", "unpushed", "stash", "detached"])
def test_the_git_box_finds_unsaved_work(debian_home, origin, unique_name, mess, reason) -> None:
    assert mux("new", "--repo", str(origin), unique_name).returncode == 0
    assert mux("exec", unique_name, "--", "sh", "-c", mess).returncode == 0
    assert mux("stop", unique_name).returncode == 0
    refused = mux("delete", unique_name)
    assert refused.returncode == 1 and reason in refused.stderr, refused.stderr
    assert (session_dir(unique_name) / "repo").is_dir()
    assert mux("delete", "--force", unique_name).returncode == 0


def test_an_image_without_git_refuses_without_force(mux_home, origin, unique_name) -> None:
    # The session's image is the git box's: busybox has no git, so nothing can vouch.
    assert mux("new", "--repo", str(origin), unique_name).returncode == 0
    assert mux("stop", unique_name).returncode == 0
    refused = mux("delete", unique_name)
    assert refused.returncode == 1, refused.stderr
    assert "no git" in refused.stderr and "--force" in refused.stderr
    assert (session_dir(unique_name) / "repo").is_dir()
    assert mux("delete", "--force", unique_name).returncode == 0
    assert docker("container", "inspect", f"mux-{unique_name}", check=False).returncode != 0


def test_an_engine_that_does_not_answer_deletes_nothing(debian_home, origin, tmp_path, unique_name) -> None:
    assert mux("new", "--repo", str(origin), unique_name).returncode == 0
    assert mux("stop", unique_name).returncode == 0
    down = mux("delete", unique_name, env={"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"})
    assert down.returncode == 4 and down.stderr.startswith("mux: error:"), down.stderr
    assert (session_dir(unique_name) / "repo").is_dir()
    assert mux("delete", unique_name).returncode == 0  # clean: the git box vouches for it
