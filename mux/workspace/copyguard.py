"""What deleting a session whose /workspace is a copy in a volume would lose.

A --copy session, and a workdir session on a remote engine (which needs --copy),
hold the agent's work only in their workspace volume. mux recorded what it copied
in at `mux new` (mux.workspace.copyrecord). At delete a box on the session's engine
(mux.workspace.gitbox's: no network, the volume read-only, as the session's uid, no
capabilities; no git needed) computes the same digest over the volume: find without
following links, hashes of regular files only (a fifo or device node is never
opened), bounded by :data:`MAX_ENTRIES` and :data:`MAX_BYTES` (beyond: it cannot
tell). It prints one short line, parsed strictly. A digest that differs, a missing
or unreadable record, a box that fails or prints anything else: a reason (fail
closed), which --force overrides.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from mux.workspace import gitbox
from mux.workspace.copyrecord import Record, read_record
from mux.workspace.gitbox import Tree, escape

if TYPE_CHECKING:
    from mux.engine.runner import Runner
    from mux.session.sessions import Session

MAX_ENTRIES = 200_000
MAX_BYTES = 4 << 30
# bytes of records the box sorts (its memory); cut beyond, so the digest differs: a refusal, never a pass
RECORDS_LIMIT = 256 << 20
COPY_WORDS = "its workspace copy"  # in every reason of this guard (mux.workspace.guard.refusal_hint)
_ANSWER = re.compile(r"copy (\d{1,15}) (\d{1,15}) ([0-9a-f]{64}|differs)|copy x ([ -~]{0,200})")


# sh (dash, busybox ash), after gitbox's prelude: $1 the volume, $2..$5 the scripts that
# print the records of directories, files, links and the rest, $6 $7 the entries and bytes
# mux recorded (other counts: it differs, nothing is hashed); anything on stderr (an
# unreadable file, a directory find cannot enter) means it cannot tell.
SCRIPT = r"""
nl='
'
export nl
cd "$1" 2>/dev/null || { echo "copy x cannot enter the volume"; exit 0; }
n=$(find . ! -name . -exec printf '%.0sx' {} + 2>/tmp/.bad | head -c MAXN1 | wc -c)
[ "$n" -lt MAXN1 ] || { echo "copy x more than MAXN entries"; exit 0; }
b=$(find . -type f -exec stat -c %s -- {} + 2>>/tmp/.bad | awk '{t+=$1} END {printf "%.0f", t}')
case $b in ''|*[!0-9]*) echo "copy x the files cannot be sized"; exit 0;; esac
[ -s /tmp/.bad ] && { echo "copy x some of it cannot be read"; exit 0; }
[ "$n" = "$6" ] && [ "$b" = "$7" ] || { echo "copy $n $b differs"; exit 0; }
[ "${#b}" -lt 16 ] && [ "$b" -le MAXB ] || { echo "copy x more than MAXB bytes of files"; exit 0; }
{
  find . ! -name . -type d -exec sh -c "$2" sh {} +
  find . -type f -exec sh -c "$3" sh {} +
  find . -type l -exec sh -c "$4" sh {} +
  find . ! -name . ! -type d ! -type f ! -type l -exec sh -c "$5" sh {} +
} 2>>/tmp/.bad | head -c RECLIMIT | sort -z 2>>/tmp/.bad | sha256sum 2>>/tmp/.bad | cut -c 1-64 >/tmp/.sum
[ -s /tmp/.bad ] && { echo "copy x some of it cannot be read"; exit 0; }
echo "copy $n $b $(cat /tmp/.sum)"
""".replace("RECLIMIT", str(RECORDS_LIMIT)).replace("MAXN1", str(MAX_ENTRIES + 1)) \
    .replace("MAXN", str(MAX_ENTRIES)).replace("MAXB", str(MAX_BYTES))
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
    scripts = [DIRS, FILES, LINKS, OTHERS, str(record.entries), str(record.size)]
    argv = gitbox.box_argv(tree.image, tree.user, [tree], SCRIPT, scripts, prelude="")
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
