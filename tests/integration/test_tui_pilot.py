"""`mux tui`'s widgets and keys under Textual's Pilot, against the real engine.

The app runs in this process (headless, 120x40); the sessions are real, made by
`mux new` in a child process, as a user in another terminal would.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Log, Static

from mux.cli import State
from mux.tui.app import MuxTui
from mux.tui.screens import Confirm, LogScreen, NewSession, Refused, TextScreen
from tests.conftest import BUSYBOX, docker, mux

pytestmark = pytest.mark.docker


def drive(script: Callable[[MuxTui, Pilot[int]], Awaitable[None]], size: tuple[int, int] = (120, 40)) -> MuxTui:
    state = State()
    engines = state.engines()
    app = MuxTui(state, engines, engines[0])

    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            await script(app, pilot)

    asyncio.run(main())
    return app


async def until(pilot: Pilot[int], check: Callable[[], object], limit: float = 20.0) -> None:
    deadline = time.monotonic() + limit
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {limit} s: {check}")
        await pilot.pause(0.1)


def states(app: MuxTui) -> dict[str, str]:
    return {r.cells[0]: r.cells[1] for r in app.table.shown}


def message(app: MuxTui) -> str:
    return str(app.query_one("#message", Static).content)


def test_table_states_keys_stop_start_delete_and_live_refresh(images, mux_home, unique_name) -> None:
    a, b, c = f"{unique_name}a", f"{unique_name}b", f"{unique_name}c"
    for name in (a, b):
        assert mux("new", name).returncode == 0
    assert mux("stop", b).returncode == 0

    async def script(app: MuxTui, pilot: Pilot[int]) -> None:
        await until(pilot, lambda: states(app).get(a) == "running" and states(app).get(b, "").startswith("stopped"))
        assert app.table.cursor_row == 0
        await pilot.press("j")
        assert app.table.current().name == b  # type: ignore[union-attr]
        await pilot.press("k")
        assert app.table.current().name == a  # type: ignore[union-attr]
        await pilot.press("slash", *b[-3:])
        await until(pilot, lambda: list(states(app)) == [b])
        await pilot.press("enter")  # keeps the filter, back to the table
        assert list(states(app)) == [b] and app.focused is app.table
        await pilot.press("escape")
        await until(pilot, lambda: list(states(app)) == [a, b])

        # made, stopped and deleted from another terminal: shown, with no key pressed
        assert mux("new", c).returncode == 0
        await until(pilot, lambda: states(app).get(c) == "running")
        assert mux("stop", c).returncode == 0
        await until(pilot, lambda: states(app).get(c, "").startswith("stopped"))
        assert mux("delete", "--force", c).returncode == 0
        await until(pilot, lambda: c not in states(app))

        await pilot.press("j", "s")  # b: stopped -> started
        await until(pilot, lambda: states(app).get(b) == "running")
        assert json.loads(mux("list", "--json").stdout)[1]["status"] == "running"
        await until(pilot, lambda: f"Started session {b}." in message(app))

        await pilot.press("d")
        assert isinstance(app.screen, Confirm)
        await pilot.press("n")
        assert f"kept session {b}" in message(app)
        await pilot.press("d", "y")  # running: `mux delete` refuses, and the TUI shows it
        await until(pilot, lambda: isinstance(app.screen, Refused))
        assert "it is running" in str(app.screen.query_one(Static).content)
        await pilot.press("escape")
        await pilot.press("s")
        await until(pilot, lambda: states(app).get(b, "").startswith("stopped"))
        await pilot.press("d", "y")
        await until(pilot, lambda: b not in states(app))
        assert f"Deleted session {b}." in message(app)
        await pilot.press("q")

    app = drive(script)
    assert app.return_code == 0
    assert [s["name"] for s in json.loads(mux("list", "--json").stdout)] == [a]


def test_every_configured_engine_and_a_dead_one_as_a_warning(images, mux_home, unique_name, tmp_path,
                                                             monkeypatch) -> None:
    from tests.unit.test_engine import make_context

    assert mux("new", unique_name).returncode == 0
    make_context(tmp_path / "docker", "here", "unix:///var/run/docker.sock")
    make_context(tmp_path / "docker", "dead", "tcp://127.0.0.1:9")  # nothing listens: refused at once
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    config = Path(mux_home, "config.toml")
    config.write_text(config.read_text() + 'contexts = ["here", "dead"]\n')

    async def script(app: MuxTui, pilot: Pilot[int]) -> None:
        await until(pilot, lambda: states(app).get(unique_name) == "running")
        assert app.table.shown[0].cells[6] == "here"
        warning = str(app.query_one("#warnings", Static).content)
        assert "warning: context 'dead' (tcp://127.0.0.1:9) did not answer" in warning
        await pilot.press("s")  # on the engine the row came from
        await until(pilot, lambda: states(app).get(unique_name, "").startswith("stopped"))
        await pilot.press("q")

    drive(script)


def test_labels_from_a_container_show_literally(images, mux_home, own_instance, unique_name) -> None:
    """A container's labels are input: markup is not interpreted, control characters are escaped."""
    evil = "[bold]red[/bold]\x1b]0;owned\x07\u202e"
    docker("run", "-d", "--name", f"mux-{unique_name}", "--label", f"mux.session={unique_name}",
           "--label", f"mux.instance={own_instance}", "--label", "mux.backend=docker",
           "--label", f"mux.agent={evil}", "--label", "mux.repo=[link=file:///etc]x[/link]",
           BUSYBOX, "sleep", "600")

    async def script(app: MuxTui, pilot: Pilot[int]) -> None:
        await until(pilot, lambda: unique_name in states(app))
        cells = app.table.get_row_at(0)
        assert cells[2].plain == "[bold]red[/bold]\\x1b]0;owned\\x07\\u202e"
        assert cells[3].plain == "[link=file:///etc]x[/link]"
        assert not cells[2].spans and not cells[3].spans  # no style came from the label
        await pilot.press("q")

    drive(script)


def test_logs_follow_like_mux_logs(images, mux_home, unique_name) -> None:
    script_text = "echo first; printf 'bell\\a\\033]0;title\\007\\n'; sleep 2; echo later; sleep 600"
    assert mux("new", unique_name, "--", "sh", "-c", script_text).returncode == 0

    async def script(app: MuxTui, pilot: Pilot[int]) -> None:
        await until(pilot, lambda: unique_name in states(app))
        await pilot.press("l")
        assert isinstance(app.screen, LogScreen)
        log = app.screen.query_one(Log)
        await until(pilot, lambda: "later" in log.lines)  # came after the screen opened: followed
        printed = mux("logs", unique_name).stdout.replace("\r", "").splitlines()
        assert log.lines[:3] == [printed[0], "bell\\x07\\x1b]0;title\\x07", "later"]
        await pilot.press("escape")
        assert not isinstance(app.screen, LogScreen)
        await pilot.press("q")

    drive(script)


def test_audit_lines_and_diff_of_the_selected_session(images, mux_home, unique_name) -> None:
    assert mux("new", unique_name).returncode == 0
    audit = Path(mux_home, "data", "proxy", "audit.jsonl")
    audit.parent.mkdir(parents=True)
    entries = [{"time": "2026-12-07T10:00:00+0000", "session": unique_name, "host": "api.example.test",
                "method": "GET", "path": "/v1", "injected": True, "status": 200, "duration_ms": 3.5},
               {"session": "someone-else", "host": "other.test", "method": "GET", "path": "/", "status": 200},
               {"time": "t", "session": unique_name, "host": "evil.test\x1b[2J", "method": "CONNECT", "path": "",
                "injected": False, "status": 403, "duration_ms": 1}]
    audit.write_text("".join(json.dumps(e) + "\n" for e in entries) + "not json\n")

    async def script(app: MuxTui, pilot: Pilot[int]) -> None:
        await until(pilot, lambda: unique_name in states(app))
        await pilot.press("a")
        assert isinstance(app.screen, TextScreen)
        log = app.screen.query_one(Log)
        await until(pilot, lambda: len(log.lines) == 2)
        assert "GET api.example.test/v1" in log.lines[0] and "credential injected" in log.lines[0]
        assert "403 REFUSED" in log.lines[1] and "evil.test\\x1b[2J" in log.lines[1]
        with audit.open("a") as fh:  # a new request shows without a key press
            fh.write(json.dumps({**entries[0], "path": "/v2"}) + "\n")
        await until(pilot, lambda: len(log.lines) == 3)
        await pilot.press("escape", "D")
        log = app.screen.query_one(Log)
        await until(pilot, lambda: log.lines)
        assert "has no repository" in log.lines[0]
        await pilot.press("escape", "q")

    drive(script)


def test_new_session_form_makes_it_with_mux_new_code(images, mux_home, unique_name) -> None:
    async def script(app: MuxTui, pilot: Pilot[int]) -> None:
        await pilot.press("n")
        assert isinstance(app.screen, NewSession)
        await pilot.press(*"-bad", "enter")
        form = app.screen
        await until(pilot, lambda: "error: invalid session name" in str(form.query_one("#status", Static).content))
        form.query_one("#name").value = unique_name  # type: ignore[attr-defined]
        await pilot.press("enter")
        await until(pilot, lambda: "Created session" in str(form.query_one("#status", Static).content))
        assert any(text.startswith("+ docker run ") for text in form.query_one("#progress", Log).lines)
        await pilot.press("escape")
        await until(pilot, lambda: states(app).get(unique_name) == "running")
        await pilot.press("q")

    drive(script)
    assert [s["name"] for s in json.loads(mux("list", "--json").stdout)] == [unique_name]


def test_a_small_terminal_is_told_so(mux_home) -> None:
    async def script(app: MuxTui, pilot: Pilot[int]) -> None:
        await pilot.pause(0.2)
        assert app.screen.has_class("too-small")
        assert "too small" in str(app.query_one("#small", Static).content)
        assert not app.table.display or not app.table.region.area
        await pilot.press("n")  # the table's keys wait for a table to act on
        assert not isinstance(app.screen, NewSession)
        await pilot.resize_terminal(120, 40)
        await pilot.pause(0.2)
        assert not app.screen.has_class("too-small")
        await pilot.press("q")

    drive(script, size=(50, 8))


def test_diff_of_a_repository_session(images, mux_home, unique_name, tmp_path) -> None:
    """D shows `mux diff`'s text (mux/workspace/diff.py, the git box); in a mux without
    it, a clear "not available" instead."""
    import importlib.util

    from tests.conftest import DEBIAN, session_dir
    from tests.integration.test_repo_sessions import git

    seed = tmp_path / "seed"
    seed.mkdir()
    git("init", "-q", "-b", "main", cwd=seed)
    (seed / "README").write_text("hello\n")
    git("add", "README", cwd=seed)
    git("commit", "-qm", "first", cwd=seed)
    git("clone", "-q", "--bare", str(seed), str(tmp_path / "remote.git"))
    assert mux("new", "--image", DEBIAN, "--repo", str(tmp_path / "remote.git"), unique_name).returncode == 0
    (session_dir(unique_name) / "repo" / "scratch.txt").write_text("new work \x1b[2J\n")
    try:
        available = importlib.util.find_spec("mux.workspace.diff") is not None
    except ModuleNotFoundError:  # no mux/workspace at all
        available = False

    async def script(app: MuxTui, pilot: Pilot[int]) -> None:
        await until(pilot, lambda: unique_name in states(app))
        await pilot.press("D")
        log = app.screen.query_one(Log)
        await until(pilot, lambda: log.lines, 60)
        if available:
            assert "+++ b/scratch.txt" in log.lines and "+new work \\x1b[2J" in log.lines
        else:
            assert log.lines[0] == "error: `mux diff` is not available in this version of mux"
        await pilot.press("escape", "q")

    drive(script)
