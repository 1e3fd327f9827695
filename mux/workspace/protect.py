"""Workdir sessions: the user's `.git` and the files their tools run from stay out of
the agent's reach, and the agent can still commit.

A workdir session mounts the user's project read-write at /workspace. What the
user's own tools later run from there (git's config and hooks, direnv's `.envrc`,
an editor's tasks, an agent's settings and commands, shell start-up files) would
run what the agent wrote. So, in a workdir session:

- the user's `.git` is never mounted: the session gets a git directory of its own
  at /workspace/.git, a copy of the user's repository made at `mux new` (no
  hardlink, no file shared), with the user's index, so the agent's commits land
  there and come back only as data (`mux fetch`, `mux diff`); outside a
  repository, an empty one (so `git init` lands there, not in the user's tree);
  the refs the copy starts with are recorded beside it (:data:`BASE_FILE`, out of
  the agent's reach), so `mux delete` can tell the agent's commits from the user's
  (mux.workspace.guard);
- every protected path is mounted read-only onto itself; one that does not exist
  is made first as an empty placeholder (an empty file, or directory), so the
  agent cannot create it either. mux records what it made in the data dir (with
  the sessions using it: sessions of one workdir share them) and removes it at
  the `mux delete` of the last of them (if it is still empty: what the user has
  put there since is theirs).

A mask on `.git/hooks` and `.git/config` alone would not do: `commondir`, a
crafted index or `info/attributes` reach the same, so the whole `.git` is
replaced. `[docker] protect` adds paths; `protect = []` or `--unprotected` turns
this off (with a warning).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from mux import paths
from mux.engine.runner import host_step, quote
from mux.errors import ConfigError, MuxError
from mux.names import WORKSPACE
from mux.ownfiles import write_private
from mux.spec import Mount

if TYPE_CHECKING:
    from mux.engine.runner import Runner
    from mux.spec import Mount, SessionSpec

# A trailing slash: a directory (its placeholder is an empty directory).
PROTECTED = (
    ".git/", ".gitmodules", ".envrc", ".vscode/", ".idea/", ".mcp.json",
    ".claude/settings.json", ".claude/settings.local.json", ".claude/commands/", ".claude/agents/",
    ".bashrc", ".bash_profile", ".zshrc", ".zprofile", ".profile",
)
PLACEHOLDERS = "placeholders.json"  # in the data dir: the placeholders mux made, and their sessions
GIT_DIR = "git"  # the session's own git directory, in the session dir, mounted at /workspace/.git
# In the session dir, beside (never inside) its git directory, so out of the agent's reach:
# the refs that git directory started with, which the delete guard counts as saved.
BASE_FILE = "git-base"
BASE_HEADER = "# mux git-base v1"
BASE_LIMIT = 16 << 20  # bytes; a bigger record is refused (the guard then cannot tell)
_BASE_LINE = re.compile(r"([0-9a-f]{40}|[0-9a-f]{64}) (HEAD|refs/[^\x00-\x20\x7f~^:?*\[\\]{1,255})")


class Protection(NamedTuple):
    mounts: tuple[Mount, ...] = ()  # the session's git dir, and read-only binds
    placeholders: tuple[tuple[Path, bool], ...] = ()  # (host path, is a directory): made before the run
    git_dir: Path | None = None  # the session's own git directory, mounted at /workspace/.git
    git_source: Path | None = None  # the user's repository it is copied from (None: it starts empty)


def check_paths(entries: tuple[str, ...], where: str) -> tuple[str, ...]:
    """``[docker] protect`` entries: paths relative to the workdir, inside it."""
    for entry in entries:
        parts = entry.rstrip("/").split("/")
        if not entry or entry.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise ConfigError(f"{where}: {entry!r} is not a path inside the workdir: write it relative "
                              "to the workdir, like \".env\" or \"scripts/\" (no '..', not absolute)")
    return entries


def wanted(extra: tuple[str, ...] | None, unprotected: bool) -> tuple[str, ...]:
    """The protected paths of a session: the defaults plus ``[docker] protect``; none
    when it is ``[]`` or --unprotected."""
    if unprotected or extra == ():
        return ()
    return PROTECTED + tuple(p for p in extra or () if p not in PROTECTED)


def plan(workdir: Path, session_dir: Path, protected: tuple[str, ...]) -> Protection:
    """What a workdir session needs for ``protected`` (looks at the workdir, writes nothing).
    Every path that may need a placeholder is listed; :func:`prepare` decides at run time."""
    mounts: list[Mount] = []
    placeholders: list[tuple[Path, bool]] = []
    git_dir = git_source = None
    for entry in protected:
        is_dir = entry.endswith("/")
        rel = entry.rstrip("/")
        host = workdir / rel
        inside = f"{WORKSPACE}/{rel}"
        if rel == ".git" and not (os.path.lexists(host) and (host.is_symlink() or not host.is_dir())):
            # A repository: the session works on a copy of it. None (or an empty
            # placeholder of another session's): an empty one, so `git init` works
            # there and not in the user's tree. (A worktree's .git file: read-only.)
            git_dir = session_dir / GIT_DIR
            if (host / "HEAD").is_file():
                git_source = workdir
            else:
                placeholders.append((host, True))
            mounts.append(Mount(str(git_dir), inside))
            continue
        for parent in reversed(Path(rel).parents[:-1]):  # directories on the way
            if (workdir / parent, True) not in placeholders:
                placeholders.append((workdir / parent, True))
        placeholders.append((host, is_dir))
        mounts.append(Mount(str(host), inside, read_only=True))
    return Protection(tuple(mounts), tuple(placeholders), git_dir, git_source)


@contextmanager
def _placeholders() -> Iterator[dict[str, list[str]]]:
    """The data dir's record of the placeholders mux made: path -> the session
    directories that use it. Sessions of one workdir share them, so a delete
    removes one only when no other session (of any instance) still mounts it."""
    root = Path(paths.data_dir())
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{PLACEHOLDERS}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            found = json.loads((root / PLACEHOLDERS).read_text())
        except (OSError, ValueError):
            found = {}
        record = {str(k): [u for u in v if os.path.isdir(u)] for k, v in found.items()
                  if isinstance(v, list)} if isinstance(found, dict) else {}
        yield record
        write_private(root / PLACEHOLDERS, json.dumps(record))


def prepare(runner: Runner, spec: SessionSpec, session_dir: Path) -> None:
    """Before `docker run`: the session's git directory and the placeholders. A missing
    path is made (and recorded first); one that is another session's placeholder is
    shared; one of the user's own is left as it is."""
    if spec.git_source is not None:
        copy_git(runner, spec.git_source, session_dir / GIT_DIR)
    elif spec.git_dir is not None:
        host_step(runner, ["mkdir", spec.git_dir], spec.git_dir.mkdir)
    if runner.dry_run:
        for path, is_dir in spec.placeholders:
            if not os.path.lexists(path):
                runner.show(["mkdir" if is_dir else "touch", path])
        return
    me = str(session_dir)
    with _placeholders() as record:
        for path, is_dir in spec.placeholders:
            if not _direct(path):  # another session's agent put a link on the way
                raise MuxError(f"{path} is reached through a symbolic link: mux makes and mounts its "
                               "placeholders only in the workdir itself",
                               hint="look at what the link points to, and remove it")
            users = record.get(str(path))
            if os.path.lexists(path):
                if users is not None and me not in users:
                    users.append(me)  # another session's placeholder: shared
                continue
            record[str(path)] = [me]
            if is_dir:
                host_step(runner, ["mkdir", path], path.mkdir)
            else:
                host_step(runner, ["touch", path], partial(path.touch, exist_ok=False))


def _direct(path: Path) -> bool:
    """No symbolic link on the way to ``path`` (the workdir is a resolved path)."""
    return os.path.realpath(path.parent) == str(path.parent)


def copy_git(runner: Runner, source: Path, target: Path) -> None:
    """The session's own git directory: a copy of the user's repository (objects copied,
    never hardlinked), not bare, with the user's index (what they had staged)."""
    git = ["git", "-c", "core.hooksPath=/dev/null"]
    runner.run([*git, "clone", "--bare", "--no-hardlinks", "-q", "--", source, target], error=MuxError)
    runner.run([*git, "--git-dir", target, "config", "core.bare", "false"], error=MuxError)
    index = source / ".git" / "index"
    if index.is_file():
        import shutil

        host_step(runner, ["cp", index, target / "index"], lambda: shutil.copyfile(index, target / "index"))
    record_base(runner, target, target.parent / BASE_FILE)


def record_base(runner: Runner, git_dir: Path, record: Path) -> None:
    """The refs ``git_dir`` (just copied, before any agent ran) starts with, into
    ``record``: what `mux delete` counts as saved. Host git reads mux's own fresh copy."""
    argv = ["git", "--git-dir", str(git_dir), "show-ref", "--head"]
    if runner.dry_run:
        print(f"{quote(argv)} > {quote([record])}", file=runner.out)
        return
    found = runner.query(argv, check=False, error=MuxError)
    if found.returncode not in (0, 1) or (found.returncode == 1 and found.stdout.strip()):
        raise MuxError(f"cannot read the refs of the session's git directory {git_dir}: "
                       f"{found.stderr.strip()[-200:] or f'exit status {found.returncode}'}")
    state = refs_state(git_dir)
    text = "\n".join([BASE_HEADER, *([f"= {state}"] if state else []), *found.stdout.splitlines()]) + "\n"
    parse_base(text.encode())  # what the guard will read back: it must parse
    write_private(record, text)


class Base(NamedTuple):
    commits: list[str]  # what the session's git directory started with: safe already
    state: str = ""  # its refs' files then (:func:`refs_state`); "" when none was recorded


def refs_state(git_dir: Path) -> str | None:
    """A digest of what names commits in ``git_dir``, read as bytes (no git): HEAD,
    packed-refs and every file under refs/. None when anything else could (commondir,
    worktrees, reftable), or something is not a plain file or is too large: then only
    the git box can tell. When it equals the record's, the directory reaches exactly
    the commits it started with, so the guard has nothing to ask the box."""
    import hashlib
    import stat

    digest = hashlib.sha256()
    budget = [BASE_LIMIT, 10_000]  # bytes, files

    def add(path: Path, rel: str) -> bool:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            digest.update(f"{rel}\0-\0".encode())
            return True
        except OSError:
            return False
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                return False  # a FIFO or device (the agent's): never waited on
            data = fh.read(budget[0] + 1)
        budget[0] -= len(data)
        budget[1] -= 1
        digest.update(f"{rel}\0{len(data)}\0".encode() + data)
        return budget[0] >= 0 and budget[1] >= 0

    try:
        if git_dir.is_symlink() or {"commondir", "worktrees", "reftable"} & set(os.listdir(git_dir)):
            return None
        if not (add(git_dir / "HEAD", "HEAD") and add(git_dir / "packed-refs", "packed-refs")):
            return None
        refs = git_dir / "refs"
        if refs.is_symlink():
            return None
        for top, dirs, files in os.walk(refs):
            dirs.sort()
            if any(os.path.islink(os.path.join(top, d)) for d in dirs):
                return None
            for name in sorted(files):
                path = Path(top, name)
                if not add(path, str(path.relative_to(git_dir))):
                    return None
    except OSError:
        return None
    return digest.hexdigest()


def parse_base(raw: bytes) -> Base:
    """The commits (object names) a :data:`BASE_FILE` record lists, deduplicated, and
    its refs' state. Anything else in it (a line that is not ``NAME REF``, a wrong
    header, more than :data:`BASE_LIMIT` bytes) is a ValueError: the guard then cannot tell."""
    if len(raw) > BASE_LIMIT:
        raise ValueError(f"it is larger than {BASE_LIMIT >> 20} MiB")
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise ValueError("it is not text") from None
    lines = text.split("\n")
    if lines[0] != BASE_HEADER or lines[-1] != "":
        raise ValueError("it is not mux's record (header or last line)")
    state = ""
    if len(lines) > 2 and lines[1].startswith("= "):
        state = lines.pop(1)[2:]
        if not re.fullmatch(r"[0-9a-f]{64}", state):
            raise ValueError("its state line is not a digest")
    found: dict[str, None] = {}
    for line in lines[1:-1]:
        m = _BASE_LINE.fullmatch(line)
        if m is None or ".." in line or line.endswith((".lock", "/")):
            raise ValueError(f"a line is not a ref: {line[:80]!r}")
        found[m.group(1)] = None
    return Base(list(found), state)


def read_base(session_dir: Path) -> Base:
    """The commits the session's git directory started with; none when mux recorded
    none (an empty start, or a session made before the record). ValueError: unreadable."""
    path = session_dir / BASE_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return Base([])
    except OSError as exc:
        raise ValueError(exc.strerror or "it cannot be read") from None
    with os.fdopen(fd, "rb") as fh:
        return parse_base(fh.read(BASE_LIMIT + 1))


def remove_placeholders(session_dir: Path) -> list[str]:
    """At delete (and undo): the placeholders this session used that no other session
    uses any more, newest first, each only while still empty; what is left, as messages."""
    me = str(session_dir)
    kept = []
    with _placeholders() as record:
        for line in reversed(list(record)):
            users = record[line]
            if me in users:
                users.remove(me)
            elif users:
                continue  # not this session's
            if users:
                continue  # another session still mounts it
            del record[line]
            path = Path(line)
            try:
                if path.is_symlink() or not _direct(path):
                    kept.append(f"{path} (now a link, or reached through one)")
                elif path.is_dir():
                    path.rmdir()
                elif path.is_file() and path.stat().st_size == 0:
                    path.unlink()
                elif path.exists():
                    kept.append(f"{path} (no longer empty)")
            except OSError:
                kept.append(f"{path} (not empty)")
    return kept
