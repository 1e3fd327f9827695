"""A Ctrl-C that lands where Python cannot raise it (a weakref callback, such as the
import lock's during a lazy import) is raised again, not printed as a traceback."""

from __future__ import annotations

import signal
import sys
import weakref

import pytest

from mux import cli


class Thing:
    pass


def _drop_with_callback(error: BaseException) -> None:
    def callback(_: object) -> None:
        raise error

    thing = Thing()
    ref = weakref.ref(thing, callback)
    del thing  # the callback runs now; what it raises goes to sys.unraisablehook
    assert ref() is None


def test_an_interrupt_python_could_not_raise_is_raised_again(monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    got: list[int] = []
    monkeypatch.setattr(sys, "unraisablehook", cli._interrupt_lost)
    previous = signal.signal(signal.SIGINT, lambda signum, frame: got.append(signum))
    try:
        _drop_with_callback(KeyboardInterrupt())
    finally:
        signal.signal(signal.SIGINT, previous)
    assert got == [signal.SIGINT]
    assert "Traceback" not in capsys.readouterr().err


def test_other_lost_errors_are_reported_as_python_does(monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "unraisablehook", cli._interrupt_lost)
    _drop_with_callback(ValueError("boom"))
    assert "ValueError: boom" in capsys.readouterr().err
