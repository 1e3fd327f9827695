"""What the TUI's keys do, each by the core call its `mux` command makes (no Textual here).

Every function takes the row the cursor is on: its Session says which session,
its Engine where it lives. Errors are MuxErrors, as the commands raise them; the
screen shows their message and hint.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from mux.engine import argv as A
from mux.engine.runner import Runner
from mux.errors import MuxError
from mux.session import lifecycle
from mux.session.create import create as make
from mux.session.plan import NewOptions
from mux.session.sessions import find
from mux.tui.text import line
from mux.workspace.diff import changes

if TYPE_CHECKING:
    import subprocess

    from mux.cli import State
    from mux.spec import SessionSpec
    from mux.tui.data import Row


class NewFields(NamedTuple):
    """The `n` form: what `mux new NAME [--repo URL] [--agent AGENT] [--image IMAGE]` takes."""

    name: str
    repo: str = ""
    agent: str = ""
    image: str = ""


def runner_for(state: State, row: Row, *, verbose: bool = False) -> Runner:
    return Runner(engine=row.engine or state.engine(), verbose=verbose)


def _proxy_for(state: State, runner: Runner, name: str) -> None:
    """As `mux start` and `mux attach` do (mux.session.lifecycle.ready)."""
    lifecycle.ready(runner, state.config, name)


def acted_on(row: Row) -> str:
    """The session NAME of ``row``; a foreign container is never acted on (exit 2's words)."""
    if not row.name:
        raise MuxError("that container's mux.session label is not a session name: "
                       "mux shows it and leaves it alone")
    return row.name


def toggle(state: State, row: Row) -> str:
    """`mux stop NAME` for a running session, `mux start NAME` otherwise; what was done."""
    name = acted_on(row)
    runner = runner_for(state, row)
    if row.session is not None and row.session.running:
        lifecycle.simple(runner, "stop", name)
        return f"Stopped session {name}."
    _proxy_for(state, runner, name)
    lifecycle.simple(runner, "start", name)
    return f"Started session {name}."


def delete(state: State, row: Row, *, force: bool) -> str:
    """`mux delete [--force] NAME`: its refusals (running, unsaved work) raise, unchanged."""
    name = acted_on(row)
    lifecycle.delete(runner_for(state, row), name, force=force, quiet=True)
    return f"Deleted session {name}."


def refused(error: MuxError) -> bool:
    """Whether ``error`` is `mux delete`'s refusal (which --force would override)."""
    return error.message.startswith("not deleting ")


def attach(state: State, row: Row) -> int:
    """`mux attach NAME` on this terminal (the caller has handed it over); its exit code."""
    name = acted_on(row)
    runner = runner_for(state, row)
    _proxy_for(state, runner, name)
    return lifecycle.attach(runner, name, quiet=state.quiet)


def follow_logs(state: State, row: Row) -> subprocess.Popen[bytes]:
    """`mux logs -f NAME`'s docker command, its output (stdout and stderr) on one pipe."""
    name = acted_on(row)
    runner = runner_for(state, row)
    return runner.stream(A.logs_argv(find(runner, name).ref, follow=True))


def diff_text(state: State, row: Row) -> list[str]:
    """What `mux diff NAME` prints: the session's changes since it was made, escaped.

    The one place the TUI asks for a diff: the same text as `mux diff` (read in the
    git box, mux/workspace/diff.py), with the same refusals.
    """
    name = acted_on(row)
    text = changes(runner_for(state, row), name, stat=False, paths=())
    return [line(t) for t in text.splitlines()] if text else [f"no changes in session {name} since it was made"]


def create(state: State, fields: NewFields) -> SessionSpec:
    """`mux new` by its own code (mux.session.create) with these flags; the runner echoes each
    docker command (`-v`), which the form shows as progress."""
    opts = NewOptions(name=fields.name.strip(), repo=fields.repo.strip() or None,
                      agent=fields.agent.strip() or None, image=fields.image.strip() or None)
    if not opts.name:
        raise MuxError("give the new session a NAME")
    return make(Runner(engine=state.engine(), verbose=True), state.config(), opts, progress=False)
