"""`podman attach` on this terminal, with Ctrl-P Ctrl-Q that detaches.

Podman 4.3 detaches only when each key of the sequence arrives in a read of its own
(containers/common's detach.Copy: ``nr != 1 || buf[0] != key`` ends the match), while
docker scans its input byte by byte. A terminal that sends the two keys in one write
(tmux's ``send-keys C-p C-q``, a paste, a fast typist over ssh, a test's one write)
meets "nothing happens": podman passes both bytes to the session (busy box sh recalls
its history on Ctrl-P). Measured here: one key per write detaches, both in one write
never do.

So on a terminal mux runs ``podman attach`` on a pty of its own and copies bytes both
ways, writing each detach key alone with a pause around it, so podman reads it alone.
The user's terminal is put in raw mode (podman does the same to its own terminal),
and its size follows the user's (SIGWINCH). Everything else passes through unchanged.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import signal
import sys
import termios
import time
import tty

DETACH_KEYS = b"\x10\x11"  # Ctrl-P, Ctrl-Q: podman's (and docker's) default
PAUSE = 0.05  # long enough for podman's reader to take what came before, and the key, alone


def wanted(args: list[str]) -> bool:
    """``podman attach`` with this process on a terminal."""
    return args[:2] == ["podman", "attach"] and os.isatty(sys.stdin.fileno()) and os.isatty(sys.stdout.fileno())


def pieces(data: bytes, keys: bytes = DETACH_KEYS) -> list[bytes]:
    """``data`` cut so that each detach key is a piece of its own."""
    out: list[bytes] = []
    start = 0
    for i, byte in enumerate(data):
        if byte in keys:
            if i > start:
                out.append(data[start:i])
            out.append(data[i:i + 1])
            start = i + 1
    if start < len(data):
        out.append(data[start:])
    return out


def _forward(master: int, data: bytes) -> None:
    for piece in pieces(data):
        alone = len(piece) == 1 and piece[0] in DETACH_KEYS
        if alone:
            time.sleep(PAUSE)
        _write_all(master, piece)
        if alone:
            time.sleep(PAUSE)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]


def _copy_size(src: int, dst: int) -> None:
    try:
        fcntl.ioctl(dst, termios.TIOCSWINSZ, fcntl.ioctl(src, termios.TIOCGWINSZ, b"\0" * 8))
    except OSError:
        pass


def child_terminal() -> None:
    """In the child, before it execs podman: the pty is its terminal; this terminal's size
    first, and raw from the start, so what comes before podman's own raw mode is neither
    echoed nor lost."""
    _copy_size(sys.stdout.fileno(), 0)
    tty.setraw(0, termios.TCSANOW)


def attach(pid: int, master: int) -> int:
    """Carry bytes between this terminal and the child ``pid`` on the pty ``master``
    (mux.engine.runner started it there); its exit code (128+N: signal N)."""
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    saved = termios.tcgetattr(stdin)
    previous = signal.signal(signal.SIGWINCH, lambda n, f: _copy_size(stdout, master))
    try:
        tty.setraw(stdin, termios.TCSANOW)  # TCSAFLUSH would drop what was typed ahead
        _copy_size(stdout, master)
        _pump(stdin, stdout, master)
    except BaseException:
        os.kill(pid, signal.SIGTERM)  # as Runner.interactive does with its child
        raise
    finally:
        termios.tcsetattr(stdin, termios.TCSADRAIN, saved)
        signal.signal(signal.SIGWINCH, previous)
        os.close(master)
    status = _wait(pid)
    return 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def _wait(pid: int) -> int:
    while True:
        try:
            return os.waitpid(pid, 0)[1]
        except InterruptedError:
            continue


def _pump(stdin: int, stdout: int, master: int) -> None:
    """Bytes both ways until podman closes its side of the pty."""
    inputs = [stdin, master]
    while True:
        try:
            ready, _, _ = select.select(inputs, [], [])
        except InterruptedError:  # SIGWINCH
            continue
        if master in ready:
            try:
                data = os.read(master, 65536)
            except OSError as e:  # EIO: the child side is closed
                if e.errno != errno.EIO:
                    raise
                data = b""
            if not data:
                return
            _write_all(stdout, data)
        if stdin in ready:
            data = os.read(stdin, 4096)
            if not data:
                inputs = [master]  # this terminal is gone; podman's output still drains
                continue
            _forward(master, data)

