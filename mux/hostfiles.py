"""A session's host-side files (under the data dir): claimed, prepared, removed.

The session directory is made atomically before anything else, so it doubles as
the claim on the name: a second `mux new` of the same name finds it and stops.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from mux.errors import MuxError
from mux.runner import Runner, host_step
from mux.spec import SessionSpec

if TYPE_CHECKING:
    from mux.config import Config
    from mux.create import NewOptions

DATA_DIR_HINT = "check the data dir (MUX_DATA_DIR): free space and permissions"
CREATING = ".creating"  # locked by the `mux new` that is making this session
_held: list[int] = []  # lock fds: kept open until this process exits


def lock_creation(session_dir: Path) -> None:
    """Mark the session as being created: `mux delete` leaves a locked dir alone.
    The lock goes with this process, however it ends."""
    fd = os.open(session_dir / CREATING, os.O_CREAT | os.O_WRONLY, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    _held.append(fd)


def being_created(session_dir: Path) -> bool:
    """True while some `mux new` still holds the directory's creation lock."""
    try:
        fd = os.open(session_dir / CREATING, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def claim_session_dir(runner: Runner, name: str, session_dir: Path) -> None:
    """Create the session's host directory atomically: if it exists, the name is
    taken (or being created right now), and this `mux new` touches nothing."""
    try:
        session_dir.parent.mkdir(parents=True, exist_ok=True)
        session_dir.mkdir(mode=0o700)
        lock_creation(session_dir)
    except FileExistsError:
        from mux.create import name_taken

        raise name_taken(runner, name, session_dir) from None
    except OSError as exc:
        raise MuxError(f"cannot create {session_dir}: {exc.strerror}",
                       hint=DATA_DIR_HINT) from None


def prepare_host(runner: Runner, config: Config, spec: SessionSpec, session_dir: Path,
                 opts: NewOptions, progress: bool, proxied: bool = False) -> SessionSpec:
    """Host-side files the container mounts, each step printed like a command.
    Returns the spec, completed with what only the clone can tell (its branch)."""
    labels = dict(spec.labels)
    if "mux.repo" in labels:
        from mux import repo

        url = repo.validate_repo_url(opts.repo or "")  # a local path made absolute
        if runner.dry_run:
            for argv in repo.clone_commands(url, spec.workdir, opts.branch):
                runner.show(argv)
        else:
            git_config: list[tuple[str, str]] = []
            if proxied and url.lower().startswith(("https://", "http://")):
                from mux.proxy.session import host_git_config

                git_config = host_git_config(spec.name)  # the proxy's credential rules apply
            cloned = repo.clone(url, spec.workdir, opts.branch, progress=progress, git_config=git_config)
            labels["mux.branch"] = cloned.branch
            spec = replace(spec, labels=tuple(labels.items()))
    try:
        if spec.home is not None:
            home = spec.home
            host_step(runner, ["mkdir", "-p", "-m", "700", home], lambda: home.mkdir(mode=0o700))
        if config.docker.rust.sccache:  # [docker.rust]: shared cache dirs, made as the user
            from mux.sccache import make_dirs

            make_dirs(runner, config.docker.rust, session_dir)
    except OSError as exc:
        raise MuxError(f"cannot prepare the session's files in {session_dir}: {exc.strerror}",
                       hint=DATA_DIR_HINT) from None
    return spec


def remove_session_dir(session_dir: Path) -> None:
    """Remove a session's host files, git's read-only object files included,
    and retire its proxy secret."""
    if (session_dir / "proxy.env").exists():
        from mux.proxy.session import forget_session

        forget_session(session_dir.name)
    if (session_dir / "repo").exists():
        from mux.repo import remove_clone

        remove_clone(session_dir / "repo")
    shutil.rmtree(session_dir, ignore_errors=True)
