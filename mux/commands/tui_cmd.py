"""`mux tui`: a terminal, checked, then the TUI (mux/tui/), which imports Textual."""

from __future__ import annotations

import sys

import click

from mux.commands.parsing import state_of
from mux.errors import ConfigError
from mux.tui import run


@click.command()
@click.pass_context
def tui(ctx: click.Context) -> None:
    """One screen for every session, with keys for the commands.

    \b
    Keys: j/k or arrows move, / filters by name, Enter attaches, l logs,
    a proxy audit, D diff, s stops or starts, d deletes (asks y/n),
    n new session, q quits.
    """
    # stderr too: Textual draws the screen on it (sys.__stderr__), so `mux tui 2>file`
    # would draw into the file and leave the terminal blank.
    if not (sys.stdin.isatty() and sys.stdout.isatty() and sys.stderr.isatty()):
        raise ConfigError("mux tui needs a terminal: its stdin, stdout and stderr must be one "
                          "(`mux list` and the other commands work without)")
    try:
        import textual  # noqa: F401 - only to say clearly when it is missing
    except ImportError as exc:
        raise ConfigError(f"mux tui needs Textual, which is not installed ({exc}): "
                          "pip install 'mux[tui]' (or textual) into mux's environment") from None

    ctx.exit(run(state_of(ctx)))
