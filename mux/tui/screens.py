"""The TUI's other screens: logs, text views (audit, diff), confirmations, the new-session form.

Docker and file reads run in worker threads; a screen gets their results through
``app.call_from_thread``. Everything shown came from a session or docker and is
escaped first (mux/tui/text.py) and put on screen as plain text, never markup.
"""

from __future__ import annotations

import codecs
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from rich.text import Text
from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, Input, Log, Static

from mux.errors import MuxError
from mux.tui import actions
from mux.tui.text import field, line

if TYPE_CHECKING:
    import subprocess

    from mux.cli import State
    from mux.tui.data import Row

MAX_LOG_LINES = 5000  # what a log view keeps: the newest lines
READ_CHUNK = 64 * 1024


def error_text(error: MuxError) -> str:
    """A MuxError as `mux` prints it: the message, then the hint."""
    from mux.engine.clis import words

    return f"error: {words(error.message)}" + (f"\nhint: {words(error.hint)}" if error.hint else "")


def escaped(text: str) -> str:
    """Several lines of a message, each escaped."""
    return "\n".join(field(part, 2000) for part in text.split("\n"))


class LogScreen(Screen[None]):
    """`mux logs -f NAME`: what the session's main process printed, then new output as it comes."""

    BINDINGS = [Binding("escape", "app.pop_screen", "back")]

    def __init__(self, state: State, row: Row) -> None:
        super().__init__()
        self.state, self.row = state, row
        self.proc: subprocess.Popen[bytes] | None = None
        self.closed = False

    def compose(self) -> ComposeResult:
        yield Static(Text(f"logs of {self.row.cells[0]} (following; Escape goes back)"), classes="title")
        yield Log(max_lines=MAX_LOG_LINES, id="log")
        yield Footer()

    def on_mount(self) -> None:
        self.follow()

    @work(thread=True, exit_on_error=False)
    def follow(self) -> None:
        log = self.query_one(Log)
        try:
            self.proc = actions.follow_logs(self.state, self.row)
        except MuxError as exc:
            self._write(log, error_text(exc).splitlines())
            return
        if self.closed:  # Escape came first
            self.proc.kill()
        stream = self.proc.stdout
        assert stream is not None
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pending = ""
        while True:
            chunk = os.read(stream.fileno(), READ_CHUNK)  # what is there now: shown in batches
            if not chunk:
                break
            pending += decoder.decode(chunk)
            *lines, pending = pending.split("\n")
            if len(pending) > READ_CHUNK:  # a line without end: shown in pieces, memory bounded
                lines.append(pending)
                pending = ""
            if lines:
                self._write(log, [line(text) for text in lines])
        rest = pending + decoder.decode(b"", final=True)
        code = self.proc.wait()
        self._write(log, ([line(rest)] if rest else []) + [f"-- end of logs (docker logs exited {code}) --"])

    def _write(self, log: Log, lines: list[str]) -> None:
        if self.closed:
            return
        try:
            self.app.call_from_thread(log.write_lines, lines)
        except RuntimeError:  # the app is gone
            self.closed = True

    def on_unmount(self) -> None:
        self.closed = True
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class TextScreen(Screen[None]):
    """Lines made by ``load`` in a worker (the audit log, a diff), reloaded every
    ``every`` seconds when given."""

    BINDINGS = [Binding("escape", "app.pop_screen", "back")]

    def __init__(self, title: str, load: Callable[[], list[str]], every: float | None = None) -> None:
        super().__init__()
        self.title_text, self.load, self.every = title, load, every
        self.last: list[str] | None = None

    def compose(self) -> ComposeResult:
        yield Static(Text(self.title_text), classes="title")
        yield Log(max_lines=MAX_LOG_LINES, id="text")
        yield Footer()

    def on_mount(self) -> None:
        self.reload()
        if self.every:
            self.set_interval(self.every, self.reload)

    @work(thread=True, exclusive=True, exit_on_error=False)
    def reload(self) -> None:
        try:
            lines = self.load()
        except MuxError as exc:
            lines = error_text(exc).splitlines()
        try:
            self.app.call_from_thread(self._show, lines)
        except RuntimeError:
            pass

    def _show(self, lines: list[str]) -> None:
        if lines == self.last:
            return
        self.last = lines
        log = self.query_one(Log)
        log.clear()
        log.write_lines(lines)


class Confirm(ModalScreen[bool]):
    """A question answered with y or n (Escape: n)."""

    BINDINGS = [Binding("y", "answer(True)", "yes"), Binding("n", "answer(False)", "no"),
                Binding("escape", "answer(False)", "no", show=False)]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(Text(self.question + "  [y/n]"))
        yield Footer()

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class Refused(ModalScreen[str]):
    """`mux delete`'s refusal, as it says it; F asks to force it, D shows the diff."""

    BINDINGS = [Binding("F", "choose('force')", "force delete…"), Binding("D", "choose('diff')", "diff"),
                Binding("escape", "choose('')", "back")]

    def __init__(self, error: MuxError) -> None:
        super().__init__()
        self.error = error

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(Text(escaped(error_text(self.error))))
            yield Static(Text("F: delete anyway (asks once more)   D: what would be lost   Escape: keep it"))
        yield Footer()

    def action_choose(self, what: str) -> None:
        self.dismiss(what)


class NewSession(ModalScreen[str]):
    """`mux new NAME --repo URL --agent AGENT --image IMAGE`, by mux.session.create itself; each
    docker command it runs, its warnings and its error are shown below the form."""

    BINDINGS = [Binding("escape", "close", "back")]

    def __init__(self, state: State) -> None:
        super().__init__()
        self.state = state
        self.running = False
        self.made = ""

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog form"):
            yield Static(Text(f"New session (as `mux new`; without a repository it mounts {os.getcwd()})"))
            yield Input(placeholder="NAME", id="name")
            yield Input(placeholder="--repo URL (optional)", id="repo")
            yield Input(placeholder="--agent AGENT (optional: claude, codex, gemini, ...)", id="agent")
            yield Input(placeholder="--image IMAGE (optional: the config's otherwise)", id="image")
            yield Static(Text("Enter creates it; Escape goes back."), id="status")
            yield Log(max_lines=500, id="progress")
        yield Footer()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if self.running:
            return
        fields = actions.NewFields(*(self.query_one(f"#{key}", Input).value
                                     for key in ("name", "repo", "agent", "image")))
        self.running = True
        self.query_one("#status", Static).update(Text(f"Creating session {field(fields.name)}…"))
        self.query_one("#progress", Log).clear()
        self.app.begin_capture_print(self)
        self.make(fields)

    def on_print(self, event: events.Print) -> None:
        text = event.text.rstrip("\n")
        if text:
            self.query_one("#progress", Log).write_lines([line(t) for t in text.split("\n")])

    @work(thread=True, exit_on_error=False)
    def make(self, fields: actions.NewFields) -> None:
        try:
            spec = actions.create(self.state, fields)
            done, ok = f"Created session {spec.name} (container {spec.container}). Escape goes back.", True
        except MuxError as exc:
            done, ok = error_text(exc), False
        except KeyboardInterrupt:
            done, ok = "interrupted; what it had made is removed", False
        try:
            self.app.call_from_thread(self._done, done, ok, fields.name)
        except RuntimeError:
            pass

    def _done(self, message: str, ok: bool, name: str) -> None:
        self.app.end_capture_print(self)
        self.running = False
        self.made = name if ok else self.made
        self.query_one("#status", Static).update(Text(escaped(message)))
        self.app.post_message(SessionsChanged())

    def action_close(self) -> None:
        if self.running:
            self.notify("still creating the session: wait for it to finish")
            return
        self.dismiss(self.made)


class SessionsChanged(Message):
    """An action changed the sessions: the main screen refreshes now, not in 2 s."""
