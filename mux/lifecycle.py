"""Start, stop, attach, exec, logs and delete of existing sessions."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from functools import partial

from mux import argv as A
from mux import paths
from mux.errors import DockerError, MuxError, SessionNotFound
from mux.hostfiles import being_created, remove_session_dir
from mux.runner import Runner, host_step
from mux.sessions import Session, find, leftovers, list_sessions


def _not_found_as_session(exc: DockerError, name: str) -> MuxError:
    if "no such container" in exc.stderr.lower():
        return SessionNotFound(name)
    return exc


def simple(runner: Runner, verb: str, name: str) -> None:
    """`docker start|stop mux-NAME`: one call; a missing container is exit 3."""
    argv = A.start_argv(name) if verb == "start" else A.stop_argv(name)
    try:
        runner.run(argv)
    except DockerError as exc:
        raise _not_found_as_session(exc, name) from None


def attach(runner: Runner, name: str, *, quiet: bool = False) -> None:
    session = find(runner, name)
    if not session.running:
        runner.run(A.start_argv(name))
    if not quiet and not runner.dry_run:
        print(f"mux: attached to {name}; detach with Ctrl-P Ctrl-Q", file=sys.stderr)
    runner.exec(A.attach_argv(name))


def exec_in(runner: Runner, name: str, command: Sequence[str], *, shell: str, tty: bool) -> None:
    session = find(runner, name)
    if not session.running:
        raise MuxError(f"session {name!r} is {session.status}", hint=f"`mux start {name}` first")
    cmd = list(command) or ["/bin/sh", "-c", A.SHELL_FALLBACK, "mux-session", shell]
    runner.exec(A.exec_argv(name, cmd, tty=tty))


def logs(runner: Runner, name: str, *, follow: bool) -> None:
    find(runner, name)
    runner.exec(A.logs_argv(name, follow=follow))


def blockers(session: Session, *, force: bool) -> list[str]:
    """Why deleting this session without --force would lose something."""
    if force:
        return []
    reasons = []
    if session.running:
        reasons.append("it is running")
    reasons += unsaved_work(session)
    return reasons


def unsaved_work(session: Session) -> list[str]:
    """Work in a repo session's clone that exists nowhere else (see mux.repo)."""
    clone = paths.session_dir(session.name) / "repo"
    if not clone.is_dir():
        return []
    from mux import repo

    return repo.unsaved_work(clone)


def delete(runner: Runner, name: str | None, *, force: bool, quiet: bool) -> None:
    """Remove sessions and their files; what would lose work is refused, not skipped
    silently. Files whose container is gone count as sessions too, unless a
    `mux new` is still making them (see sessions.leftovers)."""
    sessions = list_sessions(runner, name)
    sessions += [s for s in leftovers(sessions) if name is None or s.name == name]
    if name is not None and not sessions:
        if being_created(paths.session_dir(name)):
            raise MuxError(f"session {name!r} is being created by another mux right now",
                           hint="wait for it, then try again")
        raise SessionNotFound(name)
    doomed: list[Session] = []
    refused: list[tuple[Session, list[str]]] = []
    for session in sessions:
        reasons = blockers(session, force=force)
        if not reasons and not force:
            from mux.volumes import unsaved_work as on_engine  # /workspace in a volume

            reasons = on_engine(runner, session)
        if reasons:
            refused.append((session, reasons))
        else:
            doomed.append(session)
    containers = [s.container for s in doomed if s.container]
    if containers:
        runner.run(A.rm_argv(containers, force=force))
        from mux.volumes import remove_volumes

        remove_volumes(runner, doomed)
    for session in doomed:
        directory = paths.session_dir(session.name)
        if directory.exists() or (runner.dry_run and session.container):
            host_step(runner, ["rm", "-rf", directory], partial(remove_session_dir, directory))
        if not quiet and not runner.dry_run:
            print(f"Deleted session {session.name}" + ("." if session.container else " (its container was gone)."))
    if refused:
        lines = [f"{s.name}: {'; '.join(r)}" for s, r in refused]
        what = f"session {refused[0][0].name!r}" if name else f"{len(refused)} session(s)"
        raise MuxError(
            f"not deleting {what}: " + " | ".join(lines),
            hint="stop it first (`mux stop NAME`), save its work, or use --force to delete anyway",
        )
