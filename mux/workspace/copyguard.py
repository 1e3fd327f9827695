"""What deleting a session whose /workspace is a copy in a volume would lose.

A --copy session, and a workdir session on a remote engine, hold the agent's work
only in their workspace volume. At `mux new` mux records, in the session's data
dir (mode 600, outside the agent's reach), one digest over what it sent into that
volume (:class:`Manifest`, fed by mux.session.safetar as it writes the stream):
a sorted list of NUL-terminated records, one per entry under /workspace::

    d NAME                      a directory
    f SIZE SHA256 NAME          a regular file: the bytes sent
    l LEN TARGET NAME           a symlink (LEN: the target's length in bytes)
    o NAME                      anything else (mux never copies one in)

At delete a box on the session's engine (mux.workspace.gitbox's: no network, the
volume read-only, as the session's uid; no git needed) computes the same over the
volume: find without following links, hashes of regular files only (a fifo or
device node is never opened), bounded by :data:`MAX_ENTRIES` and :data:`MAX_BYTES`
(beyond: it cannot tell). It prints one line, parsed strictly. A digest that
differs, a missing or unreadable record, a box that fails: a reason (fail closed).
One cost: a session's unchanged copy is hashed again at each delete (measured:
a few thousand files in well under a second).
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from mux.workspace import gitbox
from mux.workspace.gitbox import Tree, escape

if TYPE_CHECKING:
    from mux.engine.runner import Runner
    from mux.session.safetar import Entry
    from mux.session.sessions import Session

RECORD_FILE = "copy-base"
HEADER = "# mux copy-base v1"
RECORD_LIMIT = 4096  # bytes; a bigger record cannot be mux's
MAX_ENTRIES = 200_000
MAX_BYTES = 4 << 30
COPY_WORDS = "its workspace copy"  # in every reason of this guard (mux.workspace.guard.refusal_hint)
_DIGEST = re.compile(r"[0-9a-f]{64}")
_COUNT = re.compile(r"\d{1,15}")
_ANSWER = re.compile(r"copy (\d{1,15}) (\d{1,15}) ([0-9a-f]{64})|copy x ([ -~]{0,200})")


class Record(NamedTuple):
    digest: str
    entries: int
    size: int  # bytes of the regular files

    def text(self) -> str:
        return f"{HEADER}\nsha256 {self.digest}\nentries {self.entries}\nbytes {self.size}\n"


class Manifest:
    """The records of what went into /workspace, collected as mux sends them."""

    def __init__(self, top: str) -> None:
        self._prefix = top + "/"  # the archive's names start with the workspace's own
        self._records: list[bytes] = []
        self._size = 0

    def sent(self, entry: Entry, digest: str | None) -> None:
        import stat

        if not entry.name.startswith(self._prefix):
            return  # the workspace itself: the volume's root
        name = os.fsencode(entry.name[len(self._prefix):])
        if entry.link is not None:
            target = os.fsencode(entry.link)
            self._records.append(b"l %d %s %s\0" % (len(target), target, name))
        elif stat.S_ISDIR(entry.st.st_mode):
            self._records.append(b"d %s\0" % name)
        elif digest is not None:
            self._records.append(b"f %d %s %s\0" % (entry.st.st_size, digest.encode(), name))
            self._size += entry.st.st_size

    def record(self) -> Record:
        return Record(digest_of(self._records), len(self._records), self._size)


def digest_of(records: list[bytes]) -> str:
    """What the box computes: sha256 over the records sorted as bytes (sort -z, LC_ALL=C)."""
    h = hashlib.sha256()
    for r in sorted(records):
        h.update(r)
    return h.hexdigest()


def write_record(session_dir: Path, record: Record) -> None:
    from mux.proxy.files import write_private

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


# sh (dash, busybox ash), after gitbox's prelude: $1 the volume, $2..$5 the scripts that
# print the records of directories, files, links and the rest; anything on stderr
# (an unreadable file, a directory find cannot enter) means it cannot tell.
SCRIPT = r"""
nl='
'
export nl
cd "$1" 2>/dev/null || { echo "copy x cannot enter the volume"; exit 0; }
n=$(find . ! -name . -exec printf '%.0sx' {} + 2>/tmp/.bad | head -c MAXN1 | wc -c)
[ "$n" -lt MAXN1 ] || { echo "copy x more than MAXN entries"; exit 0; }
b=$(find . -type f -exec stat -c %s -- {} + 2>>/tmp/.bad | awk '{t+=$1} END {printf "%.0f", t}')
case $b in ''|*[!0-9]*) echo "copy x the files cannot be sized"; exit 0;; esac
[ "${#b}" -lt 16 ] && [ "$b" -le MAXB ] || { echo "copy x more than MAXB bytes of files"; exit 0; }
[ -s /tmp/.bad ] && { echo "copy x some of it cannot be read"; exit 0; }
{
  find . ! -name . -type d -exec sh -c "$2" sh {} +
  find . -type f -exec sh -c "$3" sh {} +
  find . -type l -exec sh -c "$4" sh {} +
  find . ! -name . ! -type d ! -type f ! -type l -exec sh -c "$5" sh {} +
} 2>>/tmp/.bad | sort -z 2>>/tmp/.bad | sha256sum 2>>/tmp/.bad | cut -c 1-64 >/tmp/.sum
[ -s /tmp/.bad ] && { echo "copy x some of it cannot be read"; exit 0; }
echo "copy $n $b $(cat /tmp/.sum)"
""".replace("MAXN1", str(MAX_ENTRIES + 1)).replace("MAXN", str(MAX_ENTRIES)).replace("MAXB", str(MAX_BYTES))
DIRS = r"""for f; do printf 'd %s\0' "${f#./}"; done"""
# A batch's names with no newline: one sha256sum and one stat for all (one line each,
# in order; GNU's escaping starts a line with '\'); else one file at a time.
FILES = r"""
for f; do case $f in *"$nl"*) slow=1;; esac; done
if [ -n "$slow" ]; then
  for f; do
    h=$(sha256sum <"$f" | cut -c 1-64) && s=$(stat -c %s -- "$f") && [ ${#h} = 64 ] \
      || { echo "cannot hash" >&2; continue; }
    printf 'f %s %s %s\0' "$s" "$h" "${f#./}"
  done
  exit 0
fi
t=/tmp/.b$$
sha256sum -- "$@" | sed 's/^\\//' | cut -c 1-64 >$t.h
stat -c %s -- "$@" >$t.s
[ "$(wc -l <$t.h)" -eq $# ] && [ "$(wc -l <$t.s)" -eq $# ] || { echo "cannot hash" >&2; exit 0; }
exec 3<$t.h 4<$t.s
for f; do read -r h <&3; read -r s <&4; printf 'f %s %s %s\0' "$s" "$h" "${f#./}"; done
rm -f $t.h $t.s
"""
LINKS = r"""
for f; do
  t=$(readlink -- "$f" && echo .) || { echo "cannot read a link" >&2; continue; }
  t=${t%"$nl."}
  printf 'l %s %s %s\0' "${#t}" "$t" "${f#./}"
done
"""
OTHERS = r"""for f; do printf 'o %s\0' "${f#./}"; done"""


def check(runner: Runner, tree: Tree, record: Record) -> list[str]:
    """The reasons deleting ``tree`` (a workspace volume, its user known) would lose work."""
    argv = gitbox.box_argv(tree.image, tree.user, [tree], SCRIPT, [DIRS, FILES, LINKS, OTHERS], prelude="")
    result = runner.query(argv, check=False)
    m = _ANSWER.fullmatch(result.stdout.strip("\n")) if len(result.stdout) < 512 else None
    if result.returncode != 0 or m is None:
        why = gitbox.box_failure(result, tree.image) if result.returncode or not result.stdout.strip() \
            else "the box printed something that is not a check"
        return [f"it cannot be checked for unsaved work in {COPY_WORDS}: {why}"]
    if m.group(4) is not None:
        return [f"it cannot be checked for unsaved work in {COPY_WORDS}: {escape(m.group(4))}"]
    if m.group(3) == record.digest:
        return []
    entries, size = int(m.group(1)), int(m.group(2))
    return [f"{COPY_WORDS} differs from what mux copied in ({entries} entries, {size} bytes of files now; "
            f"{record.entries} entries, {record.size} bytes then)"]


def unsaved(runner: Runner, sessions: list[Session]) -> dict[str, list[str]]:
    """For each session given whose /workspace is a copy in a volume (no repository), the
    reasons deleting it would lose work; the others are absent."""
    from mux import paths
    from mux.session.volumes import in_volumes

    found: dict[str, list[str]] = {}
    trees: list[Tree] = []
    records: dict[str, Record] = {}
    for session in sessions:
        if session.repo or not in_volumes(session):
            continue
        cannot = f"it cannot be checked for unsaved work in {COPY_WORDS}: "
        try:
            record = read_record(Path(paths.session_dir(session.name)))
        except ValueError as exc:
            found[session.name] = [cannot + f"mux's record of what it copied in cannot be read ({exc})"]
            continue
        if record is None:
            found[session.name] = [cannot + "mux has no record of what it copied in (made by an older mux)"]
            continue
        tree = gitbox.tree_of(session, workdir=True)
        if isinstance(tree, Tree):
            trees.append(tree)
            records[session.name] = record
        else:
            found[session.name] = [cannot + (tree.why if tree is not None else "it has no workspace volume")]
    for item in gitbox.ask_users(runner, trees) if trees else []:
        if isinstance(item, Tree):
            found[item.key] = check(runner, item, records[item.key])
        else:
            found[item.key] = [f"it cannot be checked for unsaved work in {COPY_WORDS}: {item.why}"]
    return {k: v for k, v in found.items() if v}
