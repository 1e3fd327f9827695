"""A session's host files by name, and the two reads and one removal every layer needs.

A leaf: it imports only the ground floor (paths, errors), so the session, egress,
workspace and proxy-wiring modules can all import it, at module level, without a cycle.
"""

from __future__ import annotations

import fcntl
import os
import stat
from collections.abc import Callable
from typing import TYPE_CHECKING

from mux import paths
from mux.errors import MuxError

if TYPE_CHECKING:
    from pathlib import Path

ENV_FILE_NAME = "proxy.env"  # the session's proxy URLs (its secret), for --env-file (mux/egress/wiring.py)
ENGINE_MARKER = "engine"  # in a session dir: the session lives on a remote engine (mux/session/volumes.py)
CREATING = ".creating"  # locked by the `mux new` that is making this session
CIDFILE = "container.id"  # docker run --cidfile: the container this session's `mux new` made
UID0 = "uid0"  # the session may run as the host's root: its setuid bits are cleared at stop (mux.workspace.special)
DATA_DIR_HINT = "check the data dir (MUX_DATA_DIR): free space and permissions"
HOST_ALIAS = "host.docker.internal"  # the name a bridge-network session reaches this machine by


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


def proxy_address(session_name: str) -> str | None:
    """HOST:PORT of the proxy as the session's env-file here names it (no secret); None
    if it has none."""
    try:
        with open(os.path.join(paths.session_dir(session_name), ENV_FILE_NAME)) as fh:
            first = fh.read().split("\n", 1)[0]
    except OSError:
        return None
    host, _, port = first.rpartition("@")[2].rpartition(":")
    return f"{host}:{port}" if host and port.isdigit() else None


def remove_tree(path: Path) -> None:
    """Delete a directory tree (a session's files, a clone) completely; a missing
    ``path`` is fine.

    git makes its object files read-only, and an agent may leave read-only
    directories, which a plain rmtree cannot empty: make them writable and retry.
    """
    import shutil  # here: shutil is slow, and most commands never remove a tree
    from pathlib import Path

    path = Path(path)
    if path.is_symlink():
        path.unlink()
        return
    if not path.exists():
        return
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
