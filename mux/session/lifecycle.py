"""Start, stop, attach, exec, logs and delete of existing sessions.

Every command finds the session by its labels (sessions.find) and acts on its
container ID; files are only ever removed inside the data dir entry of a valid
session of the current instance (paths.session_dir checks the name).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from mux import paths
from mux.engine import argv as A
from mux.engine.runner import host_step
from mux.errors import MuxError
from mux.session.hostfiles import remove_session_dir
from mux.session.layout import UID0, being_created
from mux.session.sessions import Session, find, leftovers, list_sessions, not_found
from mux.session.startcheck import wait_started

if TYPE_CHECKING:
    from collections.abc import Callable

    from mux.config import Config
    from mux.engine.runner import Runner


def ready(runner: Runner, load_config: Callable[[], Config], name: str) -> None:
    """Before start, attach or exec of session ``name`` (every front end: the commands,
    the TUI): a session wired to the proxy gets it running on the config the user has
    now (exit 5 if it cannot), a proxy-only one its relay, and one on a remote engine
    its tunnel. With a dry-run runner, what that would run is printed. The config is
    read only for proxied sessions; the others cost one stat()."""
    from mux.egress.wiring import ensure_proxy_for

    ensure_proxy_for(name, load_config, runner)
    if runner.engine.remote:  # and its tunnel, for a session on another machine
        from mux.egress.tunnel import ensure_for_session

        ensure_for_session(runner, name)


BIND_SOURCES = '{{range .Mounts}}{{if eq .Type "bind"}}{{println .Source}}{{end}}{{end}}'


def mounts_present(runner: Runner, session: Session) -> None:
    """Refuse to start a session whose bind-mounted directories are gone: docker would
    re-create them, empty and owned by root (a HOME mux then cannot remove)."""
    if runner.engine.remote:
        return  # those paths are on the engine's machine, not this one
    found = runner.query(A.inspect_argv(session.ref, BIND_SOURCES), check=False)
    missing = [p for p in found.stdout.splitlines() if p and not os.path.lexists(p)]
    if missing:
        raise MuxError(
            f"not starting session {session.name!r}: {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} gone, and docker would re-create "
            f"{'it' if len(missing) == 1 else 'them'} empty, owned by root",
            hint=f"restore it, or `mux delete --force {session.name}` to remove the session",
        )


def start_checked(runner: Runner, session: Session) -> None:
    """`docker start` the session, then make sure its command is still running."""
    mounts_present(runner, session)
    runner.run(A.start_argv(session.ref))
    started = wait_started(runner, session.ref)
    if not started.running:
        raise MuxError(
            f"session {session.name!r} stopped right after starting: its command exited "
            f"with code {started.exit_code}",
            hint=f"its last output: {started.summary()}; `mux logs {session.name}` shows all",
        )


def simple(runner: Runner, verb: str, name: str) -> None:
    """`docker start|stop ID` of the session's container; a missing session is exit 3."""
    session = find(runner, name)
    if verb == "start":
        start_checked(runner, session)
    else:
        runner.run(A.stop_argv(session.ref))
        clear_special(runner, session, [Path(paths.session_dir(session.name), "home")])


def clear_special(runner: Runner, session: Session, extra: list[Path]) -> None:
    """A session that may have run as the host's root: no setuid/setgid file or device
    node of its stays in its host directories (mux/workspace/special.py)."""
    directory = Path(paths.session_dir(session.name))
    if runner.dry_run or runner.engine.remote or not (directory / UID0).is_file():
        return
    from mux.workspace.special import after_root_session

    dirs = [Path(session.workdir)] if session.workdir.startswith("/") else []  # not a volume's name
    after_root_session(session.name, dirs + extra, lambda top: special_as_root(runner, session, top))


def special_as_root(runner: Runner, session: Session, directory: Path) -> list[str] | None:
    """What a uid-0 session left that this user cannot change (root's files), changed by a
    throw-away container of the session's image as root, with only ``directory`` mounted.
    The paths it printed (untrusted: names the agent chose), or None when it failed."""
    if not session.image:
        return None
    from mux.validate import image

    try:
        argv = A.special_cleanup_argv(image(session.image, "the session's image label"), directory,
                                      labels=paths.helper_labels("cleanup"))
    except MuxError:
        return None
    done = runner.run(argv, check=False)
    if done.returncode != 0:
        return None
    return [line.removeprefix("/x/") for line in done.stdout.splitlines()[:10000] if line.startswith("/x/")]


def attach(runner: Runner, name: str, *, quiet: bool = False) -> int:
    """`docker attach`; the exit code mux should return (0 after a detach)."""
    session = find(runner, name)
    if not session.running:
        start_checked(runner, session)
    if not quiet and not runner.dry_run:
        print(f"mux: attached to {name}; detach with Ctrl-P Ctrl-Q", file=sys.stderr)
    code = runner.interactive(A.attach_argv(session.ref))
    if code not in (0, 130) and not runner.dry_run and find(runner, name).running:
        return 0  # detached (docker says "read escape sequence" and exits 1); it runs on
    return code


def exec_in(runner: Runner, name: str, command: Sequence[str], *, shell: str, tty: bool) -> int:
    session = find(runner, name)
    if not session.running:
        raise MuxError(f"session {name!r} is {session.status}", hint=f"`mux start {name}` first")
    cmd = list(command) or ["/bin/sh", "-c", A.SHELL_FALLBACK, "mux-session", shell]
    return runner.interactive(A.exec_argv(session.ref, cmd, tty=tty))


def logs(runner: Runner, name: str, *, follow: bool) -> int:
    session = find(runner, name)
    return runner.interactive(A.logs_argv(session.ref, follow=follow))


def remove_as_root(runner: Runner, session: Session, directory: Path) -> bool:
    """Files a container made as root (run_as_user = false) in the session's clone or
    HOME, which this user cannot delete: removed by a throw-away container of the
    session's own image, as root, with only ``directory`` mounted. False when that
    cannot be tried (no image known, a remote engine) or fails."""
    if runner.engine.remote or not session.image or runner.dry_run:
        return False
    from mux.validate import image

    try:
        entries = sorted(p.name for p in directory.iterdir())
        argv = A.cleanup_argv(image(session.image, "the session's image label"), directory,
                              entries, labels=paths.helper_labels("cleanup"))
    except (OSError, MuxError):
        return False
    return runner.run(argv, check=False).returncode == 0


def blockers(session: Session, *, force: bool) -> list[str]:
    """Why deleting this session without --force would lose something, before its files
    are looked at: a running session is refused before anything reads its clone."""
    if force:
        return []
    return ["it is running"] if session.running else []


def delete(runner: Runner, name: str | None, *, force: bool, quiet: bool) -> None:
    """Remove sessions and their files; what would lose work is refused, not skipped
    silently. Files whose container is gone count as sessions too, unless a
    `mux new` is still making them (see sessions.leftovers). Containers with
    foreign labels, and other instances' sessions, are never seen here."""
    own_dir = paths.session_dir(name) if name is not None else None  # checks NAME (exit 2)
    sessions = list_sessions(runner, name)
    sessions += [s for s in leftovers(sessions) if name is None or s.name == name]
    if name is not None and not sessions:
        if own_dir is not None and being_created(own_dir):
            raise MuxError(f"session {name!r} is being created by another mux right now",
                           hint="wait for it, then try again")
        raise not_found(runner, name)
    doomed: list[Session] = []
    refused: list[tuple[Session, list[str]]] = []
    unsaved: dict[str, list[str]] = {}
    idle = [s for s in sessions if not force and not s.running]
    if idle:  # their repositories, read by git in one throwaway container (mux.workspace), never here
        from mux.workspace.guard import unsaved_work

        unsaved = unsaved_work(runner, idle)
    for session in sessions:
        reasons = blockers(session, force=force) + unsaved.get(session.name, [])
        if reasons:
            refused.append((session, reasons))
        else:
            doomed.append(session)
    containers = [s.ref for s in doomed if s.container]
    if containers:
        runner.run(A.rm_argv(containers, force=force))
        from mux.session.volumes import after_delete

        after_delete(runner, doomed)
    if any(s.egress == "proxy-only" for s in doomed):  # the last one takes mux's egress network along
        from mux.egress.relay import remove_if_unused

        remove_if_unused(runner, leaving={s.container for s in doomed})
    left: list[tuple[Session, MuxError]] = []
    for session in doomed:
        directory = Path(paths.session_dir(session.name))
        if session.container:  # its workdir stays: what a root session left there is cleared
            clear_special(runner, session, [])
        try:
            if directory.exists() or (runner.dry_run and session.container):
                try:
                    host_step(runner, ["rm", "-rf", directory], partial(remove_session_dir, directory))
                except MuxError:
                    if not remove_as_root(runner, session, directory):
                        raise
                    remove_session_dir(directory)
        except MuxError as exc:
            left.append((session, exc))
            continue
        if not quiet and not runner.dry_run:
            print(f"Deleted session {session.name}" + ("." if session.container else " (its container was gone)."))
    if left:  # never "Deleted" with files left: say what is left, and how to remove it
        raise MuxError("; ".join(f"session {s.name!r}: {exc.message}" for s, exc in left),
                       hint=next((exc.hint for _, exc in left if exc.hint), None)
                       or "files made as root need root to remove: "
                       + " ".join(f"`sudo rm -rf {paths.session_dir(s.name)}`" for s, _ in left))
    if refused:
        lines = [f"{s.name}: {'; '.join(r)}" for s, r in refused]
        what = f"session {refused[0][0].name!r}" if name else f"{len(refused)} session(s)"
        from mux.workspace.guard import refusal_hint

        raise MuxError(f"not deleting {what}: " + " | ".join(lines),
                       hint=refusal_hint([(s.name, r) for s, r in refused]))
