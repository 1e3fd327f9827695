"""Ctrl-C and SIGTERM while mux changes something that must end whole or not at all.

Inside :func:`deferred`, SIGINT and SIGTERM are recorded instead of raised, so
they can never land between a step and the registration of its undo, nor in
the middle of an undo. :meth:`Guard.allowed` opens a window where they raise
:class:`KeyboardInterrupt` at once (long waits: a clone, a pull), and
:meth:`Guard.checkpoint` raises one that arrived while they were deferred.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

SIGNALS = (signal.SIGINT, signal.SIGTERM)
# The test suite's injection points: $MUX_TEST_INTERRUPT is a comma list of
# STEP[:SIGNAL] (SIGNAL: INT or TERM, default TERM); each named :func:`boundary`
# sends this process that signal once, as a Ctrl-C or a kill landing exactly there
# would. "?" only reports the boundaries passed. Read once: one dict lookup a start.
_INJECT = os.environ.get("MUX_TEST_INTERRUPT", "")
_fired: set[str] = set()


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


def boundary(step: str) -> None:
    """A point between two steps of work that must end whole (mux new's steps, its
    undo's). Does nothing unless the test suite names ``step`` in $MUX_TEST_INTERRUPT:
    then the signal lands here, deterministically, once per process."""
    if not _INJECT:
        return
    print(f"mux: test: boundary {step}", file=sys.stderr, flush=True)
    for item in _INJECT.split(","):
        name, _, sig = item.partition(":")
        if name == step and step not in _fired:
            _fired.add(step)
            os.kill(os.getpid(), signal.SIGINT if sig == "INT" else signal.SIGTERM)
            return


def redeliver_later() -> None:
    """Deliver SIGINT to the main thread again, from another thread, a moment from now.

    For an interrupt Python could not raise (it landed in a callback whose exceptions
    go to sys.unraisablehook, such as the import lock's during a lazy import): raising
    it again from inside that hook only runs the handler there, where its
    KeyboardInterrupt is lost too ("Exception ignored in sys.unraisablehook"). A real
    signal to the main thread, sent once the hook has returned, lands where Python
    can raise (and interrupts a blocking wait), so nothing is lost."""
    target = threading.main_thread().ident
    assert target is not None

    def send() -> None:
        threading.Event().wait(0.005)  # the hook returns first; if not, it catches and sends again
        signal.pthread_kill(target, signal.SIGINT)

    threading.Thread(target=send, name="mux-interrupt", daemon=True).start()
