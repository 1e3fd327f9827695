"""The commit a session starts from (its ``mux.base`` label), read from git's files.

Read at `mux new`, before any agent ran, with no git at all: HEAD, a loose ref or
a packed-refs line are data, and reading them runs nothing. A layout this does
not read (a linked worktree's gitfile, ``commondir``, a reftable) gives no base;
`mux diff` then falls back to where HEAD left its upstream.
"""

from __future__ import annotations

import re
from pathlib import Path

BASE_LABEL = "mux.base"
COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_REF = re.compile(r"refs/heads/[^\x00-\x20\x7f~^:?*\[\\]{1,255}")


def head_commit(git_dir: Path) -> str | None:
    """The commit ``git_dir``'s HEAD names; None when it names none this can read."""
    if not git_dir.is_dir() or git_dir.is_symlink() or (git_dir / "commondir").exists():
        return None
    try:
        head = _small(git_dir / "HEAD").strip()
        if COMMIT.fullmatch(head):
            return head  # detached
        ref = head.removeprefix("ref: ").strip()
        if not head.startswith("ref: ") or not _REF.fullmatch(ref) or ".." in ref:
            return None
        loose = git_dir / ref
        if loose.is_file() and not loose.is_symlink():
            found = _small(loose).strip()
            return found if COMMIT.fullmatch(found) else None
        packed = git_dir / "packed-refs"
        if packed.is_file():
            for line in _small(packed, 64 << 20).splitlines():
                sha, _, name = line.partition(" ")
                if name == ref and COMMIT.fullmatch(sha):
                    return sha
    except OSError:
        return None
    return None  # an unborn branch: no commit yet


def base_labels(git_dir: Path) -> list[tuple[str, str]]:
    found = head_commit(git_dir)
    return [(BASE_LABEL, found)] if found else []


def _small(path: Path, limit: int = 4096) -> str:
    with open(path, "rb") as fh:
        return fh.read(limit).decode("ascii", errors="replace")
