"""Tar streams between a session and this machine, as data only.

What comes out of a session is written by mux itself, never by docker's own
extraction, into a fresh directory of its own: regular files, directories and
symlinks that stay inside what was copied; no device node or fifo, no
setuid/setgid/sticky bit, no owner but the user running mux, and at most a
size limit of bytes (a sparse file counts at its apparent size: docker streams
it whole). Nothing is written through a symlink: every directory on the way is
opened with O_NOFOLLOW from the one before. What goes in is built here the
same way from a host tree, so the session gets the same rules. What is refused
is counted and named in one line (:class:`Refusals`).
"""

from __future__ import annotations

import os
import posixpath
import stat
import tarfile
from pathlib import Path
from typing import IO, NamedTuple

from mux.errors import MuxError
from mux.safetext import line

DEFAULT_LIMIT = 1 << 30  # [docker] cp_limit
HEADER = 512  # every entry costs at least a header: an empty-file flood counts too
CHUNK = 1 << 20
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
KEEP_MODE = 0o777  # setuid, setgid and sticky never cross (nor, below, write for everyone)
SHOW = 3  # names per reason in the refusal line


class TooLarge(MuxError):
    def __init__(self, what: str, limit: int) -> None:
        super().__init__(f"{what} is larger than the copy limit of {size_text(limit)}; nothing was copied",
                         hint="raise [docker] cp_limit (like \"4g\"; 0: no limit) to copy it")


def size_text(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:g} {unit}"
    return f"{n} bytes"


class Refusals:
    """What a copy left out or changed, by reason, for one line to the user."""

    def __init__(self) -> None:
        self.by_reason: dict[str, list[str]] = {}

    def add(self, reason: str, name: str) -> None:
        """``reason``: what was done to the entries, "left out {} device nodes", with
        the count in place of ``{}`` ("node(s)": the plural is made by the count)."""
        self.by_reason.setdefault(reason, []).append(name)

    def line(self, what: str) -> str | None:
        if not self.by_reason:
            return None
        parts = []
        for reason, names in self.by_reason.items():
            shown = ", ".join(line(n, limit=120) for n in names[:SHOW])
            more = f", and {len(names) - SHOW} more" if len(names) > SHOW else ""
            one = len(names) == 1
            text = reason.format(len(names)).replace("(s)", "" if one else "s").replace("(ies)", "y" if one else "ies")
            parts.append(f"{text} ({shown}{more})")
        return f"mux: {what} " + "; ".join(parts)


def member_parts(name: str) -> tuple[str, ...] | None:
    """An archive name as path components; None for one that leaves the archive."""
    if name.startswith("/"):
        return None
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if ".." in parts or any("\0" in p for p in parts):
        return None
    return parts


def inside(link_parts: tuple[str, ...], target: str, top: int) -> bool:
    """Whether symlink ``link_parts`` -> ``target`` resolves, lexically, within its
    first ``top`` components (the copied tree; 0: the whole destination)."""
    if not target or target.startswith("/") or "\0" in target:
        return False
    resolved = posixpath.normpath(posixpath.join(*link_parts[:-1], target) if link_parts[:-1] else target)
    if resolved == "." and top == 0:
        return True
    parts = tuple(resolved.split("/"))
    return ".." not in parts and parts[:top] == link_parts[:top] and len(parts) >= top


class _Forward:
    """A pipe as the seekable file tarfile's random-access reader wants, seeking
    forward only (by reading): several times faster than its stream mode, which
    copies every block through a growing buffer."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw, self._pos = raw, 0

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self._pos += len(data)
        return data

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        target = offset if whence == 0 else self._pos + offset
        if whence not in (0, 1) or target < self._pos:
            raise OSError("a tar stream cannot go back")
        while self._pos < target:
            if not self.read(min(CHUNK, target - self._pos)):
                break
        return self._pos


class _Counting:
    """A pipe as the file tarfile's writer wants (it asks where it is)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw, self._pos = raw, 0

    def write(self, data: bytes) -> int:
        self._raw.write(data)
        self._pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self._pos


def _open_dirs(root: int, parts: tuple[str, ...], *, create: bool) -> int:
    """A descriptor of directory ``parts`` under ``root``, each step O_NOFOLLOW
    (made 0700 when ``create`` and missing). OSError when a step is not a directory."""
    fd = os.dup(root)
    for p in parts:
        try:
            nxt = os.open(p, DIR_FLAGS, dir_fd=fd)
        except FileNotFoundError:
            if not create:
                os.close(fd)
                raise
            os.mkdir(p, 0o700, dir_fd=fd)
            nxt = os.open(p, DIR_FLAGS, dir_fd=fd)
        except OSError:
            os.close(fd)
            raise
        os.close(fd)
        fd = nxt
    return fd


class Extracted(NamedTuple):
    top: str | None  # the copied entry's name (None: the contents of a directory, "/.")
    kind: str  # "dir", "file", "link" or "" (nothing came)


def extract(stream: IO[bytes], root: Path, *, limit: int, refusals: Refusals, what: str,
            contents: bool) -> Extracted:
    """Write the tar ``stream`` into the empty directory ``root`` by the rules above.
    ``contents``: the archive holds a directory's contents ("./..."), else one entry
    and what is under it. TooLarge past ``limit`` bytes (0: none)."""
    total = 0
    top: str | None = None
    kind = ""
    links: list[tuple[str, ...]] = []
    files: set[tuple[str, ...]] = set()
    dirs: list[tuple[tuple[str, ...], int, float]] = []
    root_fd = os.open(root, DIR_FLAGS)
    try:
        with tarfile.TarFile(fileobj=_Forward(stream), mode="r") as tar:  # type: ignore[arg-type]
            for m in tar:
                total += HEADER + (m.size if m.isreg() else 0)
                if limit and total > limit:
                    raise TooLarge(what, limit)
                parts = member_parts(m.name)
                if parts is None:
                    refusals.add("left out {} entr(ies) outside the copied path", m.name)
                    continue
                if not parts:
                    if m.isdir() and contents:
                        kind = kind or "dir"
                    else:
                        refusals.add("left out {} unexpected entr(ies)", m.name or ".")
                    continue
                if not contents:
                    if top is None:
                        top = parts[0]
                        kind = "dir" if m.isdir() or len(parts) > 1 else "link" if m.issym() else "file"
                    elif parts[0] != top:
                        refusals.add("left out {} entr(ies) outside the copied path", m.name)
                        continue
                else:
                    kind = kind or "dir"
                _member(tar, m, parts, root_fd, refusals, links, files, dirs, 0 if contents else 1)
        for parts, mode, mtime in sorted(dirs, key=lambda d: -len(d[0])):  # deepest first: a 0555 parent last
            try:
                fd = _open_dirs(root_fd, parts, create=False)
            except OSError:
                continue
            try:
                os.fchmod(fd, mode)
                os.utime(fd, (mtime, mtime))
            finally:
                os.close(fd)
        _check_links(root, links, refusals, 0 if contents else 1)
    except tarfile.TarError as exc:
        raise OSError(f"not a tar stream: {exc}") from exc
    finally:
        os.close(root_fd)
    return Extracted(top, kind)


def _member(tar: tarfile.TarFile, m: tarfile.TarInfo, parts: tuple[str, ...], root_fd: int,
            refusals: Refusals, links: list[tuple[str, ...]], files: set[tuple[str, ...]],
            dirs: list[tuple[tuple[str, ...], int, float]], top: int) -> None:
    name = parts[-1]
    path = "/".join(parts)
    if not (m.isreg() or m.isdir() or m.issym() or m.islnk()):
        refusals.add("left out {} device node(s) or fifo(s)", path)
        return
    if m.issym() and not inside(parts, m.linkname, top):
        refusals.add("left out {} symlink(s) pointing out of the copy", path)
        return
    if m.mode & (stat.S_ISUID | stat.S_ISGID) and not m.isdir():
        refusals.add("cleared setuid/setgid bits on {} file(s)", path)
    try:
        parent = _open_dirs(root_fd, parts[:-1], create=True)
    except OSError:
        refusals.add("left out {} entr(ies) under a symlink or file", path)
        return
    try:
        try:
            st = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            st = None
        if st is not None:
            if stat.S_ISDIR(st.st_mode):
                if m.isdir():
                    dirs.append((parts, (m.mode & KEEP_MODE & ~0o002) | 0o700, m.mtime))
                else:
                    refusals.add("left out {} entr(ies) in the place of a directory", path)
                return
            os.unlink(name, dir_fd=parent)
            files.discard(parts)
        if m.isdir():
            os.mkdir(name, 0o700, dir_fd=parent)
            dirs.append((parts, (m.mode & KEEP_MODE & ~0o002) | 0o700, m.mtime))
        elif m.issym():
            os.symlink(m.linkname, name, dir_fd=parent)
            links.append(parts)
        elif m.islnk():
            target = member_parts(m.linkname)
            if target is None or target not in files:
                refusals.add("left out {} hard link(s) to files not copied", path)
                return
            src = _open_dirs(root_fd, target[:-1], create=False)
            try:
                os.link(target[-1], name, src_dir_fd=src, dst_dir_fd=parent, follow_symlinks=False)
            finally:
                os.close(src)
        else:
            _write(tar, m, name, parent)
            files.add(parts)
    finally:
        os.close(parent)


def _write(tar: tarfile.TarFile, m: tarfile.TarInfo, name: str, parent: int) -> None:
    data = tar.extractfile(m)
    assert data is not None
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=parent)
    try:
        while chunk := data.read(CHUNK):
            _write_all(fd, chunk)
        os.fchmod(fd, (m.mode & KEEP_MODE & ~0o002) | 0o600)
        os.utime(fd, (m.mtime, m.mtime))
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _check_links(root: Path, links: list[tuple[str, ...]], refusals: Refusals, top: int) -> None:
    """Each link, followed through the finished tree (chains of links included),
    stays inside the copy; one that does not is removed."""
    base = os.path.realpath(root)
    for parts in links:
        bound = os.path.join(base, *parts[:top])
        real = os.path.realpath(os.path.join(base, *parts))
        if real != bound and not real.startswith(bound + os.sep):
            try:  # its parents are directories this extraction made, never links
                os.unlink(os.path.join(root, *parts))
            except OSError:
                pass
            refusals.add("left out {} symlink(s) pointing out of the copy", "/".join(parts))


# Going in: a host tree as a tar stream, by the same rules. The tree may be one a
# session can write (a workdir bind-mounted into one): it is walked and read with
# O_NOFOLLOW from the source's parent down, so a directory swapped for a link to
# ~/.ssh meanwhile sends nothing from there.

class Entry(NamedTuple):
    root: str  # the directory the walk started from (the source's parent, or the source for "/.")
    parts: tuple[str, ...]  # the entry's path under ``root``
    name: str  # in the archive
    st: os.stat_result
    link: str | None


def walk(source: Path, name: str, refusals: Refusals, *, limit: int, what: str,
         contents: bool) -> list[Entry]:
    """The entries to send for ``source`` (named ``name`` in the archive; its
    children at the top with ``contents``), checked and sized before anything is sent."""
    entries: list[Entry] = []
    total = 0
    root = os.path.abspath(source) if contents else os.path.dirname(os.path.abspath(source))
    top = () if contents else (os.path.basename(os.path.abspath(source)),)
    real_root = os.path.realpath(os.path.join(root, *top))

    def visit(dir_fd: int, parts: tuple[str, ...], arc: str) -> None:
        nonlocal total
        st = os.stat(parts[-1], dir_fd=dir_fd, follow_symlinks=False) if parts else os.fstat(dir_fd)
        total += HEADER + (st.st_size if stat.S_ISREG(st.st_mode) else 0)
        if limit and total > limit:
            raise TooLarge(what, limit)
        link = None
        if stat.S_ISLNK(st.st_mode):
            link = os.readlink(parts[-1], dir_fd=dir_fd)
            real = os.path.realpath(os.path.join(root, *parts))
            if not (inside(tuple(arc.split("/")), link, 0 if contents else 1)
                    and (real == real_root or real.startswith(real_root + os.sep))):
                refusals.add("left out {} symlink(s) pointing out of the copy", arc)
                return
        elif not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
            refusals.add("left out {} device node(s), fifo(s) or socket(s)", arc)
            return
        elif st.st_mode & (stat.S_ISUID | stat.S_ISGID) and not stat.S_ISDIR(st.st_mode):
            refusals.add("cleared setuid/setgid bits on {} file(s)", arc)
        if arc:
            entries.append(Entry(root, parts, arc, st, link))
        if stat.S_ISDIR(st.st_mode):
            fd = os.open(parts[-1], DIR_FLAGS, dir_fd=dir_fd) if parts else os.dup(dir_fd)
            try:
                for child in sorted(os.listdir(fd)):
                    visit(fd, (*parts, child), f"{arc}/{child}" if arc else child)
            finally:
                os.close(fd)

    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)  # the user's own argument: followed
    try:
        visit(root_fd, top, "" if contents else name)
    finally:
        os.close(root_fd)
    return entries


def write(out: IO[bytes], entries: list[Entry], refusals: Refusals) -> None:
    """The tar stream of ``entries`` (from :func:`walk`) to ``out``."""
    with tarfile.TarFile(fileobj=_Counting(out), mode="w", format=tarfile.PAX_FORMAT,  # type: ignore[arg-type]
                         copybufsize=CHUNK) as tar:
        root_fd = os.open(entries[0].root, os.O_RDONLY | os.O_DIRECTORY) if entries else -1
        try:
            for e in entries:
                info = tarfile.TarInfo(e.name)
                info.mode = stat.S_IMODE(e.st.st_mode) & KEEP_MODE & ~0o002
                info.uid, info.gid = e.st.st_uid, e.st.st_gid  # as docker cp's own archive has them
                info.mtime = int(e.st.st_mtime)
                if e.link is not None:
                    info.type, info.linkname = tarfile.SYMTYPE, e.link
                    tar.addfile(info)
                elif stat.S_ISDIR(e.st.st_mode):
                    info.type = tarfile.DIRTYPE
                    tar.addfile(info)
                else:
                    _add_file(tar, info, root_fd, e, refusals)
        finally:
            if root_fd >= 0:
                os.close(root_fd)


def _add_file(tar: tarfile.TarFile, info: tarfile.TarInfo, root_fd: int, e: Entry, refusals: Refusals) -> None:
    try:
        parent = _open_dirs(root_fd, e.parts[:-1], create=False)
    except OSError:
        refusals.add("left out {} entr(ies) that changed while copying", e.name)
        return
    try:
        fd = os.open(e.parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=parent)
    except OSError:
        refusals.add("left out {} entr(ies) that changed while copying", e.name)
        return
    finally:
        os.close(parent)
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            refusals.add("left out {} entr(ies) that changed while copying", e.name)
            return
        info.size = e.st.st_size
        tar.addfile(info, _Exactly(fh, e.st.st_size))


class _Exactly:
    """``size`` bytes of a file, zero-padded if it shrank since it was sized: the
    header already promised them."""

    def __init__(self, fh: IO[bytes], size: int) -> None:
        self._fh, self._left = fh, size

    def read(self, n: int = -1) -> bytes:
        n = self._left if n < 0 else min(n, self._left)
        data = self._fh.read(n)
        data += b"\0" * (n - len(data))
        self._left -= n
        return data
