"""What deleting a session's clone would lose, and deleting it.

:func:`unsaved_work` answers from the clone alone (no fetch): a commit is safe
once some remote-tracking branch contains it, which is what a successful push
records. Ignored files are not counted (build output and caches would make
every delete refuse); neither are reflog-only commits or unpushed tags.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mux.repo import gitcmd


def unsaved_work(path: Path) -> list[str]:
    """Human-readable reasons why deleting ``path`` would lose work; empty if none.

    A missing ``path`` has nothing to lose (``[]``). A directory git cannot read
    as a repository cannot be vouched for: the one reason returned says so, so
    that a guarded delete refuses rather than guesses.
    """
    path = Path(path)
    if not path.exists():
        return []
    config = [("safe.directory", str(path.absolute()))]  # the container may own the files

    def git(*args: str) -> gitcmd.Outcome:
        # Look, don't touch: no index refresh written back while an agent's git may
        # run in the container, and no root-owned index in the user's clone.
        return gitcmd.run(["--no-optional-locks", "-C", path, *args], config=config)

    top = git("rev-parse", "--show-toplevel")
    if not top.ok or Path(top.stdout.strip()).resolve() != path.resolve():
        why = "not the top of a work tree"
        if top.lines and not top.ok:
            why = top.lines[-1].removeprefix("fatal: ")
        return [f"{path} cannot be checked as a git repository ({why}); its files would be deleted"]
    return reasons(git)


def reasons(git: Callable[..., gitcmd.Outcome]) -> list[str]:
    """The checks, through any ``git``: on a clone here, or on an engine (mux/volumes.py)."""
    return _changes(git) + _unpushed(git) + _stashes(git)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _changes(git: Callable[..., gitcmd.Outcome]) -> list[str]:
    status = git("status", "--porcelain=v1", "-z", "--untracked-files=all")
    if not status.ok:
        return [f"git status failed ({_last(status)}); cannot tell what is uncommitted"]
    entries = [e for e in status.stdout.split("\0") if len(e) > 3 and e[2] == " "]
    untracked = sum(1 for e in entries if e.startswith("??"))
    changed = len(entries) - untracked
    reasons = []
    if changed:
        reasons.append(f"{_plural(changed, 'file')} with uncommitted changes")
    if untracked:
        reasons.append(f"{_plural(untracked, 'untracked file')}")
    return reasons


def _unpushed(git: Callable[..., gitcmd.Outcome]) -> list[str]:
    """Commits no remote-tracking branch has. Any git failure is a reason (fail closed)."""
    heads = git("for-each-ref", "--format=%(refname)", "refs/heads/")
    if not heads.ok:
        return [f"cannot list its branches ({_last(heads)}); cannot tell what is unpushed"]
    reasons = []
    for ref in heads.stdout.split():
        branch = ref.removeprefix("refs/heads/")
        n = _count(git("rev-list", "--count", ref, "--not", "--remotes"))
        if n is None:
            reasons.append(f"branch {branch!r}: cannot count its unpushed commits")
        elif n:
            reasons.append(f"branch {branch!r}: {_plural(n, 'commit')} not on any remote branch")
    head = git("symbolic-ref", "--quiet", "HEAD")
    if head.status not in (0, 1):  # 1: detached; anything else is git failing
        reasons.append(f"cannot read HEAD ({_last(head)}); cannot tell what is unpushed")
    elif head.status == 1:
        n = _count(git("rev-list", "--count", "HEAD", "--not", "--branches", "--remotes"))
        if n is None:
            reasons.append("detached HEAD: cannot count its commits that are on no branch")
        elif n:
            reasons.append(f"detached HEAD: {_plural(n, 'commit')} not on any branch")
    return reasons


def _count(outcome: gitcmd.Outcome) -> int | None:
    """The number `git rev-list --count` printed; None when git failed or printed no number."""
    text = outcome.stdout.strip()
    return int(text) if outcome.ok and text.isdigit() else None


def _stashes(git: Callable[..., gitcmd.Outcome]) -> list[str]:
    stash = git("stash", "list")
    if not stash.ok:
        return [f"cannot list its stashes ({_last(stash)}); a stash would be lost unseen"]
    n = len(stash.stdout.splitlines())
    return [f"{_plural(n, 'stash')} (git stash list)"] if n else []


def _last(outcome: gitcmd.Outcome) -> str:
    return outcome.lines[-1] if outcome.lines else f"exit status {outcome.status}"
