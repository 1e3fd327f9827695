"""The delete guard of a workdir session's own git directory, its fast parts: mux's
record of the refs that directory started with (hostile, oversized or malformed:
"cannot tell", so refused), what the guard makes of the box's records, and the box's
own script run here by sh and git over repositories this test made (the real engine
runs the same script in the git box: tests/integration/test_workdir_guard.py)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from mux.workspace import gitbox, guard, protect
from mux.workspace.protect import BASE_HEADER, BASE_LIMIT, parse_base, read_base

A, B = "a" * 40, "b" * 40
OWN = gitbox.Tree("s1", "bind", "/data/sessions/s1/git", "mux-test/debian", "1000:1000")


def test_a_record_lists_its_commits_once() -> None:
    text = f"{BASE_HEADER}\n{A} HEAD\n{A} refs/heads/main\n{B} refs/tags/v1\n"
    assert parse_base(text.encode()) == ([A, B], "")
    assert parse_base(f"{BASE_HEADER}\n".encode()) == ([], "")  # a repository with no commit yet
    assert parse_base(f"{BASE_HEADER}\n{'c' * 64} refs/heads/x\n".encode()).commits == ["c" * 64]  # sha256
    assert parse_base(f"{BASE_HEADER}\n= {'e' * 64}\n{A} HEAD\n".encode()) == ([A], "e" * 64)


@pytest.mark.parametrize("raw", [
    b"",
    f"{A} refs/heads/main\n".encode(),  # no header: not mux's record
    f"# mux git-base v2\n{A} HEAD\n".encode(),
    f"{BASE_HEADER}\n{A} HEAD".encode(),  # cut short: no last newline
    f"{BASE_HEADER}\n{A[:39]} HEAD\n".encode(),
    f"{BASE_HEADER}\n{A.upper()} HEAD\n".encode(),
    f"{BASE_HEADER}\n{A}  refs/heads/main\n".encode(),
    f"{BASE_HEADER}\n{A} refs/heads/a b\n".encode(),
    f"{BASE_HEADER}\n{A} refs/heads/../../x\n".encode(),
    f"{BASE_HEADER}\n{A} refs/heads/x.lock\n".encode(),
    f"{BASE_HEADER}\n{A} refs/heads/x\x1b[31m\n".encode(),
    f"{BASE_HEADER}\n{A} MERGE_HEAD\n".encode(),
    f"{BASE_HEADER}\n{A} refs/heads/é\n".encode(),  # not ascii
    f"{BASE_HEADER}\n{A} HEAD\r\n".encode(),
    f"{BASE_HEADER}\n\n".encode(),
    f"{BASE_HEADER}\n= {'e' * 63}\n{A} HEAD\n".encode(),  # a state that is no digest
    f"{BASE_HEADER}\n{A} HEAD\n= {'e' * 64}\n".encode(),  # a state out of place
], ids=lambda raw: repr(raw[-24:]))
def test_a_malformed_record_cannot_be_trusted(raw: bytes) -> None:
    with pytest.raises(ValueError):
        parse_base(raw)


def test_an_oversized_or_linked_record_cannot_be_trusted(tmp_path: Path) -> None:
    assert read_base(tmp_path) == ([], "")  # none made (an empty start, or an older mux): nothing counts as saved
    big = BASE_HEADER + "\n" + f"{A} refs/heads/main\n" * (BASE_LIMIT // 57 + 1)
    (tmp_path / protect.BASE_FILE).write_text(big)
    with pytest.raises(ValueError, match="larger"):
        read_base(tmp_path)
    (tmp_path / protect.BASE_FILE).unlink()
    (tmp_path / "elsewhere").write_text(f"{BASE_HEADER}\n{A} HEAD\n")
    (tmp_path / protect.BASE_FILE).symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ValueError):
        read_base(tmp_path)


def test_a_damaged_record_refuses_without_running_the_box(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mux import paths
    from mux.session.sessions import Session

    monkeypatch.setenv("MUX_DATA_DIR", str(tmp_path / "data"))
    directory = Path(paths.session_dir("s1"))
    (directory / protect.GIT_DIR).mkdir(parents=True)
    (directory / protect.GIT_DIR / "HEAD").write_text("ref: refs/heads/main\n")
    (directory / protect.BASE_FILE).write_text(f"{BASE_HEADER}\n{A} HEAD\nnot a ref\n")
    session = Session("s1", "docker", "stopped", "", str(tmp_path / "work"), "mux-test/debian", "mux-s1",
                      state="exited", id="c" * 64)

    class NoRunner:
        def query(self, *args: object, **kwargs: object) -> None:
            raise AssertionError("nothing may run for a record that cannot be trusted")

    found = guard.unsaved_work(NoRunner(), [session])  # type: ignore[arg-type]
    assert list(found) == ["s1"] and "cannot be read (a line is not a ref" in found["s1"][0]


def test_the_refs_state_changes_with_any_ref_and_gives_up_on_what_it_cannot_read(tmp_path: Path) -> None:
    own = tmp_path / "git"
    (own / "refs" / "heads").mkdir(parents=True)
    (own / "HEAD").write_text("ref: refs/heads/main\n")
    (own / "packed-refs").write_text(f"{A} refs/heads/main\n")
    (own / "index").write_bytes(b"staged")
    first = protect.refs_state(own)
    assert first is not None and protect.refs_state(own) == first
    (own / "index").write_bytes(b"staged again")  # not a ref: a workdir's staging is the user's files
    (own / "objects").mkdir()
    assert protect.refs_state(own) == first
    (own / "refs" / "heads" / "main").write_text(f"{B}\n")  # a commit moved main
    second = protect.refs_state(own)
    assert second not in (None, first)
    (own / "refs" / "heads" / "main").unlink()
    (own / "packed-refs").unlink()  # missing and empty differ
    (own / "packed-refs").write_text("")
    assert protect.refs_state(own) not in (None, first)
    (own / "packed-refs").write_text(f"{A} refs/heads/main\n")
    assert protect.refs_state(own) == first
    for name, make in (("commondir", lambda p: p.write_text("../x\n")), ("worktrees", Path.mkdir),
                       ("reftable", Path.mkdir), ("refs/heads/fifo", os.mkfifo),
                       ("refs/heads/link", lambda p: p.symlink_to("/etc/hostname")),
                       ("refs/tags", lambda p: p.symlink_to(tmp_path))):
        make(own / name)
        assert protect.refs_state(own) is None, name  # only the git box can tell
        (own / name).rmdir() if (own / name).is_dir() and not (own / name).is_symlink() else (own / name).unlink()
        assert protect.refs_state(own) == first, name


def rec(text: str) -> list[tuple[str, str]]:
    out = []
    for line in text.strip().splitlines():
        m = guard._RECORD.fullmatch(line)
        assert m is not None, line
        out.append((m.group(2), m.group(3) or ""))
    return out


@pytest.mark.parametrize("text, expected", [
    ("0 refs 3\n0 commits 0\n0 end", []),
    ("0 refs 3\n0 commits 1\n0 ref 1 refs/heads/main\n0 end", ["branch 'main': 1 commit not in your repository"]),
    ("0 refs 3\n0 commits 3\n0 ref 2 refs/tags/t\n0 ref 2 refs/stash\n0 detached 1\n0 end",
     ["tag 't': 2 commits not in your repository", "its stash (git stash list): 2 commits not in your repository",
      "detached HEAD: 1 commit not in your repository"]),
    ("0 refs 30\n0 commits 4\n0 ref 0 refs/heads/old\n0 end",
     ["its own git directory: 4 commits not in your repository"]),
    ("0 refs 1\n0 commits 1\n0 ref 1 refs/heads/a\x1b]0;x\x07\n0 end", ["a ref named 'refs/heads/a\\x1b]0;x\\x07', "
                                                                       "which git does not allow"]),
    ("0 refs 1\n0 commits 1\n0 ref x refs/heads/main\n0 end",
     ["branch 'main': cannot count its commits not in your repository"]),
    ("0 refs x fatal: bad\n0 commits 0\n0 end", ["cannot list the refs of its own git directory (fatal: bad); "
                                                 "cannot tell what would be lost"]),
    ("0 refs 1\n0 commits x fatal: bad object\n0 end",
     ["cannot count the commits of its own git directory (fatal: bad object); cannot tell what would be lost"]),
    ("0 refs 1\n0 commits 99999999999999\n0 end",
     ["cannot count the commits of its own git directory (no count); cannot tell what would be lost"]),
    ("0 refs 1\n0 end", ["the git box did not count the commits of its own git directory; it cannot tell what "
                         "would be lost"]),
    ("0 refs 1\n0 commits 0", ["the git box did not get through its own git directory; it cannot tell what would "
                               "be lost"]),
    ("0 top fatal: not a git repository", ["its own git directory cannot be checked as a git repository "
                                           "(not a git repository); its commits would be deleted"]),
    ("0 refs 1\n0 changes 5 0\n0 commits 0\n0 end",  # a clone's record in a workdir's answer: out of order
     ["the git box printed its checks out of order; it cannot tell what would be lost"]),
])
def test_own_reasons_fail_closed(text: str, expected: list[str]) -> None:
    assert guard.own_reasons(rec(text), OWN) == expected


def test_the_hint_names_the_way_back_for_a_workdir_sessions_commits() -> None:
    assert guard.refusal_hint([("s1", ["1 untracked file"])]) == guard.DEFAULT_HINT
    hint = guard.refusal_hint([("s1", ["1 untracked file"]), ("s2", ["branch 'main': 1 commit not in your "
                                                                     "repository"])])
    assert hint.startswith("`mux fetch s2` (in your repository)") and "--force" in hint
    both = guard.refusal_hint([(n, ["detached HEAD: 1 commit not in your repository"]) for n in ("a", "b")])
    assert "`mux fetch NAME`" in both


def test_the_box_reads_stdin_only_for_a_workdir_sessions_git_dir() -> None:
    clone = OWN._replace(key="c", source="/data/sessions/c/repo")
    assert guard.box_input([clone], {}) is None
    assert guard.box_input([clone, OWN], {"s1": [A, B]}) == f"1 own\n1 ^{A}\n1 ^{B}\n"
    assert guard.box_input([OWN], {"s1": []}) == "0 own\n"  # an empty start: every commit counts
    assert "-i" not in gitbox.box_argv(OWN.image, OWN.user, [clone], "true")
    argv = gitbox.box_argv(OWN.image, OWN.user, [OWN], "true", stdin=True)
    assert "-i" in argv[:argv.index("--entrypoint")]


# The box's script, run here by sh over repositories this test made (trusted input: not
# a session's), with the box's environment: what it prints is what the guard reads.
def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", "-c", "user.name=T", "-c", "user.email=t@e", *args], cwd=cwd, check=True,
                          capture_output=True, text=True).stdout.strip()


def run_script(root: Path, trees: list[Path], given: str | None) -> str:
    env = {"PATH": os.environ["PATH"], **dict(gitbox.GIT_ENV), "GIT_CEILING_DIRECTORIES": str(root),
           "GIT_CONFIG_COUNT": str(len(gitbox.GIT_CONFIG))}
    for i, (key, value) in enumerate(gitbox.GIT_CONFIG):
        env |= {f"GIT_CONFIG_KEY_{i}": key, f"GIT_CONFIG_VALUE_{i}": value}
    done = subprocess.run(["sh", "-c", gitbox.HARDEN + guard.SCRIPT, "gitbox", *map(str, trees)],
                          input=given or "", env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def boxed(tmp_path: Path) -> tuple[Path, Path, str]:
    """/r/0: a workdir session's git directory (bare copy of a user's repository, one
    commit of the agent's on top); its start (the user's commit)."""
    user = tmp_path / "user"
    user.mkdir()
    git("init", "-q", "-b", "main", cwd=user)
    git("commit", "-q", "--allow-empty", "-m", "user", cwd=user)
    start = git("rev-parse", "HEAD", cwd=user)
    root = tmp_path / "r"
    root.mkdir()
    own = root / "0"
    git("clone", "-q", "--bare", "--no-hardlinks", str(user), str(own), cwd=tmp_path)
    return root, own, start


def test_the_script_counts_only_commits_no_saved_ref_reaches(boxed: tuple[Path, Path, str]) -> None:
    root, own, start = boxed
    assert guard.own_reasons(rec(run_script(root, [own], f"0 own\n0 ^{start}\n")), OWN) == []
    tree = root / "w"
    git("worktree", "add", "-q", "--detach", str(tree), cwd=own)  # the agent's work, made here
    git("commit", "-q", "--allow-empty", "-m", "agent", cwd=tree)
    agents = git("rev-parse", "HEAD", cwd=tree)
    git("update-ref", "refs/heads/main", agents, cwd=tree)
    git("update-ref", "refs/tags/old", start, cwd=tree)  # on the saved commit: nothing new
    found = guard.own_reasons(rec(run_script(root, [own], f"0 own\n0 ^{start}\n")), OWN)
    assert found == ["branch 'main': 1 commit not in your repository"], found
    # What the user's repository now has (mux fetch's mux/NAME/main) vouches for it; a saved
    # commit the git directory lacks (the user's newer work) is no error.
    assert guard.own_reasons(rec(run_script(root, [own], f"0 own\n0 ^{start}\n0 ^{agents}\n0 ^{'d' * 40}\n")),
                             OWN) == []
    # Nothing saved at all (an empty start): every commit counts.
    assert guard.own_reasons(rec(run_script(root, [own], "0 own\n")), OWN) == [
        "branch 'main': 2 commits not in your repository", "tag 'old': 1 commit not in your repository"]


def test_one_box_reads_a_clone_and_a_workdir_git_dir_each_its_own_way(boxed: tuple[Path, Path, str]) -> None:
    root, own, start = boxed
    clone = root / "1"
    git("clone", "-q", str(own), str(clone), cwd=root)
    (clone / "scratch").write_text("x\n")
    out = run_script(root, [own, clone], f"0 own\n0 ^{start}\n")
    records = {n: rec("\n".join(ln for ln in out.splitlines() if ln.startswith(f"{n} "))) for n in ("0", "1")}
    assert guard.own_reasons(records["0"], OWN) == []
    assert guard.reasons(records["1"], OWN._replace(source=str(clone))) == ["1 untracked file"]
