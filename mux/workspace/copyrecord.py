"""mux's record of what it copied into a session's workspace volume (--copy, or a
workdir session on a remote engine): one digest over the entries as mux sent them
(fed by mux.session.safetar while it writes the stream), kept in the session's data
dir (mode 600, outside the agent's reach). mux.workspace.copyguard computes the same
over the volume at delete. The digest is sha256 over the sorted NUL-terminated
records, one per entry under /workspace::

    d NAME                      a directory
    f SIZE SHA256 NAME          a regular file: the bytes sent
    l LEN TARGET NAME           a symlink (LEN: the target's length in bytes)
    o NAME                      anything else (mux never copies one in)
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from mux.session.safetar import Entry

RECORD_FILE = "copy-base"
HEADER = "# mux copy-base v1"
RECORD_LIMIT = 4096  # bytes; a bigger record cannot be mux's
_DIGEST = re.compile(r"[0-9a-f]{64}")
_COUNT = re.compile(r"\d{1,15}")


class Record(NamedTuple):
    digest: str
    entries: int
    size: int  # bytes of the regular files

    def text(self) -> str:
        return f"{HEADER}\nsha256 {self.digest}\nentries {self.entries}\nbytes {self.size}\n"


class Manifest:
    """The records of what went into /workspace, collected as mux sends them.
    ``mounted``: the session's other mounts inside /workspace (relative paths): what is
    copied under one lands there, not in the workspace volume, which keeps only the
    mount point (a directory, its parents made by the engine)."""

    def __init__(self, top: str, mounted: tuple[str, ...] = ()) -> None:
        self._prefix = top + "/"  # the archive's names start with the workspace's own
        self._mounted = [os.fsencode(m) for m in mounted]
        self._records: dict[bytes, tuple[bytes, int]] = {}  # name: (record, bytes of a file)

    def sent(self, entry: Entry, digest: str | None) -> None:
        import stat

        if not entry.name.startswith(self._prefix):
            return  # the workspace itself: the volume's root
        name = os.fsencode(entry.name[len(self._prefix):])
        if entry.link is not None:
            target = os.fsencode(entry.link)
            self._records[name] = (b"l %d %s %s\0" % (len(target), target, name), 0)
        elif stat.S_ISDIR(entry.st.st_mode):
            self._records[name] = (b"d %s\0" % name, 0)
        elif digest is not None:
            self._records[name] = (b"f %d %s %s\0" % (entry.st.st_size, digest.encode(), name), entry.st.st_size)

    def record(self) -> Record:
        found = {n: r for n, r in self._records.items()
                 if not any(n == m or n.startswith(m + b"/") for m in self._mounted)}
        for m in self._mounted:
            parts = m.split(b"/")
            for i in range(1, len(parts) + 1):
                d = b"/".join(parts[:i])
                found[d] = (b"d %s\0" % d, 0)
        records = [r for r, _ in found.values()]
        return Record(digest_of(records), len(records), sum(n for _, n in found.values()))


def digest_of(records: list[bytes]) -> str:
    """What the box computes: sha256 over the records sorted as bytes (sort -z, LC_ALL=C)."""
    h = hashlib.sha256()
    for r in sorted(records):
        h.update(r)
    return h.hexdigest()


def write_record(session_dir: Path, record: Record) -> None:
    from mux.ownfiles import write_private

    write_private(session_dir / RECORD_FILE, record.text())


def parse_record(raw: bytes) -> Record:
    """ValueError (in words) unless ``raw`` is exactly a record mux writes."""
    if len(raw) > RECORD_LIMIT:
        raise ValueError("it is larger than any mux writes")
    try:
        lines = raw.decode("ascii").split("\n")
    except UnicodeDecodeError:
        raise ValueError("it is not text") from None
    if len(lines) != 5 or lines[0] != HEADER or lines[4] != "":
        raise ValueError("it is not in mux's format")
    keys = ("sha256", "entries", "bytes")
    values = []
    for key, line in zip(keys, lines[1:4], strict=True):
        found, _, value = line.partition(" ")
        if found != key or not (_DIGEST if key == "sha256" else _COUNT).fullmatch(value):
            raise ValueError("it is not in mux's format")
        values.append(value)
    return Record(values[0], int(values[1]), int(values[2]))


def read_record(session_dir: Path) -> Record | None:
    """The session's record; None when there is none (a session made before it).
    ValueError: there is one that cannot be read."""
    try:
        fd = os.open(session_dir / RECORD_FILE, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ValueError(exc.strerror or "it cannot be read") from None
    with os.fdopen(fd, "rb") as fh:
        import stat

        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise ValueError("it is not a file")
        return parse_record(fh.read(RECORD_LIMIT + 1))
