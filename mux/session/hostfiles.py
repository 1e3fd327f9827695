"""A session's host-side files (under the data dir): claimed, prepared, removed.

The session directory is made atomically before anything else, so it doubles as
the claim on the name: a second `mux new` of the same name finds it and stops.
"""

from __future__ import annotations

import fcntl
import os
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from mux.engine.runner import Runner, host_step, write_argv
from mux.errors import MuxError
from mux.session.layout import CREATING, DATA_DIR_HINT, UID0, remove_tree

if TYPE_CHECKING:
    from mux.spec import SessionSpec

_held: dict[Path, int] = {}  # lock fds: kept open until released or this process exits


def lock_creation(session_dir: Path) -> None:
    """Mark the session as being created: `mux delete` leaves a locked dir alone.
    The lock goes with this process, however it ends."""
    fd = os.open(session_dir / CREATING, os.O_CREAT | os.O_WRONLY, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    _held[session_dir] = fd


def release_creation(session_dir: Path) -> None:
    """The session is complete: drop the lock (and its file)."""
    fd = _held.pop(session_dir, None)
    try:
        (session_dir / CREATING).unlink()
    except OSError:
        pass
    if fd is not None:
        os.close(fd)



def claim_session_dir(session_dir: Path) -> bool:
    """Create the session's host directory atomically and lock it; False if it
    exists already (the name is taken, or being created right now)."""
    try:
        session_dir.parent.mkdir(parents=True, exist_ok=True)
        session_dir.mkdir(mode=0o700)
    except FileExistsError:
        return False
    except OSError as exc:
        raise MuxError(f"cannot create {session_dir}: {exc.strerror}", hint=DATA_DIR_HINT) from None
    try:
        lock_creation(session_dir)
    except OSError as exc:
        import shutil  # not at the top: `mux list` imports this module, and shutil is slow

        shutil.rmtree(session_dir, ignore_errors=True)
        raise MuxError(f"cannot create {session_dir / CREATING}: {exc.strerror}", hint=DATA_DIR_HINT) from None
    return True


def clone_repo(runner: Runner, spec: SessionSpec, url: str, branch: str | None, progress: bool,
               proxied: bool) -> SessionSpec:
    """Clone a repo session's repository into its workdir; the spec gains the branch."""
    from mux.workspace import repo

    if runner.dry_run:
        for argv in repo.clone_commands(url, spec.workdir, branch):
            runner.show(argv)
        return spec
    git_config: list[tuple[str, str]] = []
    if proxied and url.lower().startswith(("https://", "http://")):
        from mux.egress.wiring import host_git_config

        git_config = host_git_config(spec.name)  # the proxy's credential rules apply
    cloned = repo.clone(url, spec.workdir, branch, progress=progress, git_config=git_config)
    hand_over(runner, spec, [spec.workdir], recursive=True)
    labels = dict(spec.labels)
    labels["mux.branch"] = cloned.branch
    from mux.workspace.heads import base_labels

    labels.update(base_labels(spec.workdir / ".git"))  # where `mux diff` starts from: no agent ran yet
    return spec._replace(labels=tuple(labels.items()))


def hand_over(runner: Runner, spec: SessionSpec, paths_: list[Path], *, recursive: bool = False) -> None:
    """mux runs as root and the session as another uid (the workdir's owner): what mux
    made for it (the clone, HOME, cache directories) becomes that uid's."""
    if not paths_ or os.getuid() != 0 or spec.user is None or spec.user.startswith("0:"):
        return
    uid, gid = (int(x) for x in spec.user.split(":"))

    def chown() -> None:
        for top in paths_:
            for path in [top, *(top.rglob("*") if recursive else ())]:
                os.chown(path, uid, gid, follow_symlinks=False)

    host_step(runner, ["chown", *(["-R"] if recursive else []), spec.user, *paths_], chown)


def make_dirs(runner: Runner, spec: SessionSpec, session_dir: Path) -> None:
    """Directories the container mounts, made as the user (docker would make them as root)."""
    try:
        if spec.uid0 and not runner.dry_run:  # mux's own note, like the cidfile: not a printed step
            (session_dir / UID0).touch()
        if spec.home is not None:
            home = spec.home
            host_step(runner, ["mkdir", "-p", "-m", "700", home], lambda: home.mkdir(mode=0o700))
            hand_over(runner, spec, [home])
        for path, text in spec.accounts:  # the session's passwd and group (mux.session.account)
            argv, content = write_argv(path, text)
            host_step(runner, argv, partial(path.write_text, content))
        if spec.cache_dirs:  # [docker.rust]: shared cache dirs, made as the user
            from mux.session.sccache import make_dirs as make_cache_dirs

            make_cache_dirs(runner, spec.cache_dirs)
            hand_over(runner, spec, [d for d in spec.cache_dirs if not runner.dry_run and d.stat().st_uid == 0])
    except OSError as exc:
        raise MuxError(f"cannot prepare the session's files in {session_dir}: {exc.strerror}",
                       hint=DATA_DIR_HINT) from None


def remove_session_dir(session_dir: Path) -> None:
    """Remove a session's host files, git's read-only object files included, and
    retire its proxy secret. Raises MuxError naming what could not be removed."""
    if session_dir.is_symlink() or not session_dir.exists():
        return  # never follow a link out of the data dir
    if (session_dir / "proxy.env").exists():
        from mux.egress.wiring import forget_session

        forget_session(session_dir.name)
    from mux.workspace.protect import remove_placeholders

    kept = remove_placeholders(session_dir)  # what a workdir session's `mux new` made in the workdir
    if kept:
        import sys

        print(f"mux: note: left in the workdir, as it is no longer mux's placeholder: {', '.join(kept)}",
              file=sys.stderr)
    try:
        remove_tree(session_dir)  # also empties read-only directories
    except MuxError as exc:
        raise MuxError(f"could not remove all of {session_dir}: {exc.message.split(': ', 1)[-1]}",
                       hint=exc.hint) from None

