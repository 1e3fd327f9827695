"""The one error handler: bugs and host failures still end as one line."""

from __future__ import annotations

import pytest

from mux import cli


def boom(*args: object, **kwargs: object) -> None:
    raise RuntimeError("kaput")


@pytest.mark.parametrize("verbose", [False, True], ids=["quiet", "verbose"])
def test_a_bug_is_one_line_unless_verbose(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                          verbose: bool) -> None:
    monkeypatch.setattr("mux.session.listing.scan", boom)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["-v", "list"] if verbose else ["list"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "mux: error: internal error: RuntimeError: kaput" in err
    assert ("Traceback" in err) is verbose


def test_a_host_os_error_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def no_space(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device", "/data/x")

    monkeypatch.setattr("mux.session.listing.scan", no_space)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["list"])
    assert exit_info.value.code == 1
    assert capsys.readouterr().err == "mux: error: No space left on device: /data/x\n"
