"""What deleting sessions' repositories would lose, asked in the git box.

Answered from the clone alone (no fetch): a commit is safe once some
remote-tracking branch contains it, which is what a successful push records.
Ignored files are not counted (build output and caches would make every delete
refuse); neither are reflog-only commits or unpushed tags. Every check that
cannot run, or prints what it should not, is a reason (fail closed): a
refusal that `--force` overrides.

The box prints one record per line, ``N KEY ...`` for tree /r/N, and ``N end``
when it got through tree N; a tree without its end was not checked.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from mux.workspace import gitbox
from mux.workspace.gitbox import NoTree, Tree, escape

if TYPE_CHECKING:
    from mux.engine.runner import Runner
    from mux.session.sessions import Session

MAX_BRANCHES = 1000  # more is reported as a reason, not counted one by one
# sh, after gitbox.HARDEN; "$@" are the trees' mount points. The output goes through
# head: a repository cannot make it unbounded.
SCRIPT = r"""
last() { tail -n 1 /tmp/.err | cut -c 1-200; }
check() {
  n=${1##*/}
  cd "$1" 2>/dev/null || { echo "$n top cannot enter it"; return; }
  harden
  top=$(git rev-parse --show-toplevel 2>/tmp/.err) || { echo "$n top $(last)"; return; }
  [ "$top" = "$1" ] || { echo "$n top not the top of a work tree"; return; }
  if git status --porcelain=v1 --untracked-files=all --ignore-submodules=all --no-renames \
      >/tmp/.status 2>/tmp/.err; then
    echo "$n changes $(grep -vc '^??' /tmp/.status) $(grep -c '^??' /tmp/.status)"
  else
    echo "$n changes x $(last)"
  fi
  rm -f /tmp/.status
  if git for-each-ref --format='%(refname)' refs/heads/ >/tmp/.heads 2>/tmp/.err; then
    echo "$n heads $(wc -l </tmp/.heads)"
    head -n MAX /tmp/.heads | while IFS= read -r ref; do
      c=$(git rev-list --count "$ref" --not --remotes 2>/dev/null) || c=x
      echo "$n branch $c $ref"
    done
  else
    echo "$n heads x $(last)"
  fi
  git symbolic-ref --quiet HEAD >/dev/null 2>/tmp/.err
  case $? in
    0) ;;
    1) c=$(git rev-list --count HEAD --not --branches --remotes 2>/dev/null) || c=x
       echo "$n detached $c" ;;
    *) echo "$n head x $(last)" ;;
  esac
  if git stash list >/tmp/.stash 2>/tmp/.err; then
    echo "$n stash $(wc -l </tmp/.stash)"
  else
    echo "$n stash x $(last)"
  fi
  echo "$n end"
}
for d do check "$d"; done 2>/dev/null | head -c LIMIT
""".replace("MAX", str(MAX_BRANCHES)).replace("LIMIT", str(gitbox.OUTPUT_LIMIT))
_RECORD = re.compile(r"(\d+) (top|changes|heads|branch|detached|head|stash|end)(?: (.*))?")
_COUNT = re.compile(r"\d{1,12}")
_REF = re.compile(r"refs/heads/[^\x00-\x20\x7f~^:?*\[\\]{1,255}")


def unsaved_work(runner: Runner, sessions: list[Session]) -> dict[str, list[str]]:
    """For each session with a repository (a clone here, or a workspace volume holding
    one on its engine), the reasons deleting it would lose work; sessions without
    one are absent. The sessions must not be running (the caller refuses those
    first). One git box per image and user: usually one for all."""
    trees: list[Tree] = []
    found: dict[str, list[str]] = {}
    for session in sessions:
        tree = gitbox.tree_of(session)
        if isinstance(tree, NoTree):
            found[tree.key] = [f"it cannot be checked for unsaved work: {tree.why}"]
        elif tree is not None:
            trees.append(tree)
    resolved = gitbox.ask_users(runner, trees) if any(not t.user for t in trees) else list(trees)
    ready = []
    for item in resolved:
        if isinstance(item, NoTree):
            found[item.key] = [f"it cannot be checked for unsaved work: {item.why}"]
        else:
            ready.append(item)
    for group in gitbox.groups(ready):
        found.update(check(runner, group))
    return found


def check(runner: Runner, trees: list[Tree]) -> dict[str, list[str]]:
    """Run the checks over ``trees`` in one box; reasons per tree's key."""
    result = gitbox.run_text(runner, trees, SCRIPT)
    records: dict[int, list[tuple[str, str]]] = {}
    ok = result.returncode == 0 and not gitbox.too_long(result) and not result.stdout.startswith("nogit")
    if ok:
        for line in result.stdout.splitlines():
            m = _RECORD.fullmatch(line)
            if m is None or int(m.group(1)) >= len(trees):
                ok = False
                break
            records.setdefault(int(m.group(1)), []).append((m.group(2), m.group(3) or ""))
    if not ok:
        why = gitbox.box_failure(result, trees[0].image) if result.returncode or not result.stdout.strip() \
            or result.stdout.startswith("nogit") else "the git box printed something that is not a check"
        return {t.key: [f"it cannot be checked for unsaved work: {why}"] for t in trees}
    return {t.key: reasons(records.get(i, []), t) for i, t in enumerate(trees)}


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 'es' if word.endswith('sh') else 's'}"


def reasons(records: list[tuple[str, str]], tree: Tree) -> list[str]:
    """The reasons in ``records`` (one tree's, in the order the box printed them)."""
    where = "its clone" if tree.kind == "bind" else "its workspace volume"
    if not records or records[-1][0] != "end":
        opening = records[0] if records else ("", "")
        if opening[0] == "top":
            why = escape(opening[1][:200]).removeprefix("fatal: ")
            return [f"{where} cannot be checked as a git repository ({why}); its files would be deleted"]
        return [f"the git box did not get through {where}; it cannot tell what would be lost"]
    out: list[str] = []
    for key, value in records[:-1]:
        parts = value.split(" ", 1)
        first = parts[0]
        rest = escape(parts[1][:200]) if len(parts) > 1 else ""
        if key == "changes":
            if first == "x":
                out.append(f"git status failed ({rest}); cannot tell what is uncommitted")
                continue
            counts = value.split(" ")
            if len(counts) != 2 or not all(_COUNT.fullmatch(c) for c in counts):
                out.append("git status printed no counts; cannot tell what is uncommitted")
                continue
            changed, untracked = int(counts[0]), int(counts[1])
            if changed:
                out.append(f"{_plural(changed, 'file')} with uncommitted changes")
            if untracked:
                out.append(_plural(untracked, "untracked file"))
        elif key == "heads":
            if first == "x":
                out.append(f"cannot list its branches ({rest}); cannot tell what is unpushed")
            elif not _COUNT.fullmatch(first):
                out.append("its branches cannot be counted; cannot tell what is unpushed")
            elif int(first) > MAX_BRANCHES:
                out.append(f"{int(first)} branches, more than the {MAX_BRANCHES} the guard counts one by one")
        elif key == "branch":
            ref = parts[1] if len(parts) > 1 else ""
            shown = escape(ref.removeprefix("refs/heads/"))
            if not _REF.fullmatch(ref):
                out.append(f"a branch named {shown[:100]!r}, which git does not allow")
            elif first == "x" or not _COUNT.fullmatch(first):
                out.append(f"branch {shown!r}: cannot count its unpushed commits")
            elif int(first):
                out.append(f"branch {shown!r}: {_plural(int(first), 'commit')} not on any remote branch")
        elif key == "detached":
            if not _COUNT.fullmatch(first):
                out.append("detached HEAD: cannot count its commits that are on no branch")
            elif int(first):
                out.append(f"detached HEAD: {_plural(int(first), 'commit')} not on any branch")
        elif key == "head":
            out.append(f"cannot read HEAD ({rest}); cannot tell what is unpushed")
        elif key == "stash":
            if first == "x":
                out.append(f"cannot list its stashes ({rest}); a stash would be lost unseen")
            elif not _COUNT.fullmatch(first):
                out.append("its stashes cannot be counted; a stash would be lost unseen")
            elif int(first):
                out.append(f"{_plural(int(first), 'stash')} (git stash list)")
        else:  # a second "top", or an "end" before the last record
            out.append("the git box printed its checks out of order; it cannot tell what would be lost")
    return out
