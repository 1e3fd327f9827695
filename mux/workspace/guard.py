"""What deleting sessions' repositories would lose, asked in the git box.

Answered from the clone alone (no fetch): a commit is safe once some
remote-tracking branch contains it, which is what a successful push records.
Ignored files are not counted (build output and caches would make every delete
refuse); neither are reflog-only commits or unpushed tags. Every check that
cannot run, or prints what it should not, is a reason (fail closed): a
refusal that `--force` overrides.

A workdir session's own git directory (mux.workspace.protect) is checked for its
commits only (the workdir's files are the user's own, on this machine): those that
neither the refs it started with (mux's record in the session dir, which the agent
cannot write) nor any ref of the user's repository (where `mux fetch` puts
refs/remotes/mux/NAME/*) reach. The box gets those commits on its stdin (``N own``,
then ``N ^COMMIT`` lines); when the directory's refs' files are still as mux copied
them (a digest in the record, read as bytes), nothing is new and no box runs.

The box prints one record per line, ``N KEY ...`` for tree /r/N, and ``N end``
when it got through tree N; a tree without its end was not checked.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from mux import paths
from mux.workspace import gitbox
from mux.workspace.gitbox import NoTree, Tree, escape
from mux.workspace.protect import read_base, refs_state

if TYPE_CHECKING:
    from mux.engine.runner import Runner
    from mux.session.sessions import Session

MAX_BRANCHES = 1000  # more is reported as a reason, not counted one by one
MAX_OWN_REFS = 20  # a workdir session's new refs named one by one in a refusal; the total counts them all
MAX_SAVED = 200_000  # commits the user's repository vouches for; more are left out (stricter, never laxer)
INPUT_LIMIT = 24 << 20  # bytes of the saved commits sent to the box (its /tmp holds them)
# sh, after gitbox.HARDEN; "$@" are the trees' mount points. The output goes through
# head: a repository cannot make it unbounded.
SCRIPT = r"""
head -c INLIMIT >/tmp/.in 2>/dev/null
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
own() {
  n=${1##*/}
  export GIT_DIR="$1"
  cd "$1" 2>/dev/null || { echo "$n top cannot enter it"; return; }
  harden
  git rev-parse --git-dir >/dev/null 2>/tmp/.err || { echo "$n top $(last)"; return; }
  grep "^$n ^" /tmp/.in | cut -d ' ' -f 2 >/tmp/.saved
  cut -c 2- /tmp/.saved | sed 's/$/ /' >/tmp/.pats
  if git for-each-ref --format='%(objectname) %(refname)' >/tmp/.refs 2>/tmp/.err; then
    echo "$n refs $(wc -l </tmp/.refs)"
  else
    echo "$n refs x $(last)"
  fi
  if c=$(git rev-list --count --all --ignore-missing --stdin </tmp/.saved 2>/tmp/.err); then
    echo "$n commits $c"
  else
    echo "$n commits x $(last)"
  fi
  if [ "$c" != 0 ]; then
    grep -vF -f /tmp/.pats /tmp/.refs | head -n OWNMAX | while read -r sha ref; do
      c=$(git rev-list --count --ignore-missing "$sha" --stdin </tmp/.saved 2>/dev/null) || c=x
      echo "$n ref $c $ref"
    done
    git symbolic-ref --quiet HEAD >/dev/null 2>/tmp/.err
    case $? in
      0) ;;
      1) c=$(git rev-list --count --ignore-missing HEAD --not --glob='refs/*' --stdin </tmp/.saved 2>/dev/null) \
           || c=x
         echo "$n detached $c" ;;
      *) echo "$n head x $(last)" ;;
    esac
  fi
  echo "$n end"
}
for d do
  if grep -qx "${d##*/} own" /tmp/.in; then (own "$d"); else check "$d"; fi
done 2>/dev/null | head -c LIMIT
""".replace("OWNMAX", str(MAX_OWN_REFS)).replace("MAX", str(MAX_BRANCHES)) \
    .replace("INLIMIT", str(INPUT_LIMIT)).replace("LIMIT", str(gitbox.OUTPUT_LIMIT))
_RECORD = re.compile(r"(\d+) (top|changes|heads|branch|detached|head|stash|refs|commits|ref|end)(?: (.*))?")
_ANY_REF = re.compile(r"refs/[^\x00-\x20\x7f~^:?*\[\\]{1,255}")
_NAME = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
NOT_HERE = "not in your repository"  # the words of a workdir session's unsaved commits (see refusal_hint)
DEFAULT_HINT = "stop it first (`mux stop NAME`), save its work, or use --force to delete anyway"
_COUNT = re.compile(r"\d{1,12}")
_REF = re.compile(r"refs/heads/[^\x00-\x20\x7f~^:?*\[\\]{1,255}")


def unsaved_work(runner: Runner, sessions: list[Session]) -> dict[str, list[str]]:
    """For each session with a repository (a clone here, or a workspace volume holding
    one on its engine), the reasons deleting it would lose work; sessions without
    one are absent. The sessions must not be running (the caller refuses those
    first). One git box per image and user: usually one for all."""
    trees: list[Tree] = []
    found: dict[str, list[str]] = {}
    saved: dict[str, list[str]] = {}  # a workdir session's own git directory: the commits already safe
    for session in sessions:
        tree = gitbox.tree_of(session)
        if tree is None:  # a workdir session: only its own git directory (its commits) can be lost
            tree = gitbox.own_git_tree(session)
            if isinstance(tree, Tree):
                try:
                    base = read_base(Path(paths.session_dir(session.name)))
                except ValueError as exc:
                    found[tree.key] = ["it cannot be checked for unsaved work: mux's record of the refs its "
                                       f"git directory started with cannot be read ({exc})"]
                    continue
                if base.state and refs_state(Path(tree.source)) == base.state:
                    continue  # its refs' files are as mux copied them: no commit of the agent's is reachable
                saved[tree.key] = saved_commits(runner, session, base.commits)
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
        found.update(check(runner, group, saved))
    return found


def saved_commits(runner: Runner, session: Session, started: list[str]) -> list[str]:
    """What a workdir session's own git directory holds that is safe already: the
    commits it ``started`` with (mux's record, outside the agent's reach:
    mux.workspace.protect) and every ref of the user's own repository, the workdir's (where `mux fetch` puts
    refs/remotes/mux/NAME/*). That repository was never mounted in the session; host
    git reads only its refs there."""
    found = dict.fromkeys(started)
    user_git = Path(session.workdir, ".git") if session.workdir.startswith("/") else None
    if user_git is not None and user_git.is_dir() and not user_git.is_symlink() and (user_git / "HEAD").is_file():
        listed = runner.query(["git", "--git-dir", str(user_git), "for-each-ref", "--format=%(objectname)"],
                              check=False)
        if listed.returncode == 0:  # else nothing vouched for: stricter, never laxer
            for line in listed.stdout.splitlines()[:MAX_SAVED]:
                if _NAME.fullmatch(line):
                    found[line] = None
    return list(found)


def box_input(trees: list[Tree], saved: dict[str, list[str]]) -> str | None:
    """The box's stdin: ``N own`` for each tree that is a workdir session's own git
    directory, then ``N ^COMMIT`` for each commit safe already; None when no tree is one."""
    lines = []
    for i, t in enumerate(trees):
        if t.key in saved:
            lines += [f"{i} own", *(f"{i} ^{c}" for c in saved[t.key])]
    return "".join(f"{line}\n" for line in lines) if lines else None


def check(runner: Runner, trees: list[Tree], saved: dict[str, list[str]] | None = None) -> dict[str, list[str]]:
    """Run the checks over ``trees`` in one box; reasons per tree's key. A tree whose
    key is in ``saved`` is a workdir session's own git directory: only its commits
    that none of ``saved[key]`` reaches count."""
    saved = saved or {}
    given = box_input(trees, saved)
    if given is not None and len(given) > INPUT_LIMIT:
        return {t.key: ["it cannot be checked for unsaved work: your repository and its record list more "
                        f"refs than the guard sends to the git box ({INPUT_LIMIT >> 20} MiB)"] for t in trees}
    result = gitbox.run_text(runner, trees, SCRIPT, input=given)
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
    return {t.key: (own_reasons if t.key in saved else reasons)(records.get(i, []), t)
            for i, t in enumerate(trees)}


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


def _ref_name(ref: str) -> str:
    shown = escape(ref)
    for prefix, kind in (("refs/heads/", "branch"), ("refs/tags/", "tag")):
        if ref.startswith(prefix):
            return f"{kind} '{shown.removeprefix(prefix)}'"  # escaped already: no repr's doubled backslashes
    return "its stash (git stash list)" if ref == "refs/stash" else f"ref '{shown}'"


def own_reasons(records: list[tuple[str, str]], tree: Tree) -> list[str]:
    """The reasons in a workdir session's own git directory's ``records``: its commits
    that are in neither the refs it started with nor the user's repository. Changes
    to the workdir's files are not counted: those files are the user's own, here."""
    where = "its own git directory"
    if not records or records[-1][0] != "end":
        opening = records[0] if records else ("", "")
        if opening[0] == "top":
            why = escape(opening[1][:200]).removeprefix("fatal: ")
            return [f"{where} cannot be checked as a git repository ({why}); its commits would be deleted"]
        return [f"the git box did not get through {where}; it cannot tell what would be lost"]
    out: list[str] = []
    total = -1
    for key, value in records[:-1]:
        parts = value.split(" ", 1)
        first = parts[0]
        rest = escape(parts[1][:200]) if len(parts) > 1 else ""
        if key == "refs":
            if first == "x":
                out.append(f"cannot list the refs of {where} ({rest}); cannot tell what would be lost")
            elif not _COUNT.fullmatch(first):
                out.append(f"the refs of {where} cannot be counted; cannot tell what would be lost")
        elif key == "commits":
            if first == "x" or not _COUNT.fullmatch(value):
                out.append(f"cannot count the commits of {where} ({rest or 'no count'}); "
                           "cannot tell what would be lost")
            else:
                total = int(value)
        elif key == "ref":
            ref = parts[1] if len(parts) > 1 else ""
            if not _ANY_REF.fullmatch(ref):
                out.append(f"a ref named '{escape(ref)[:100]}', which git does not allow")
            elif not _COUNT.fullmatch(first):
                out.append(f"{_ref_name(ref)}: cannot count its commits {NOT_HERE}")
            elif int(first):
                out.append(f"{_ref_name(ref)}: {_plural(int(first), 'commit')} {NOT_HERE}")
        elif key == "detached":
            if not _COUNT.fullmatch(first):
                out.append("detached HEAD: cannot count its commits that are on no branch")
            elif int(first):
                out.append(f"detached HEAD: {_plural(int(first), 'commit')} {NOT_HERE}")
        elif key == "head":
            out.append(f"cannot read HEAD ({rest}); cannot tell what would be lost")
        else:  # a clone's record, a second "top", or an "end" before the last record
            out.append("the git box printed its checks out of order; it cannot tell what would be lost")
    if total > 0 and not out:  # commits reachable only from refs past the ones named one by one
        out.append(f"{where}: {_plural(total, 'commit')} {NOT_HERE}")
    elif total < 0 and not out:
        out.append(f"the git box did not count the commits of {where}; it cannot tell what would be lost")
    return out


def refusal_hint(refused: list[tuple[str, list[str]]]) -> str:
    """The hint of `mux delete`'s refusal: for a workdir session's commits, the way back."""
    fetchable = [name for name, why in refused if any(NOT_HERE in r for r in why)]
    if not fetchable:
        return DEFAULT_HINT
    who = fetchable[0] if len(fetchable) == 1 else "NAME"
    return (f"`mux fetch {who}` (in your repository) brings its branches there as mux/{who}/*, "
            "then delete again (commits on no branch need a branch first); or use --force to delete anyway")
