"""A session's host-side files (under the data dir): claimed, prepared, removed.

The session directory is made atomically before anything else, so it doubles as
the claim on the name: a second `mux new` of the same name finds it and stops.
"""

from __future__ import annotations

import fcntl
import os
import stat
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from mux import paths
from mux.engine.runner import Runner, host_step, write_argv
from mux.errors import MuxError

if TYPE_CHECKING:
    from mux.spec import SessionSpec

DATA_DIR_HINT = "check the data dir (MUX_DATA_DIR): free space and permissions"
CREATING = ".creating"  # locked by the `mux new` that is making this session
CIDFILE = "container.id"  # docker run --cidfile: the container this session's `mux new` made
UID0 = "uid0"  # the session may run as the host's root: its setuid bits are cleared at stop (mux.workspace.special)
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


def being_created(session_dir: str | os.PathLike[str]) -> bool:
    """True while some `mux new` still holds the directory's creation lock."""
    try:
        fd = os.open(os.path.join(session_dir, CREATING), os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


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


def remove_tree(path: Path) -> None:
    """Delete a directory tree (a session's files, a clone) completely; a missing
    ``path`` is fine.

    git makes its object files read-only, and an agent may leave read-only
    directories, which a plain rmtree cannot empty: make them writable and retry.
    """
    path = Path(path)
    if path.is_symlink():
        path.unlink()
        return
    if not path.exists():
        return
    import shutil  # here: shutil is slow, and most commands never remove a tree

    resolved = path.resolve()
    if resolved in (Path("/"), Path.home().resolve(), Path(paths.data_dir()).resolve()):
        raise MuxError(f"refusing to delete {resolved}: it is not a session's files")

    def retry(func: Callable[..., object], name: str, exc_info: tuple[type, BaseException, object]) -> None:
        target = Path(name)
        try:
            os.chmod(target.parent, stat.S_IRWXU)
            if not target.is_symlink():
                os.chmod(target, stat.S_IRWXU)
        except OSError:
            raise exc_info[1] from None  # not ours to make writable (root's, say): report it
        if func in (os.open, os.scandir, os.listdir):  # a directory it could not read: now it can
            shutil.rmtree(name, onerror=retry)
        else:
            func(name)

    try:
        shutil.rmtree(path, onerror=retry)
    except OSError as exc:
        raise MuxError(
            f"cannot delete {path}: {exc.strerror or exc}",
            hint="files created as another user (for example root in the container) "
            "need that user, or sudo, to delete",
        ) from None
