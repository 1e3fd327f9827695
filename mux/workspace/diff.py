"""`mux diff NAME`: everything a session changed since it was made, as one unified diff.

git runs in the git box (mux.workspace.gitbox) against the session's start commit
(its ``mux.base`` label, recorded at `mux new`; without one, where HEAD left
``origin/HEAD``, else the empty tree: a repository the agent made itself):
commits since, staged and unstaged changes, and untracked files (added
intent-to-add to a copy of the index in the box's /tmp, with new objects
there too: the tree stays read-only). The diff arrives as bytes in a private
temporary file, is decoded with replacement, and printed with control characters
other than tab and newline escaped, through a pager when stdout is a terminal.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from mux.errors import ConfigError, MuxError
from mux.names import WORKSPACE
from mux.workspace import gitbox

if TYPE_CHECKING:
    from mux.engine.runner import Runner

DIFF_LIMIT = 256 << 20  # bytes of diff brought back; more is cut, and says so
SCRIPT = r"""
cd "$1" 2>/dev/null || { echo "mux-gitbox: cannot enter its tree" >&2; exit 3; }
shift
harden
top=$(git rev-parse --show-toplevel 2>/dev/null)
[ "$top" = "$PWD" ] || { echo "mux-gitbox: its tree is not the top of a git work tree" >&2; exit 3; }
base=$1; mode=$2; shift 2
if [ -z "$base" ]; then  # no start recorded: where it left origin, else (a repository it made) nothing
  base=$(git merge-base HEAD refs/remotes/origin/HEAD 2>/dev/null) || base=$(git hash-object -t tree /dev/null)
fi
git cat-file -e "$base^{tree}" 2>/dev/null || {
  echo "mux-gitbox: its start commit $base is no longer in its repository" >&2; exit 3; }
objects=$(git rev-parse --path-format=absolute --git-path objects) || exit 3
index=$(git rev-parse --path-format=absolute --git-path index) || exit 3
mkdir /tmp/objects && { cp "$index" /tmp/index 2>/dev/null || :; }
export GIT_INDEX_FILE=/tmp/index GIT_OBJECT_DIRECTORY=/tmp/objects GIT_ALTERNATE_OBJECT_DIRECTORIES="$objects"
git add --all --intent-to-add -- "$@" >/dev/null 2>&1
{ git diff --no-ext-diff --no-textconv --no-color --ignore-submodules=all "$mode" "$base" -- "$@"
  echo $? >/tmp/.rc; } | head -c LIMIT
exit "$(cat /tmp/.rc)"
""".replace("LIMIT", str(DIFF_LIMIT))


def pathspecs(given: Sequence[str]) -> list[str]:
    """PATHs as git pathspecs relative to the tree: /workspace/x is x; literal, so a
    name is never a pattern or magic (`:(...)`)."""
    out = []
    for p in given:
        if not p or "\0" in p or "\n" in p:
            raise ConfigError(f"invalid path {gitbox.escape(p)!r}")
        pure = PurePosixPath(p)
        if pure.is_absolute():
            if not pure.is_relative_to(WORKSPACE):
                raise ConfigError(f"path {p!r} is outside {WORKSPACE}, the session's tree")
            pure = pure.relative_to(WORKSPACE)
        out.append(f":(literal){pure}" if str(pure) != "." else ":(literal).")
    return out


def diff(runner: Runner, name: str, *, stat: bool, paths: Sequence[str], pager: bool | None = None) -> None:
    """Print session ``name``'s changes (``stat``: a diffstat)."""
    text = changes(runner, name, stat=stat, paths=paths)
    show(runner, text, pager=sys.stdout.isatty() if pager is None else pager)


def changes(runner: Runner, name: str, *, stat: bool, paths: Sequence[str]) -> str:
    """Session ``name``'s changes as the text `mux diff` shows, escaped and bounded."""
    from mux.session.sessions import find  # here: breaks the map (test_layers.py)

    specs = pathspecs(paths)
    session = find(runner, name)
    tree, base = gitbox.session_tree(runner, session)
    argv = gitbox.box_argv(tree.image, tree.user, [tree], SCRIPT,
                           [base, "--stat" if stat else "--patch", *specs], tmp_size="512m")
    with tempfile.TemporaryDirectory(prefix="mux-diff-") as tmp:
        out = Path(tmp, "diff")
        code, why = gitbox.run_to_file(runner, argv, out)
        if code != 0:
            why = why or f"exit status {code}"
            if code == 125 or (code in (126, 127) and "git" not in why):  # docker's, not the script's
                why = f"the git box (image {tree.image}) could not run: {why}"
            raise MuxError(f"cannot diff session {name!r}: {why}")
        size = out.stat().st_size
        with open(out, "rb") as fh:
            text = gitbox.escape(fh.read(DIFF_LIMIT).decode("utf-8", "replace"))
    if size >= DIFF_LIMIT:
        text += f"\n[mux: the diff is longer than {DIFF_LIMIT >> 20} MiB; cut here]\n"
    return text


def show(runner: Runner, text: str, *, pager: bool) -> None:
    """``text`` on stdout, through $GIT_PAGER / $PAGER / less when asked (as git does)."""
    if not pager or not text:
        sys.stdout.write(text)
        return
    import shlex

    command = os.environ.get("GIT_PAGER") or os.environ.get("PAGER") or "less"
    argv = shlex.split(command)
    if not argv or argv == ["cat"]:
        sys.stdout.write(text)
        return
    env = {"LESS": os.environ.get("LESS", "FRX")}  # git's default: quit if it fits, keep the screen
    sys.stdout.flush()
    try:
        runner.run(argv, capture=False, input=text, check=False, mutates=False, env=env)
    except MuxError:  # no such pager: the text still goes out
        sys.stdout.write(text)
