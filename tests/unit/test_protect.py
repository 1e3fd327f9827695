"""mux/workspace/protect.py's placeholders: made, shared and removed only in the workdir itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from mux.engine.runner import Runner
from mux.errors import MuxError
from mux.spec import SessionSpec
from mux.workspace import protect


def spec(workdir: Path) -> SessionSpec:
    return SessionSpec(name="s", image="img", workdir=workdir, labels=(),
                       placeholders=((workdir / ".claude", True), (workdir / ".claude" / "settings.json", False)))


@pytest.fixture
def where(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, Path]:
    monkeypatch.setenv("MUX_DATA_DIR", str(tmp_path / "data"))
    work, session, other = tmp_path / "w", tmp_path / "data" / "sessions" / "s", tmp_path / "other"
    for d in (work, session, other):
        d.mkdir(parents=True)
    return work, session, other


def test_a_link_put_on_the_way_is_never_followed_at_delete(where: tuple[Path, Path, Path]) -> None:
    work, session, other = where
    protect.prepare(Runner(), spec(work), session)
    assert (work / ".claude" / "settings.json").read_bytes() == b""
    # The agent (of another session) swaps the directory for a link to elsewhere.
    (work / ".claude" / "settings.json").unlink()
    (work / ".claude").rmdir()
    (other / "settings.json").touch()
    (work / ".claude").symlink_to(other)
    kept = protect.remove_placeholders(session)
    assert (other / "settings.json").exists()  # an empty file elsewhere: not mux's to remove
    assert kept and all("link" in k for k in kept)


def test_placeholders_are_not_made_through_a_link(where: tuple[Path, Path, Path]) -> None:
    work, session, other = where
    (work / ".claude").symlink_to(other)
    with pytest.raises(MuxError, match="reached through a symbolic link"):
        protect.prepare(Runner(), spec(work), session)
    assert list(other.iterdir()) == []


def test_shared_placeholders_go_with_their_last_session(where: tuple[Path, Path, Path], tmp_path: Path) -> None:
    work, first, _ = where
    second = tmp_path / "data" / "sessions" / "t"
    second.mkdir()
    protect.prepare(Runner(), spec(work), first)
    protect.prepare(Runner(), spec(work), second)
    assert protect.remove_placeholders(first) == []
    assert (work / ".claude" / "settings.json").is_file()
    assert protect.remove_placeholders(second) == []
    assert list(work.iterdir()) == []
