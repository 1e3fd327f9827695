"""`mux cp`: docker cp's syntax, through the session's engine, found by its labels.

``NAME:PATH`` names a path in session NAME (relative paths are relative to
/workspace); anything else is a path on this machine (write ``./a:b`` for a
local name with a colon, as with docker cp). This is how results come back from
a session whose /workspace is a volume on another machine (mux/session/volumes.py).

Only data crosses, both ways: docker's tar stream (`docker cp ... -`) is read
and written by mux itself (mux/session/safetar.py) into a fresh directory next to the
destination, then moved into place without following any link on the way;
what was left out is said in one line on stderr.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
from pathlib import Path, PurePosixPath

from mux.engine import argv as A
from mux.engine.runner import Runner
from mux.errors import ConfigError, DockerError, MuxError
from mux.names import SESSION_NAME, WORKSPACE
from mux.session import safetar
from mux.session.sessions import find

SESSION_PATH = re.compile(rf"(?P<name>{SESSION_NAME.pattern}):(?P<path>.*)", re.DOTALL)


def split(arg: str) -> tuple[str | None, str]:
    """(session, path in it) for NAME:PATH, else (None, local path)."""
    m = SESSION_PATH.fullmatch(arg)
    if m and "/" not in m["name"]:
        return m["name"], m["path"]
    return None, arg


def copy(runner: Runner, source: str, dest: str, *, limit: int = safetar.DEFAULT_LIMIT) -> None:
    (src_session, src_path), (dst_session, dst_path) = split(source), split(dest)
    if (src_session is None) == (dst_session is None):
        raise ConfigError("give exactly one side as NAME:PATH (a path in session NAME) and the other "
                          "as a path here", hint="mux cp NAME:/workspace/out.txt . | mux cp ./in.txt NAME:")
    local = src_path if src_session is None else dst_path
    if local in ("", "-") or local.startswith("-"):
        raise ConfigError(f"invalid local path {local!r}: a file or directory here (tar streams "
                          "are not supported)", hint="prefix a name starting with '-' with ./")
    name = src_session or dst_session
    assert name is not None
    session = find(runner, name)
    path = src_path if src_session else dst_path
    inside = str(PurePosixPath(WORKSPACE) / path)
    if path.endswith(("/", "/.")) and not inside.endswith(("/", "/.")):  # docker cp: "must be a directory"
        inside += path[path.rindex("/"):]
    ref = session.id or session.container
    refusals = safetar.Refusals()
    if src_session:
        copy_out(runner, f"{ref}:{inside}", local, limit=limit, refusals=refusals, what=source)
    else:
        copy_in(runner, ref, inside, local, limit=limit, refusals=refusals, what=source)
    line = refusals.line(f"copied {source} to {dest}, but")
    if line:
        print(line, file=runner.err)


def copy_out(runner: Runner, ref: str, local: str, *, limit: int, refusals: safetar.Refusals,
             what: str) -> None:
    """Session path ``ref`` (ID:PATH) to ``local``, with docker cp's placement rules."""
    argv = A.cp_argv(ref, "-")
    if runner.dry_run:
        runner.show(argv)
        return
    contents = ref.endswith("/.")
    parent = os.path.dirname(os.path.normpath(local)) or "."
    made = False  # the destination directory is this copy's own (the contents of one, "/.")
    if contents and not os.path.isdir(local):
        if os.path.lexists(local):
            raise MuxError(f"cannot copy a directory's contents onto the file {local} here")
        into, name, made = local, None, True
    elif contents or os.path.isdir(local):
        into, name = local, None  # the copy (or its contents) goes inside
    else:
        into, name = parent, os.path.basename(local)
        if local.endswith("/"):
            raise MuxError(f"destination directory {local} does not exist")
    if not os.path.isdir(parent if made else into):
        raise MuxError(f"destination directory {parent if made else into} does not exist")
    tmp = Path(tempfile.mkdtemp(prefix=".mux-cp-", dir=parent if made else into))
    try:
        with runner.pipe(argv) as p:
            got = safetar.extract(p.stream, tmp, limit=limit, refusals=refusals, what=what,
                                  contents=contents)
        if not got.kind or (got.top is not None and not os.path.lexists(tmp / got.top)):
            return  # all of it was refused
        if made:  # a directory's contents into a new directory: the whole fresh one moves
            os.chmod(tmp, 0o777 & ~_umask())
            os.rename(tmp, into)
            return
        dst = os.open(into, os.O_RDONLY | os.O_DIRECTORY)
        src = os.open(tmp, safetar.DIR_FLAGS)
        try:
            if contents:
                for child in sorted(os.listdir(src)):
                    _place(src, child, dst, child, refusals, child)
            else:
                assert got.top is not None
                target = name or got.top
                _place(src, got.top, dst, target, refusals, target, strict=True)
        finally:
            os.close(src)
            os.close(dst)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _place(src: int, name: str, dst: int, dst_name: str, refusals: safetar.Refusals, shown: str,
           *, strict: bool = False) -> None:
    """Move ``name`` (under ``src``) to ``dst_name`` (under ``dst``): a rename that
    replaces a file or link (never writes through it); directories merge, each
    opened with O_NOFOLLOW. ``strict``: a type clash is an error (the copied entry
    itself, as docker cp says), else one more refusal."""
    st = os.stat(name, dir_fd=src, follow_symlinks=False)
    try:
        there = os.stat(dst_name, dir_fd=dst, follow_symlinks=False)
    except FileNotFoundError:
        os.rename(name, dst_name, src_dir_fd=src, dst_dir_fd=dst)
        return
    is_dir, there_dir = stat.S_ISDIR(st.st_mode), stat.S_ISDIR(there.st_mode)
    if is_dir and there_dir:
        inner_src = os.open(name, safetar.DIR_FLAGS, dir_fd=src)
        try:
            inner_dst = os.open(dst_name, safetar.DIR_FLAGS, dir_fd=dst)
        except OSError:
            os.close(inner_src)
            refusals.add("kept {} entr(ies) here unchanged (changed while copying)", shown)
            return
        try:
            for child in sorted(os.listdir(inner_src)):
                _place(inner_src, child, inner_dst, child, refusals, f"{shown}/{child}")
        finally:
            os.close(inner_src)
            os.close(inner_dst)
    elif is_dir or there_dir:
        if strict:
            raise MuxError(f"cannot copy a {'directory' if is_dir else 'file'} onto the "
                           f"{'directory' if there_dir else 'file'} {shown} here")
        refusals.add("kept {} entr(ies) here unchanged (a file and a directory clash)", shown)
    else:
        os.replace(name, dst_name, src_dir_fd=src, dst_dir_fd=dst)


def copy_in(runner: Runner, ref: str, inside: str, local: str, *, limit: int,
            refusals: safetar.Refusals, what: str) -> None:
    """``local`` to ``inside`` in container ``ref``, with docker cp's placement rules:
    the tar is made here (mux/session/safetar.py) and extracted by docker at a directory."""
    if not os.path.lexists(local):
        raise MuxError(f"{local}: no such file or directory here")
    contents = local.endswith("/.")
    source = Path(local)
    there = _kind_in(runner, ref, inside)
    if there == "dir":
        at, name = inside, os.path.basename(os.path.abspath(local))
    else:
        if there is None and inside.endswith("/"):
            raise MuxError(f"destination directory {inside} does not exist in the session")
        if there is not None and source.is_dir() and not source.is_symlink():
            raise MuxError(f"cannot copy a directory onto the file {inside} in the session")
        at, name = str(PurePosixPath(inside).parent), PurePosixPath(inside).name
    entries = safetar.walk(source, name, refusals, limit=limit, what=what, contents=contents and there == "dir")
    argv = A.cp_argv("-", f"{ref}:{at}")
    if runner.dry_run:
        runner.show(argv)
        return
    with runner.pipe(argv, write=True) as p:
        safetar.write(p.stream, entries, refusals)


def _kind_in(runner: Runner, ref: str, inside: str) -> str | None:
    """What ``inside`` is in the container ("dir", "file", "link"), None when missing:
    the first header of docker's own tar of it, the rest not read."""
    import tarfile

    try:
        with runner.pipe(A.cp_argv(f"{ref}:{inside}", "-")) as p:
            with tarfile.open(fileobj=p.stream, mode="r|") as tar:
                first = tar.next()
            p.stop()
    except DockerError as exc:
        if "could not find the file" in exc.stderr.lower() or "no such" in exc.stderr.lower():
            return None
        raise
    if first is None:
        return None
    return "dir" if first.isdir() else "link" if first.issym() else "file"
