"""mux/egress/loopback.py: which publishes need the guard, which engines lack Docker 28's,
and what mux does where it cannot install it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mux.egress import loopback
from mux.engine.choice import Engine
from mux.engine.runner import Result
from mux.errors import ConfigError


@pytest.mark.parametrize(("specs", "needing"), [
    pytest.param(["127.0.0.1::3000"], ["127.0.0.1::3000"], id="default"),
    pytest.param(["127.0.0.2:80:80/udp"], ["127.0.0.2:80:80/udp"], id="all-of-127/8"),
    pytest.param(["[::1]:80:80", "0.0.0.0:80:80", "[::0]:80:80", "10.0.0.1:80:80"], [], id="not-ipv4-loopback"),
    pytest.param(["[::ffff:127.0.0.1]:80:80"], ["[::ffff:127.0.0.1]:80:80"], id="mapped-is-ipv4-to-docker"),
])
def test_loopback_v4(specs: list[str], needing: list[str]) -> None:
    assert loopback.loopback_v4(specs) == needing


@pytest.mark.parametrize(("version", "old"), [
    ("20.10.24+dfsg1", True), ("27.5.1", True), ("28.0.0", False), ("28.0.0-rc.1", False),
    ("29.1.2", False), ("", True), ("podman?", True),
])
def test_before_fix(version: str, old: bool) -> None:
    assert loopback.before_fix(version) is old


class FakeRunner:
    """What ensure_guard asks of a Runner, recorded; returns given results by argv."""

    def __init__(self, engine: Engine, results: dict[tuple[str, ...], Result]) -> None:
        self.engine, self.results, self.calls = engine, results, []  # type: list[tuple[str, ...]]
        self.dry_run = False

    def query(self, argv: Any, **kwargs: object) -> Result:
        return self.run(argv)

    def run(self, argv: Any, **kwargs: object) -> Result:
        self.calls.append(tuple(argv))
        return self.results[tuple(argv)]


def ok(out: str = "", code: int = 0) -> Result:
    return Result([], code, out, "")


def test_a_remote_old_engine_is_refused_without_touching_this_machine() -> None:
    runner = FakeRunner(Engine("box", "ssh://me@box", "--context", True), {loopback.VERSION: ok("20.10.24\n")})
    with pytest.raises(ConfigError) as info:
        loopback.ensure_guard(runner, ["127.0.0.1::3000"], guarded=False, session="app")  # type: ignore[arg-type]
    assert "Docker 20.10.24 (before 28)" in info.value.message
    assert "(the engine is on another machine)" in info.value.message
    assert runner.calls == [loopback.VERSION]


def test_the_version_is_asked_once_per_command_and_once_per_dockerd(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUX_DATA_DIR", str(tmp_path / "data"))
    sock = tmp_path / "docker.sock"
    sock.write_text("")
    engine = Engine("default", f"unix://{sock}", "default")
    runner = FakeRunner(engine, {loopback.VERSION: ok("28.2.0\n")})
    for _ in range(3):
        loopback.ensure_guard(runner, ["127.0.0.1::3000"], guarded=False, session="app")  # type: ignore[arg-type]
    assert runner.calls == [loopback.VERSION]
    again = FakeRunner(engine, {loopback.VERSION: ok("20.10.24\n")})  # the next mux command
    assert loopback.engine_version(again) == "28.2.0"  # type: ignore[arg-type]
    assert again.calls == []
    sock.unlink()  # a new dockerd makes a new socket
    sock.write_text("")
    later = FakeRunner(engine, {loopback.VERSION: ok("20.10.24\n")})
    assert loopback.engine_version(later) == "20.10.24"  # type: ignore[arg-type]
    assert later.calls == [loopback.VERSION]


def test_an_engine_version_with_control_characters_is_escaped() -> None:
    runner = FakeRunner(Engine("box", "ssh://me@box", "--context", True), {loopback.VERSION: ok("20.10\x1b]0;x\x07\n")})
    with pytest.raises(ConfigError) as info:
        loopback.ensure_guard(runner, ["127.0.0.1::3000"], guarded=False, session="app")  # type: ignore[arg-type]
    assert "\x1b" not in info.value.message and "\x07" not in info.value.message
