"""`mux tui`: the session table and its keys (Textual).

The table is refreshed every REFRESH_EVERY seconds in a worker thread (one `docker
ps` per engine, as `mux list`), never on the UI thread; so is every action. Attach
is the one exception by nature: the TUI suspends itself and hands the terminal to
`docker attach` exactly as `mux attach` does, and redraws when it returns.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from rich.text import Text
from textual import events
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Input, Static

from mux.errors import MuxError
from mux.tui import actions, data
from mux.tui.screens import Confirm, LogScreen, NewSession, Refused, SessionsChanged, TextScreen, error_text, escaped
from mux.tui.text import field
from mux.tui.widgets import SessionTable

if TYPE_CHECKING:
    from mux.cli import State
    from mux.engine.choice import Engine
    from mux.tui.data import Row, Snapshot

REFRESH_EVERY = 2.0  # seconds
SLOW = 6.0  # seconds a refresh may take before the title says the table may be stale
MIN_WIDTH, MIN_HEIGHT = 60, 10  # below this the table would be garbage: the screen says so instead

CSS = """
.title { background: $primary-background; color: $text; padding: 0 1; }
#warnings { color: $warning; padding: 0 1; }
#message { padding: 0 1; height: auto; max-height: 6; }
#small { display: none; padding: 1 2; }
#filter { display: none; }
Screen.too-small #small { display: block; }
Screen.too-small #sessions, Screen.too-small #warnings, Screen.too-small #message { display: none; }
ModalScreen { align: center middle; }
.dialog { width: 80%; height: auto; max-height: 90%; border: thick $warning; padding: 1 2;
          background: $surface; }
.form { border: thick $primary; }
.form Input { border: none; height: 1; margin: 1 0 0 0; padding: 0 1; background: $boost; }
.form Input:focus { background: $primary 30%; }
#status { margin: 1 0 0 0; }
#progress { height: 8; }
"""


MAIN_ACTIONS = {"attach", "logs", "audit", "diff", "stop_start", "delete", "new", "filter", "down", "up",
                "clear_filter"}


class MuxTui(App[int]):
    CSS = CSS
    TITLE = "mux"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [
        Binding("q", "quit_tui", "quit"),
        Binding("enter", "attach", "attach"),
        Binding("l", "logs", "logs"),
        Binding("a", "audit", "audit"),
        Binding("D", "diff", "diff"),
        Binding("s", "stop_start", "stop/start"),
        Binding("d", "delete", "delete"),
        Binding("n", "new", "new"),
        Binding("slash", "filter", "filter"),
        Binding("j", "down", "down", show=False),
        Binding("k", "up", "up", show=False),
        Binding("escape", "clear_filter", "clear filter", show=False),
    ]

    def __init__(self, state: State, engines: list[Engine], fallback: Engine) -> None:
        super().__init__()
        self.state, self.engines, self.fallback = state, engines, fallback
        self.rows: list[Row] = []
        self.loading = False  # a refresh is running: the next tick does not start a second
        self.loading_since = 0.0
        self.paused = False  # attached: no refresh behind the user's terminal
        self.last: Snapshot | None = None

    def compose(self) -> ComposeResult:
        yield Static(Text("mux: reading sessions…"), classes="title", id="title")
        yield Static("", id="warnings", markup=False)
        yield SessionTable()
        yield Static(Text(""), id="small")
        yield Input(placeholder="filter by name (Enter keeps it, Escape clears it)", id="filter")
        yield Static(Text(""), id="message")
        yield Footer()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The table's keys act only on the table's screen (not behind a log or a form),
        and not while the table is hidden for a too-small terminal."""
        if action == "quit_tui" or action not in MAIN_ACTIONS:
            return True
        main = self.screen_stack[0]
        return self.screen is main and not main.has_class("too-small")

    @property
    def table(self) -> SessionTable:
        return self.query_one(SessionTable)

    def on_mount(self) -> None:
        self.fit(self.size.width, self.size.height)
        self.table.focus()
        self.refresh_sessions()
        self.set_interval(REFRESH_EVERY, self.refresh_sessions)

    def on_resize(self, event: events.Resize) -> None:
        self.fit(event.size.width, event.size.height)

    def fit(self, width: int, height: int) -> None:
        small = width < MIN_WIDTH or height < MIN_HEIGHT
        self.screen_stack[0].set_class(small, "too-small")  # the table's screen, whichever is on top
        self.query_one("#small", Static).update(Text(
            f"The terminal is too small for the session table ({width}x{height}; "
            f"it needs at least {MIN_WIDTH}x{MIN_HEIGHT}). Make it larger, or press q to quit."))

    # -- the table ---------------------------------------------------------------------

    def refresh_sessions(self) -> None:
        if self.paused:
            return
        if self.loading:  # an engine is slow (one engine has no time limit, as in `mux list`): say so
            waited = time.monotonic() - self.loading_since
            if waited >= SLOW:
                self.query_one("#title", Static).update(Text(
                    f"mux · waiting for docker ({waited:.0f} s): the table below may be out of date"))
            return
        self.loading, self.loading_since = True, time.monotonic()
        self.run_worker(self._load, thread=True, group="refresh", exit_on_error=False)

    def _load(self) -> None:
        try:
            snap = data.snapshot(self.engines, self.fallback)
        except Exception as exc:  # noqa: BLE001 - a bug must not stop the refreshes
            snap = data.Snapshot([], [f"internal error while listing: {type(exc).__name__}: {field(exc)}"], 0.0)
        try:
            self.call_from_thread(self._show, snap)
        except RuntimeError:  # the app has gone
            pass

    def _show(self, snap: Snapshot) -> None:
        self.loading = False
        self.last = snap
        self.rows = snap.rows
        self._draw()

    def _draw(self) -> None:
        snap = self.last
        if snap is None:
            return
        wanted = self.query_one("#filter", Input).value
        shown = data.matching(self.rows, wanted)
        self.table.show(shown)
        warnings = self.query_one("#warnings", Static)
        warnings.update(Text("\n".join(f"warning: {w}" for w in snap.warnings)))
        warnings.display = bool(snap.warnings)
        running = sum(1 for r in self.rows if r.session is not None and r.session.running)
        what = (f"{len(shown)} of {len(self.rows)} sessions match {wanted!r}" if wanted.strip()
                else f"{len(self.rows)} sessions, {running} running")
        if not self.rows and not snap.warnings:
            what = "no sessions: press n to make one (as `mux new NAME`)"
        contexts = ", ".join(e.name for e in self.engines)
        self.query_one("#title", Static).update(Text(
            f"mux · {what} · {field(contexts)} · refreshed every {REFRESH_EVERY:g} s "
            f"(last took {snap.seconds * 1000:.0f} ms)"))

    def on_sessions_changed(self, message: SessionsChanged) -> None:
        self.refresh_sessions()

    def say(self, message: str) -> None:
        self.query_one("#message", Static).update(Text(escaped(message)))

    def current(self) -> Row | None:
        row = self.table.current()
        if row is None:
            self.say("no session selected")
        return row

    def background(self, what: str, job: Callable[[], str], after: Callable[[MuxError], None] | None = None) -> None:
        """Run ``job`` (a core call) in a worker; its result or error goes to the message
        line (or to ``after``), then the table refreshes."""
        self.say(what)

        def run() -> None:
            error: MuxError | None = None
            try:
                message = job()
            except MuxError as exc:
                message, error = error_text(exc), exc
            except Exception as exc:  # noqa: BLE001 - a bug in mux: one line, the TUI stays
                message = f"internal error: {type(exc).__name__}: {exc}"
            try:
                self.call_from_thread(self._finished, message, error, after)
            except RuntimeError:
                pass

        self.run_worker(run, thread=True, group="actions", exit_on_error=False)

    def _finished(self, message: str, error: MuxError | None, after: Callable[[MuxError], None] | None) -> None:
        if error is not None and after is not None:
            self.say("")
            after(error)
        else:
            self.say(message)
        self.refresh_sessions()

    # -- keys --------------------------------------------------------------------------

    def action_quit_tui(self) -> None:
        self.exit(0)

    def action_down(self) -> None:
        self.table.action_cursor_down()

    def action_up(self) -> None:
        self.table.action_cursor_up()

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            self._draw()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            event.input.display = bool(event.value.strip())
            self.table.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = ""
        box.display = False
        self.table.focus()
        self._draw()

    def on_data_table_row_selected(self, event: SessionTable.RowSelected) -> None:
        self.action_attach()

    def action_attach(self) -> None:
        row = self.current()
        if row is None:
            return
        if not row.name:
            self.say(error_text(MuxError("that container is not a session: mux leaves it alone")))
            return
        from textual.app import SuspendNotSupported

        self.paused = True
        try:
            with self.suspend():
                try:
                    code = actions.attach(self.state, row)
                    message = f"detached from {row.name} (exit {code})"
                except MuxError as exc:
                    message = error_text(exc)
        except SuspendNotSupported:
            message = "attach needs a real terminal (this one cannot be handed over)"
        finally:
            self.paused = False
        self.say(message)
        self.refresh_sessions()

    def action_logs(self) -> None:
        row = self.current()
        if row is not None:
            self.push_screen(LogScreen(self.state, row))

    def action_audit(self) -> None:
        row = self.current()
        if row is None:
            return
        if not row.name:
            self.say(error_text(MuxError("a foreign container has no audit lines")))
            return
        name = row.name
        self.push_screen(TextScreen(f"proxy audit of {name}: its requests and refusals (Escape goes back)",
                                    lambda: data.audit_lines(name), every=REFRESH_EVERY))

    def action_diff(self) -> None:
        row = self.current()
        if row is not None:
            self.show_diff(row)

    def show_diff(self, row: Row) -> None:
        self.push_screen(TextScreen(f"mux diff {row.cells[0]} (Escape goes back)",
                                    lambda: actions.diff_text(self.state, row)))

    def action_stop_start(self) -> None:
        row = self.current()
        if row is None:
            return
        verb = "Stopping" if row.session is not None and row.session.running else "Starting"
        self.background(f"{verb} session {row.cells[0]}…", lambda: actions.toggle(self.state, row))

    def action_delete(self) -> None:
        row = self.current()
        if row is None:
            return
        if not row.name:
            self.say(error_text(MuxError("that container is not a session: mux leaves it alone")))
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.background(f"Deleting session {row.name}…", lambda: actions.delete(self.state, row, force=False),
                                after=lambda error: self.refused(row, error))
            else:
                self.say(f"kept session {row.name}")

        self.push_screen(Confirm(f"Delete session {row.name} (its container and its files)?"), answered)

    def refused(self, row: Row, error: MuxError) -> None:
        """`mux delete` said no (unsaved work, running): show why; F forces, asking again."""
        if not actions.refused(error):
            self.say(error_text(error))
            return

        def chosen(what: str | None) -> None:
            if what == "diff":
                self.show_diff(row)
            elif what == "force":
                self.push_screen(Confirm(f"Force-delete session {row.name}? This is lost for good: "
                                         f"{error.message.split(': ', 1)[-1]}"), forced)
            else:
                self.say(f"kept session {row.name}")

        def forced(yes: bool | None) -> None:
            if yes:
                self.background(f"Force-deleting session {row.name}…",
                                lambda: actions.delete(self.state, row, force=True))
            else:
                self.say(f"kept session {row.name}")

        self.push_screen(Refused(error), chosen)

    def action_new(self) -> None:
        def closed(name: str | None) -> None:
            if name:
                self.say(f"created session {name}")
            self.refresh_sessions()

        self.push_screen(NewSession(self.state), closed)
