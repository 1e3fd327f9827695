"""The git box's pure parts: its argv, the guard's reading of what the box prints
(untrusted: anything off-pattern is a refusal), bundle headers, start commits."""

from __future__ import annotations

from pathlib import Path

import pytest

from mux.errors import ConfigError, MuxError
from mux.workspace import gitbox, guard
from mux.workspace.diff import pathspecs
from mux.workspace.fetch import bundle_refs, fetch_argv
from mux.workspace.heads import head_commit

TREE = gitbox.Tree("s1", "bind", "/data/sessions/s1/repo", "mux-test/debian", "1000:1000")
SHA = "a" * 40


def test_box_argv_is_offline_read_only_unprivileged_and_hardened() -> None:
    argv = gitbox.box_argv(TREE.image, TREE.user, [TREE, TREE._replace(kind="volume", source="mux-s2-workspace")],
                           "true", ["x"])
    joined = " ".join(argv)
    for flag in ("--rm", "--network none", "--cap-drop ALL", "--security-opt no-new-privileges", "--read-only",
                 "--pull never", "-u 1000:1000", "--log-driver none", "--entrypoint /bin/sh",
                 "-e GIT_CONFIG_NOSYSTEM=1", "-e GIT_CONFIG_GLOBAL=/dev/null", "-e GIT_CEILING_DIRECTORIES=/r"):
        assert flag in joined, flag
    assert "type=bind,source=/data/sessions/s1/repo,target=/r/0,readonly" in argv
    assert "type=volume,source=mux-s2-workspace,target=/r/1,readonly,volume-nocopy" in argv
    assert argv[-3:] == ["/r/0", "/r/1", "x"]
    config = dict(zip(argv[argv.index("-e") + 1::2], argv[argv.index("-e") + 2::2]))
    keys = {v.split("=", 1)[1] for k, v in zip(argv, argv[1:]) if k == "-e" and v.startswith("GIT_CONFIG_KEY_")}
    assert {"core.fsmonitor", "core.hooksPath", "diff.external", "protocol.allow", "safe.directory"} <= keys
    assert config  # -e pairs are there


def test_escape_keeps_tab_and_newline_only() -> None:
    assert gitbox.escape("a\tb\nc\x1b[31m\x07\x9b\r") == "a\tb\nc\\x1b[31m\\x07\\x9b\\x0d"
    assert gitbox.escape("x\u202ey é") == "x\\u202ey é"


def records(text: str) -> list[tuple[str, str]]:
    return [(k, v) for k, _, v in (line.partition(" ") for line in text.splitlines())]


@pytest.mark.parametrize("text, expected", [
    ("changes 0 0\nheads 1\nbranch 0 refs/heads/main\nstash 0\nend", []),
    ("changes 2 1\nheads 1\nbranch 3 refs/heads/main\ndetached 1\nstash 2\nend",
     ["2 files with uncommitted changes", "1 untracked file", "branch 'main': 3 commits not on any remote branch",
      "detached HEAD: 1 commit not on any branch", "2 stashes (git stash list)"]),
    ("changes x fatal: bad index\nheads 0\nstash 0\nend", ["git status failed (fatal: bad index)"]),
    ("changes 0 0\nheads 1\nbranch 0 refs/heads/a\x1b]0;pwn\nstash 0\nend", ["a branch named"]),
    ("changes 0 0\nheads 5000\nstash 0\nend", ["5000 branches, more than"]),
    ("changes 0 0\nheads 1", ["the git box did not get through"]),
    ("top fatal: not a git repository", ["its clone cannot be checked as a git repository (not a git repository)"]),
    ("changes 1e9 0\nheads 0\nstash 0\nend", ["git status printed no counts"]),
    ("changes 0 0\nend\nend", ["the git box printed its checks out of order"]),
], ids=["clean", "everything", "status-failed", "hostile-branch", "too-many-branches", "cut-short",
        "not-a-repo", "not-a-number", "twice"])
def test_guard_reasons_fail_closed(text: str, expected: list[str]) -> None:
    found = guard.reasons(records(text), TREE)
    assert len(found) == len(expected) and all(f.startswith(e) for f, e in zip(found, expected)), found
    assert not any("\x1b" in f for f in found)


def test_bundle_header_is_read_and_checked(tmp_path: Path) -> None:
    good = tmp_path / "good"
    good.write_bytes(f"# v2 git bundle\n{SHA} refs/heads/main\n{SHA} refs/heads/agent/x\n\nPACK...".encode())
    assert bundle_refs(good) == [(SHA, "main"), (SHA, "agent/x")]
    for bad in (f"# v2 git bundle\n{SHA} refs/tags/v1\n\nPACK", f"# v2 git bundle\n-{SHA} prereq\n\nPACK",
                "not a bundle\n\n", f"# v2 git bundle\n{SHA} refs/heads/a..b\n\n", "# v2 git bundle\n"):
        (tmp_path / "bad").write_bytes(bad.encode())
        with pytest.raises(MuxError, match="nothing was fetched"):
            bundle_refs(tmp_path / "bad")


def test_fetch_writes_only_quarantine_refs() -> None:
    argv = fetch_argv(Path("/home/u/app"), Path("/tmp/x/s1.bundle"), "s1")
    assert argv[:3] == ["git", "-C", "/home/u/app"] and "transfer.fsckObjects=true" in argv
    assert argv[-1] == "+refs/heads/*:refs/remotes/mux/s1/*" and "--no-write-fetch-head" in argv
    assert argv[-2] == "/tmp/x/s1.bundle" and argv[-3] == "--"


def test_pathspecs_are_literal_and_inside_the_workspace() -> None:
    assert pathspecs(["src", "/workspace/a b", ":(glob)*"]) == [":(literal)src", ":(literal)a b",
                                                                 ":(literal):(glob)*"]
    with pytest.raises(ConfigError):
        pathspecs(["/etc/passwd"])


def test_head_commit_from_files_only(tmp_path: Path) -> None:
    git_dir = tmp_path / ".git"
    (git_dir / "refs/heads").mkdir(parents=True)
    (git_dir / "HEAD").write_text("ref: refs/heads/main\n")
    assert head_commit(git_dir) is None  # unborn
    (git_dir / "packed-refs").write_text(f"# pack-refs with: peeled\n{SHA} refs/heads/main\n")
    assert head_commit(git_dir) == SHA
    (git_dir / "refs/heads/main").write_text("b" * 40 + "\n")
    assert head_commit(git_dir) == "b" * 40
    (git_dir / "HEAD").write_text("ref: refs/heads/../../../etc/passwd\n")
    assert head_commit(git_dir) is None
    (git_dir / "HEAD").write_text("c" * 40)
    assert head_commit(git_dir) == "c" * 40
    (git_dir / "commondir").write_text("..\n")
    assert head_commit(git_dir) is None  # a layout it does not follow
