"""mux.workspace.repo against real git: local bare repos, a smart-HTTP server on loopback, Docker.

No mocks. Repositories are made here with the git command line; the server is
``git http-backend`` (tests/integration/git_http.py) on 127.0.0.1.
"""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mux.errors import ConfigError, MuxError
from mux.session.hostfiles import remove_tree
from mux.workspace.repo import (
    ClonedRepo,
    RepoError,
    cache_path,
    clone,
    validate_branch,
)
from tests.conftest import ROOT, require_engine
from tests.integration.git_http import GitHTTPServer
from tests.unit.test_repo_validate import BAD_BRANCHES, GOOD_BRANCHES

PASSWORD = "s3cr3t-Pa55word"


def git(*args: str | os.PathLike[str], cwd: Path | None = None) -> str:
    out = subprocess.run(["git", *map(str, args)], cwd=cwd, capture_output=True, text=True)
    assert out.returncode == 0, f"git {args}: {out.stderr}"
    return out.stdout.strip()


@pytest.fixture(autouse=True)
def hermetic_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Own git config and data dir: the host's ~/.gitconfig must not change results."""
    config = tmp_path / "gitconfig"
    config.write_text("[user]\n\tname = Test\n\temail = test@example.com\n"
                      "[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n"
                      "[safe]\n\tdirectory = *\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.delenv("GIT_CONFIG_COUNT", raising=False)
    monkeypatch.setenv("MUX_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def make_origin(root: Path, name: str = "project.git", files: int = 150) -> Path:
    """A bare repo with branches main (default), feature, release/1.0 and a tag."""
    bare = root / name
    git("init", "--quiet", "--bare", bare)
    work = root / f"{name}-work"
    git("clone", "--quiet", bare, work)
    for i in range(files):
        # Incompressible-ish content, so a full clone costs the server real bytes;
        # over 100 objects, so git indexes the pack and reports "Receiving objects".
        (work / f"file{i:03}.txt").write_text(os.urandom(1500).hex())
    git("add", "-A", cwd=work)
    git("commit", "--quiet", "-m", "initial", cwd=work)
    (work / "README").write_text("second\n")
    git("add", "README", cwd=work)
    git("commit", "--quiet", "-m", "readme", cwd=work)
    git("tag", "v1", cwd=work)
    git("switch", "--quiet", "-c", "feature", cwd=work)
    (work / "feature.txt").write_text("feature\n")
    git("add", "feature.txt", cwd=work)
    git("commit", "--quiet", "-m", "feature", cwd=work)
    git("switch", "--quiet", "-c", "release/1.0", "main", cwd=work)
    git("push", "--quiet", "origin", "main", "feature", "release/1.0", "v1", cwd=work)
    return bare


def add_commit(bare: Path, branch: str, filename: str) -> str:
    work = bare.parent / f"{bare.name}-work"
    git("fetch", "--quiet", "origin", cwd=work)
    git("switch", "--quiet", "-C", branch, f"origin/{branch}", cwd=work)
    (work / filename).write_text(filename)
    git("add", filename, cwd=work)
    git("commit", "--quiet", "-m", f"add {filename}", cwd=work)
    git("push", "--quiet", "origin", branch, cwd=work)
    return git("rev-parse", "HEAD", cwd=work)


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    (tmp_path / "srv").mkdir()
    return make_origin(tmp_path / "srv")


@pytest.fixture
def server(origin: Path) -> Iterator[GitHTTPServer]:
    with GitHTTPServer(origin.parent) as srv:
        yield srv


@pytest.fixture
def auth_server(origin: Path) -> Iterator[GitHTTPServer]:
    with GitHTTPServer(origin.parent, auth=("alice", PASSWORD)) as srv:
        yield srv


def assert_independent_and_sound(repo: Path) -> None:
    assert not (repo / ".git/objects/info/alternates").exists()
    git("fsck", "--full", "--strict", cwd=repo)


def tree_mentions(root: Path, needle: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle.encode() in p.read_bytes()]


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir()) if parent.exists() else []


# -- branch names agree with git itself -------------------------------------------------


@pytest.mark.parametrize(
    "name", [pytest.param(p.values[0], id=p.id) for p in [*GOOD_BRANCHES, *BAD_BRANCHES]]
)
def test_branch_rules_agree_with_git_check_ref_format(name: str, tmp_path: Path) -> None:
    try:
        validate_branch(name)
        ours = True
    except ConfigError:
        ours = False
    # refs/heads/<name> is what a branch becomes. On top, like `git branch`, we
    # refuse a leading '-' and 'HEAD'; and '@', which git allows as a branch but
    # reads as HEAD in every revision argument.
    full = subprocess.run(["git", "check-ref-format", f"refs/heads/{name}"], cwd=tmp_path).returncode == 0
    theirs = full and not name.startswith("-") and name not in ("HEAD", "@")
    assert ours == theirs


def test_importing_mux_repo_does_not_import_gitpython() -> None:
    code = "import sys, mux.workspace.repo; mux.workspace.repo.clone_commands; print('git' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- cloning over HTTP ------------------------------------------------------------------------


def test_clone_default_branch_over_http(server: GitHTTPServer, origin: Path, tmp_path: Path) -> None:
    url = f"{server.url}/project.git"
    dest = tmp_path / "sessions/s1/repo"
    result = clone(url, dest, None, progress=False)
    assert result == ClonedRepo(dest, url, "main")
    assert git("rev-parse", "HEAD", cwd=dest) == git("rev-parse", "main", cwd=origin)
    assert git("remote", "get-url", "origin", cwd=dest) == url
    assert git("rev-parse", "--abbrev-ref", "@{upstream}", cwd=dest) == "origin/main"
    assert git("tag", cwd=dest) == "v1"
    assert (cache_path(url) / "HEAD").is_file()
    assert_independent_and_sound(dest)


def test_clone_existing_branch_tracks_it(server: GitHTTPServer, origin: Path, tmp_path: Path) -> None:
    dest = tmp_path / "repo"
    result = clone(f"{server.url}/project.git", dest, "feature", progress=False)
    assert result.branch == "feature"
    assert git("rev-parse", "HEAD", cwd=dest) == git("rev-parse", "feature", cwd=origin)
    assert git("rev-parse", "--abbrev-ref", "@{upstream}", cwd=dest) == "origin/feature"
    assert (dest / "feature.txt").is_file()


def test_clone_creates_a_missing_branch_from_the_default(
    server: GitHTTPServer, origin: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "repo"
    result = clone(f"{server.url}/project.git", dest, "agent/new-work", progress=False)
    assert result.branch == "agent/new-work"
    assert git("symbolic-ref", "--short", "HEAD", cwd=dest) == "agent/new-work"
    assert git("rev-parse", "HEAD", cwd=dest) == git("rev-parse", "main", cwd=origin)
    # New work has no upstream yet: a plain `git push` must not land on main.
    upstream = subprocess.run(["git", "rev-parse", "--abbrev-ref", "@{upstream}"], cwd=dest,
                              capture_output=True)
    assert upstream.returncode != 0
    assert "agent/new-work" not in git("branch", "-a", cwd=origin)


def test_progress_goes_to_stderr_only_when_asked(
    server: GitHTTPServer, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    clone(f"{server.url}/project.git", tmp_path / "quiet", None, progress=False)
    quiet = capfd.readouterr()
    remove_tree(cache_path(f"{server.url}/project.git"))  # so the next clone has work to show
    clone(f"{server.url}/project.git", tmp_path / "loud", None, progress=True)
    loud = capfd.readouterr()
    assert quiet.out == quiet.err == "" and loud.out == ""
    assert "Receiving objects" in loud.err or "Counting objects" in loud.err


def test_on_progress_reports_stages(server: GitHTTPServer, tmp_path: Path) -> None:
    seen: list[tuple[str, int, int | None]] = []
    clone(f"{server.url}/project.git", tmp_path / "r", None, progress=False,
          on_progress=lambda *a: seen.append(a))
    stages = {s for s, _, _ in seen}
    assert "Receiving objects" in stages
    assert any(total and cur == total for _, cur, total in seen)


# -- credentials ----------------------------------------------------------------------------


def test_clone_with_basic_auth_keeps_the_password_out_of_every_file(
    auth_server: GitHTTPServer, origin: Path, tmp_path: Path, hermetic_git: Path
) -> None:
    url = f"{auth_server.url_with_auth('alice', PASSWORD)}/project.git"
    public = f"{auth_server.url}/project.git"
    dest = tmp_path / "repo"
    result = clone(url, dest, "feature", progress=False)
    assert result.url == public and PASSWORD not in repr(result)
    assert git("remote", "get-url", "origin", cwd=dest) == public
    assert git("rev-parse", "HEAD", cwd=dest) == git("rev-parse", "feature", cwd=origin)
    assert tree_mentions(dest, PASSWORD) == []
    assert tree_mentions(hermetic_git, PASSWORD) == []  # the cache mirror


@pytest.mark.parametrize(
    "password", [pytest.param("wrong-" + PASSWORD, id="wrong-password"), pytest.param(None, id="none")]
)
def test_auth_failure_says_which_url_and_leaves_nothing(
    auth_server: GitHTTPServer, tmp_path: Path, password: str | None, hermetic_git: Path
) -> None:
    base = auth_server.url_with_auth("alice", password) if password else auth_server.url
    dest = tmp_path / "sessions/s1/repo"
    with pytest.raises(RepoError) as err:
        clone(f"{base}/project.git", dest, None, progress=True)
    text = f"{err.value.message} {err.value.hint}"
    assert err.value.message == f"authentication failed for {auth_server.url}/project.git"
    assert "credential" in (err.value.hint or "")
    assert "wrong-" not in text and PASSWORD not in text
    assert not (tmp_path / "sessions").exists()
    assert not cache_path(f"{auth_server.url}/project.git").exists()
    if hermetic_git.exists():
        assert tree_mentions(hermetic_git, PASSWORD) == []


# -- failures leave nothing -----------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("make_url", "message"),
    [
        pytest.param(lambda srv: f"http://127.0.0.1:{closed_port()}/project.git", "cannot reach",
                     id="unreachable"),
        pytest.param(lambda srv: f"{srv.url}/missing.git", "no git repository at", id="no-such-repo"),
        pytest.param(lambda srv: "ftp://127.0.0.1/project.git", "invalid repository", id="bad-scheme"),
        pytest.param(lambda srv: "/nonexistent/mux-test", "invalid repository", id="missing-path"),
    ],
)
def test_failed_clone_leaves_no_directory(
    server: GitHTTPServer, tmp_path: Path, make_url: object, message: str
) -> None:
    url = make_url(server)  # type: ignore[operator]
    with pytest.raises(RepoError) as err:
        clone(url, tmp_path / "sessions/s1/repo", None, progress=False)
    assert message in err.value.message and "\n" not in err.value.message
    assert not (tmp_path / "sessions").exists()


def test_missing_branch_name_is_rejected_before_cloning(server: GitHTTPServer, tmp_path: Path) -> None:
    with pytest.raises(RepoError, match="invalid branch name"):
        clone(f"{server.url}/project.git", tmp_path / "r", "bad..name", progress=False)
    assert server.requests == [] and not (tmp_path / "r").exists()


def test_existing_non_empty_destination_is_left_alone(origin: Path, tmp_path: Path) -> None:
    dest = tmp_path / "repo"
    dest.mkdir()
    (dest / "precious.txt").write_text("mine")
    with pytest.raises(RepoError, match="not empty"):
        clone(str(origin), dest, None, progress=False)
    assert (dest / "precious.txt").read_text() == "mine"


def test_empty_existing_destination_is_used(origin: Path, tmp_path: Path) -> None:
    dest = tmp_path / "repo"
    dest.mkdir()
    assert clone(str(origin), dest, None, progress=False).branch == "main"
    assert (dest / ".git").is_dir() and (dest / "README").is_file()
    assert [n for n in leftovers(tmp_path) if "partial" in n] == []


def test_interrupt_from_progress_callback_leaves_nothing(
    server: GitHTTPServer, tmp_path: Path
) -> None:
    url = f"{server.url}/project.git"

    def interrupt(stage: str, current: int, total: int | None) -> None:
        raise KeyboardInterrupt

    with pytest.raises(RepoError, match="interrupted"):
        clone(url, tmp_path / "sessions/s1/repo", None, progress=False, on_progress=interrupt)
    assert not (tmp_path / "sessions").exists()
    assert not cache_path(url).exists()  # a mirror that never got its objects is dropped
    # and the next attempt is unaffected
    assert clone(url, tmp_path / "again", None, progress=False).branch == "main"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_during_clone_leaves_nothing(
    server: GitHTTPServer, tmp_path: Path, signum: int
) -> None:
    """A real signal to a real mux process while the server holds the fetch open."""
    dest = tmp_path / "sessions/s1/repo"
    code = ("import sys; from pathlib import Path; from mux.workspace.repo import clone, RepoError\n"
            "try: clone(sys.argv[1], Path(sys.argv[2]), None, progress=False)\n"
            "except RepoError as e: print(e.message); sys.exit(e.exit_code)\n")
    server.hold_uploads()
    proc = subprocess.Popen([sys.executable, "-c", code, f"{server.url}/project.git", str(dest)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.upload_waiting.wait(60), "the clone never reached the server"
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
        # git's HTTP helper, still waiting on the held request, must be gone too
        # (it would otherwise write the pack into a directory being removed).
        stray = processes_mentioning(server.url)
        for _ in range(100):
            if not stray:
                break
            time.sleep(0.1)  # SIGKILL is delivered asynchronously
            stray = processes_mentioning(server.url)
    finally:
        server.release()
        proc.kill()
    assert proc.returncode == 130, err  # an interrupt is 130 wherever it lands
    assert "interrupted" in out
    assert not (tmp_path / "sessions").exists()
    assert stray == []


def processes_mentioning(text: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmdline:
                found.append(cmdline)
    return found


# -- local sources --------------------------------------------------------------------------


def test_local_path_clone_shares_no_file_and_keeps_origin(origin: Path, tmp_path: Path) -> None:
    dest = tmp_path / "repo"
    result = clone(str(origin), dest, "feature", progress=False)
    assert result == ClonedRepo(dest, str(origin), "feature")
    assert git("remote", "get-url", "origin", cwd=dest) == str(origin)
    source_inodes = {p.stat().st_ino for p in origin.rglob("*") if p.is_file()}
    clone_files = [p for p in (dest / ".git").rglob("*") if p.is_file()]
    assert clone_files and not [p for p in clone_files if p.stat().st_ino in source_inodes], \
        "the session's clone must share no file (no hardlinked object) with the user's repository"
    assert not (Path(os.environ["MUX_DATA_DIR"]) / "cache").exists()
    assert_independent_and_sound(dest)


@pytest.mark.parametrize(("branch", "expected"), [("release/1.0", "release/1.0"), ("fresh", "fresh"),
                                                  (None, "main")])
def test_file_url_clone(origin: Path, tmp_path: Path, branch: str | None, expected: str) -> None:
    url = f"file://{origin}"
    dest = tmp_path / "repo"
    result = clone(url, dest, branch, progress=False)
    assert result.branch == expected and result.url == url
    assert git("remote", "get-url", "origin", cwd=dest) == url
    start = "release/1.0" if branch == "release/1.0" else "main"
    assert git("rev-parse", "HEAD", cwd=dest) == git("rev-parse", start, cwd=origin)


# -- the cache ------------------------------------------------------------------------------


def test_second_clone_uses_the_cache_and_is_independent(
    server: GitHTTPServer, origin: Path, tmp_path: Path
) -> None:
    url = f"{server.url}/project.git"
    first = clone(url, tmp_path / "one", None, progress=False).path
    first_cost = server.bytes_sent()
    new_head = add_commit(origin, "main", "later.txt")  # the cache must not serve stale refs
    second = clone(url, tmp_path / "two", None, progress=False).path
    second_cost = server.bytes_sent() - first_cost
    assert git("rev-parse", "HEAD", cwd=second) == new_head
    assert (second / "later.txt").is_file()
    assert git("rev-parse", "main", cwd=cache_path(url)) == new_head
    assert second_cost * 5 < first_cost, (first_cost, second_cost)
    remove_tree(cache_path(url))
    for repo in (first, second):
        assert_independent_and_sound(repo)
        assert git("log", "--oneline", cwd=repo)


def test_concurrent_clones_share_one_cache_safely(
    server: GitHTTPServer, origin: Path, tmp_path: Path
) -> None:
    url = f"{server.url}/project.git"
    results: dict[str, object] = {}

    def run(name: str, branch: str | None) -> None:
        try:
            results[name] = clone(url, tmp_path / name, branch, progress=False)
        except BaseException as exc:  # noqa: B036 - reported by the assertion below
            results[name] = exc

    server.hold_uploads()  # both start before either can finish its fetch
    threads = [threading.Thread(target=run, args=(f"c{i}", b))
               for i, b in enumerate(["feature", None, "agent/x", "release/1.0"])]
    for t in threads:
        t.start()
    assert server.upload_waiting.wait(60)
    server.release()
    for t in threads:
        t.join(120)
    assert all(isinstance(r, ClonedRepo) for r in results.values()), results
    assert len(results) == 4
    git("fsck", "--full", "--strict", cwd=cache_path(url))
    for name, expected in [("c0", "feature"), ("c1", "main"), ("c2", "main"), ("c3", "release/1.0")]:
        assert_independent_and_sound(tmp_path / name)
        assert git("rev-parse", "HEAD", cwd=tmp_path / name) == git("rev-parse", expected, cwd=origin)


# -- unsaved work (the guard's checks, run by git in the git box: a real engine) ------------


def unsaved_work(path: Path) -> list[str]:
    """What `mux delete` would say about a clone at ``path``: the git box's answer."""
    from mux.engine.runner import Runner
    from mux.workspace import gitbox, guard

    require_engine()
    if not path.exists():
        return []
    st = path.lstat()
    tree = gitbox.Tree("t", "bind", str(path), IMAGE, f"{st.st_uid}:{st.st_gid}")
    return guard.check(Runner(), [tree])["t"]



def _modify(r: Path) -> None:
    (r / "README").write_text("changed\n")


def _stage_new(r: Path) -> None:
    (r / "new.txt").write_text("x")
    git("add", "new.txt", cwd=r)


def _untracked(r: Path) -> None:
    (r / "notes").mkdir()
    (r / "notes/a.md").write_text("a")
    (r / "notes/b.md").write_text("b")


def _commit(r: Path, name: str = "c.txt") -> None:
    (r / name).write_text(name)
    git("add", name, cwd=r)
    git("commit", "--quiet", "-m", name, cwd=r)


def _commit_and_push(r: Path) -> None:
    _commit(r)
    git("push", "--quiet", "origin", "HEAD", cwd=r)


def _new_branch_with_commits(r: Path) -> None:
    git("switch", "--quiet", "-c", "agent/idea", cwd=r)
    _commit(r, "one")
    _commit(r, "two")
    git("switch", "--quiet", "main", cwd=r)


def _new_branch_pushed(r: Path) -> None:
    _new_branch_with_commits(r)
    git("push", "--quiet", "origin", "agent/idea", cwd=r)


def _stash(r: Path) -> None:
    _modify(r)
    git("stash", "--quiet", cwd=r)


def _detached_commit(r: Path) -> None:
    git("switch", "--quiet", "--detach", "HEAD", cwd=r)
    _commit(r)


def _ignored_file(r: Path) -> None:
    (r / ".git/info/exclude").write_text("build/\n")
    (r / "build").mkdir()
    (r / "build/out.o").write_text("x")


@pytest.mark.usefixtures("images")
@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        pytest.param(lambda r: None, [], id="clean"),
        pytest.param(_modify, ["1 file with uncommitted changes"], id="modified"),
        pytest.param(_stage_new, ["1 file with uncommitted changes"], id="staged"),
        pytest.param(_untracked, ["2 untracked files"], id="untracked"),
        pytest.param(_commit, ["branch 'main': 1 commit not on any remote branch"], id="unpushed"),
        pytest.param(_commit_and_push, [], id="pushed"),
        pytest.param(_new_branch_with_commits, ["branch 'agent/idea': 2 commits not on any remote branch"],
                     id="new-branch-never-pushed"),
        pytest.param(_new_branch_pushed, [], id="new-branch-pushed"),
        pytest.param(lambda r: git("branch", "empty-branch", cwd=r), [], id="new-branch-no-commits"),
        pytest.param(_stash, ["1 stash (git stash list)"], id="stash"),
        pytest.param(_detached_commit, ["detached HEAD: 1 commit not on any branch"], id="detached"),
        pytest.param(_ignored_file, [], id="ignored-files-do-not-count"),
        pytest.param(lambda r: (_modify(r), _untracked(r), _commit(r, "z"), _stash(r)),
                     ["2 untracked files", "branch 'main': 1 commit not on any remote branch",
                      "1 stash (git stash list)"], id="several"),
    ],
)
def test_unsaved_work(origin: Path, tmp_path: Path, setup: object, expected: list[str]) -> None:
    repo = clone(str(origin), tmp_path / "repo", None, progress=False).path
    setup(repo)  # type: ignore[operator]
    assert unsaved_work(repo) == expected


def test_unsaved_work_of_a_missing_clone_is_nothing(tmp_path: Path) -> None:
    assert unsaved_work(tmp_path / "gone") == []


@pytest.mark.usefixtures("images")
@pytest.mark.parametrize(
    "break_it",
    [
        pytest.param(lambda r: remove_tree(r / ".git"), id="no-git-dir"),
        pytest.param(lambda r: (r / ".git/HEAD").unlink(), id="no-HEAD"),
        pytest.param(lambda r: (r / ".git/HEAD").write_text("garbage\n"), id="bad-HEAD"),
    ],
)
def test_unsaved_work_of_a_broken_clone_refuses_to_vouch(
    origin: Path, tmp_path: Path, break_it: object
) -> None:
    repo = clone(str(origin), tmp_path / "repo", None, progress=False).path
    break_it(repo)  # type: ignore[operator]
    reasons = unsaved_work(repo)
    assert len(reasons) == 1 and "cannot be checked as a git repository" in reasons[0]


def _drop_object(r: Path, rev: str) -> None:
    sha = git("rev-parse", rev, cwd=r).strip()
    (r / ".git" / "objects" / sha[:2] / sha[2:]).unlink()


def _stash_object_lost(r: Path) -> None:
    _stash(r)
    _drop_object(r, "refs/stash")


def _unpushed_object_lost(r: Path) -> None:
    _new_branch_with_commits(r)
    _drop_object(r, "agent/idea")


def _packed_refs_garbage(r: Path) -> None:
    with open(r / ".git" / "packed-refs", "a") as f:
        f.write("garbage line\n")


@pytest.mark.usefixtures("images")
@pytest.mark.parametrize(
    ("break_it", "expected"),
    [
        # Each of these used to read as "nothing to lose" for the part git could not read.
        pytest.param(_stash_object_lost, ["cannot list its stashes (fatal: bad object refs/stash); "
                                          "a stash would be lost unseen"], id="stash-unreadable"),
        pytest.param(_unpushed_object_lost, ["branch 'agent/idea': cannot count its unpushed commits"],
                     id="branch-history-unreadable"),
        pytest.param(_packed_refs_garbage, ["git status failed", "cannot list its branches",
                                            "cannot list its stashes"], id="refs-unreadable"),
    ],
)
def test_unsaved_work_fails_closed_on_a_corrupt_clone(
    origin: Path, tmp_path: Path, break_it: object, expected: list[str]
) -> None:
    repo = clone(str(origin), tmp_path / "repo", None, progress=False).path
    break_it(repo)  # type: ignore[operator]
    reasons = unsaved_work(repo)
    assert len(reasons) == len(expected) and all(r.startswith(e) for r, e in zip(reasons, expected)), reasons


@pytest.mark.usefixtures("images")
def test_unsaved_work_of_a_clone_owned_by_another_user(origin: Path, tmp_path: Path) -> None:
    repo = clone(str(origin), tmp_path / "repo", None, progress=False).path
    _commit(repo)
    _modify(repo)
    for p in [repo, *repo.rglob("*")]:
        os.lchown(p, 4242, 4242)  # as the container's user would leave it
    assert unsaved_work(repo) == ["1 file with uncommitted changes",
                                  "branch 'main': 1 commit not on any remote branch"]
    # Looking wrote nothing (the box mounts it read-only): every file still belongs to the user.
    assert {p.stat().st_uid for p in [repo, *repo.rglob("*")]} == {4242}


# -- removal --------------------------------------------------------------------------------


def test_remove_clone_as_the_owner_with_read_only_files_and_dirs(origin: Path, tmp_path: Path,
                                                                 traversable_python: None) -> None:
    """Run as a non-root uid (root ignores permissions), in a child process of that uid
    (a new interpreter, not a fork: forking a multithreaded pytest can deadlock)."""
    base = Path("/tmp") / f"mux-rm-{os.getpid()}-{tmp_path.name}"
    base.mkdir(mode=0o755)
    try:
        repo = clone(str(origin), base / "repo", None, progress=False).path
        (repo / "locked/deeper").mkdir(parents=True)
        (repo / "locked/deeper/f").write_text("x")
        for p in [base, repo, *repo.rglob("*")]:
            os.lchown(p, 4242, 4242)
        for d in (repo / "locked/deeper", repo / "locked", repo / ".git/objects"):
            os.chmod(d, 0o555)
        code = ("import sys; from pathlib import Path; from mux.session.hostfiles import remove_tree; "
                "remove_tree(Path(sys.argv[1]))")
        child = subprocess.run([sys.executable, "-c", code, str(repo)], user=4242, group=4242,
                               extra_groups=[], capture_output=True, text=True, timeout=120)
        assert child.returncode == 0, child.stderr
        assert not repo.exists()
    finally:
        subprocess.run(["rm", "-rf", str(base)], check=False)


def test_remove_clone_of_missing_path_and_symlink(tmp_path: Path) -> None:
    remove_tree(tmp_path / "missing")
    target = tmp_path / "target"
    target.mkdir()
    (target / "keep").write_text("x")
    (tmp_path / "link").symlink_to(target)
    remove_tree(tmp_path / "link")
    assert not (tmp_path / "link").exists() and (target / "keep").exists()


def test_remove_clone_refuses_the_data_dir(hermetic_git: Path) -> None:
    hermetic_git.mkdir(parents=True)
    with pytest.raises(MuxError, match="refusing"):
        remove_tree(hermetic_git)
    assert hermetic_git.exists()


# -- inside a real container ----------------------------------------------------------------

IMAGE = "mux-test/debian"
CONTAINER_SCRIPT = """
set -e
cd /workspace
git log --oneline -1
echo from-agent > agent.txt
git add agent.txt
git commit -q -m "from the container"
git push -q origin HEAD:refs/heads/agent/docker
id -u
"""


@pytest.fixture(scope="module")
def docker_engine() -> None:
    require_engine()
    subprocess.run(["bash", str(ROOT / "tests" / "images" / "build.sh")], check=True)  # makes IMAGE


def _uids() -> list[object]:
    uids = [pytest.param(os.getuid(), id="host-uid")]
    if os.getuid() == 0:  # root on this host: also check the ordinary-user case
        uids.append(pytest.param(4242, id="non-root-uid"))
    return uids


@pytest.mark.docker
@pytest.mark.parametrize("uid", _uids())
def test_clone_works_inside_a_container_as_the_host_user(
    docker_engine: None, origin: Path, tmp_path: Path, uid: int
) -> None:
    url = f"file://{origin}"
    repo = clone(url, tmp_path / "repo", "agent/docker", progress=False).path
    for p in [repo, *repo.rglob("*"), origin, *origin.rglob("*")]:
        os.lchown(p, uid, uid)  # what the files look like when the host user made them
    os.chmod(tmp_path, os.stat(tmp_path).st_mode | stat.S_IXOTH)
    config = {"safe.directory": "/workspace", "user.name": "Agent Smith", "user.email": "agent@example.com"}
    env = [f"GIT_CONFIG_COUNT={len(config)}"]
    for i, (key, value) in enumerate(config.items()):
        env += [f"GIT_CONFIG_KEY_{i}={key}", f"GIT_CONFIG_VALUE_{i}={value}"]
    argv = ["docker", "run", "--rm", "--pull", "never", "-u", f"{uid}:{uid}", "-e", "HOME=/tmp",
            *[a for e in env for a in ("-e", e)],
            "-v", f"{repo}:/workspace", "-v", f"{origin}:{origin}", "-w", "/workspace",
            IMAGE, "bash", "-c", CONTAINER_SCRIPT]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-1] == str(uid)
    pushed = git("log", "-1", "--format=%an <%ae> %s", "agent/docker", cwd=origin)
    assert pushed == "Agent Smith <agent@example.com> from the container"
    assert (repo / "agent.txt").stat().st_uid == uid
    assert unsaved_work(repo) == []  # the push is recorded: deleting would lose nothing
