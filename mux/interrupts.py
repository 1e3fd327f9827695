"""Ctrl-C and SIGTERM while mux changes something that must end whole or not at all.

Inside :func:`deferred`, SIGINT and SIGTERM are recorded instead of raised, so
they can never land between a step and the registration of its undo, nor in
the middle of an undo. :meth:`Guard.allowed` opens a window where they raise
:class:`KeyboardInterrupt` at once (long waits: a clone, a pull), and
:meth:`Guard.checkpoint` raises one that arrived while they were deferred.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Guard:
    def __init__(self) -> None:
        self.received = 0
        self.raising = False

    def handler(self, signum: int, frame: object) -> None:
        self.received += 1
        if self.raising:
            raise KeyboardInterrupt

    def checkpoint(self) -> None:
        """Raise KeyboardInterrupt if a signal arrived while deferred."""
        if self.received:
            raise KeyboardInterrupt

    @contextmanager
    def allowed(self) -> Iterator[None]:
        """A window where a signal interrupts at once (and one already received does)."""
        self.checkpoint()
        self.raising = True
        try:
            yield
        finally:
            self.raising = False


@contextmanager
def deferred() -> Iterator[Guard]:
    """Hold SIGINT and SIGTERM for the duration (main thread only; elsewhere signals
    cannot be handled by Python anyway, and the guard only records nothing)."""
    guard = Guard()
    if threading.current_thread() is not threading.main_thread():
        yield guard
        return
    previous = {sig: signal.getsignal(sig) for sig in SIGNALS}
    for sig in SIGNALS:
        signal.signal(sig, guard.handler)
    try:
        yield guard
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
