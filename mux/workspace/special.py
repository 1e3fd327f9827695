"""What a uid-0 session may not leave on the host: setuid/setgid files and device nodes.

A session that runs as the host's root (``[docker] run_as_root``, or
``run_as_user = false`` with an image whose user is root) can copy a shell into
the workdir and make it setuid: a root shell for anyone who can reach the file.
It cannot make device nodes (MKNOD is dropped, mux.engine.argv.SECURITY), but one found
is removed all the same. mux clears the bits when the session stops (`mux stop`)
and when it is deleted, and says what it cleared.

The walk never follows a symbolic link, not even one swapped in for a directory
while it runs: every step is relative to an open directory (os.fwalk) and files
are opened with O_NOFOLLOW before they are changed.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

BITS = stat.S_ISUID | stat.S_ISGID
MAX_SHOWN = 5


class Cleared(NamedTuple):
    bits: list[str]  # files whose setuid/setgid bits were cleared (relative paths)
    devices: list[str]  # device nodes removed
    failed: list[str]  # what could not be changed (another user's file, and mux is not root)


def clear(top: Path) -> Cleared:
    """Clear setuid/setgid bits of regular files under ``top`` and remove its device nodes."""
    done = Cleared([], [], [])
    if top.is_symlink() or not top.is_dir():
        return done

    def unreadable(exc: OSError) -> None:  # a directory another user closed: not checked
        where = Path(exc.filename) if exc.filename else top
        done.failed.append(str(where.relative_to(top)) if where.is_relative_to(top) else str(where))

    for dirpath, _dirs, files, dirfd in os.fwalk(top, follow_symlinks=False, onerror=unreadable):
        rel = Path(dirpath).relative_to(top)
        for name in files:
            shown = str(rel / name)
            try:
                st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
                if stat.S_ISBLK(st.st_mode) or stat.S_ISCHR(st.st_mode):
                    os.unlink(name, dir_fd=dirfd)
                    done.devices.append(shown)
                elif stat.S_ISREG(st.st_mode) and st.st_mode & BITS:
                    _clear_bits(name, dirfd)
                    done.bits.append(shown)
            except OSError:
                done.failed.append(shown)
    return done


def _clear_bits(name: str, dirfd: int) -> None:
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC, dir_fd=dirfd)
    try:
        st = os.fstat(fd)
        if stat.S_ISREG(st.st_mode) and st.st_mode & BITS:
            os.fchmod(fd, stat.S_IMODE(st.st_mode) & ~BITS)
    finally:
        os.close(fd)


def _listed(names: list[str]) -> str:
    shown = [n.encode("unicode_escape").decode("ascii") for n in names[:MAX_SHOWN]]
    return ", ".join(shown) + (f" and {len(names) - MAX_SHOWN} more" if len(names) > MAX_SHOWN else "")


Helper = Callable[[Path], "list[str] | None"]  # as root in a container: what it changed, None: could not


def after_root_session(name: str, dirs: list[Path], as_root: Helper | None = None) -> None:
    """Clear what session ``name`` (one that may run as uid 0) left in ``dirs``; say so.
    What this user cannot change (root's files, and mux is not root) ``as_root`` does."""
    for top in dirs:
        done = clear(top)
        if done.failed and as_root is not None:
            changed = as_root(top)
            if changed is not None:
                done.bits.extend(changed)
                done.failed.clear()
        if done.bits:
            n = len(done.bits)
            print(f"mux: note: session {name} ran as root: cleared the setuid/setgid bits of {n} "
                  f"file{'s' if n != 1 else ''} in {top}: {_listed(done.bits)}", file=sys.stderr)
        if done.devices:
            print(f"mux: note: session {name} ran as root: removed {len(done.devices)} device node(s) "
                  f"in {top}: {_listed(done.devices)}", file=sys.stderr)
        if done.failed:
            print(f"mux: warning: session {name} ran as root: could not check or clear {len(done.failed)} "
                  f"file(s) in {top}: {_listed(done.failed)} (run `sudo chmod ug-s` on them, or `sudo "
                  f"find {top} -perm /6000` to see them)", file=sys.stderr)
