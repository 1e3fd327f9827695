"""Interrupts are never lost: one that lands where Python cannot raise it (a weakref
callback, such as the import lock's during a lazy import) is delivered again where it
can; inside mux.interrupts.deferred, a signal waits for the next checkpoint."""

from __future__ import annotations

import os
import signal
import sys
import threading
import weakref

import pytest

from mux import cli, interrupts


class Thing:
    pass


def _drop_with_callback(error: BaseException) -> None:
    def callback(_: object) -> None:
        raise error

    thing = Thing()
    ref = weakref.ref(thing, callback)
    del thing  # the callback runs now; what it raises goes to sys.unraisablehook
    assert ref() is None


def _lands_in_callback() -> None:
    """A real SIGINT whose handler runs inside a weakref callback (as in the import lock)."""
    def callback(_: object) -> None:
        os.kill(os.getpid(), signal.SIGINT)  # the default handler raises KeyboardInterrupt here

    thing = Thing()
    ref = weakref.ref(thing, callback)
    del thing
    assert ref() is None


def test_an_interrupt_python_could_not_raise_interrupts_the_main_flow(monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "unraisablehook", cli._interrupt_lost)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            _lands_in_callback()
            threading.Event().wait(5)  # the interrupt, delivered again, ends this wait
    finally:
        signal.signal(signal.SIGINT, previous)
    err = capsys.readouterr().err
    assert "Traceback" not in err and "Exception ignored" not in err, err


def test_a_redelivered_interrupt_is_recorded_by_a_deferral(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "unraisablehook", cli._interrupt_lost)
    with interrupts.deferred() as guard:
        _drop_with_callback(KeyboardInterrupt())
        threading.Event().wait(0.5)  # delivered again meanwhile: recorded, not raised
        assert guard.received == 1
        with pytest.raises(KeyboardInterrupt):
            guard.checkpoint()


def test_other_lost_errors_are_reported_as_python_does(monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "unraisablehook", cli._interrupt_lost)
    _drop_with_callback(ValueError("boom"))
    assert "ValueError: boom" in capsys.readouterr().err


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_deferred_holds_a_signal_until_the_checkpoint(signum: int) -> None:
    with interrupts.deferred() as guard:
        os.kill(os.getpid(), signum)  # would end the test process without the deferral
        assert guard.received == 1
        with pytest.raises(KeyboardInterrupt):
            guard.checkpoint()
    assert signal.getsignal(signum) is not guard.handler  # restored


def test_allowed_raises_at_once_and_for_one_already_received() -> None:
    with interrupts.deferred() as guard:
        with pytest.raises(KeyboardInterrupt):
            with guard.allowed():
                os.kill(os.getpid(), signal.SIGINT)
                threading.Event().wait(5)
    with interrupts.deferred() as guard:
        os.kill(os.getpid(), signal.SIGTERM)
        with pytest.raises(KeyboardInterrupt):
            with guard.allowed():
                raise AssertionError("not reached: the signal already received raises first")


def test_a_boundary_fires_once_and_only_when_named(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(interrupts, "_INJECT", "here:INT")
    monkeypatch.setattr(interrupts, "_fired", set())
    with interrupts.deferred() as guard:
        interrupts.boundary("elsewhere")
        assert guard.received == 0
        interrupts.boundary("here")
        interrupts.boundary("here")
        assert guard.received == 1
    assert capsys.readouterr().err.count("mux: test: boundary here") == 2
