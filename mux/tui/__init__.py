"""`mux tui`: one screen for every session, on Textual.

Textual is imported only here, when `mux tui` runs (mux/commands/tui_cmd.py): every
other command starts without it. What the screen shows and does comes from the same
core calls as the commands (mux/tui/data.py, mux/tui/actions.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mux.errors import MuxError

if TYPE_CHECKING:
    from mux.cli import State


def run(state: State) -> int:
    """Run the TUI on this terminal until q; the exit code."""
    import os

    from mux.tui.app import MuxTui

    # Textual sizes the screen with shutil.get_terminal_size, which believes $COLUMNS and
    # $LINES over the terminal itself: exported by a shell (bash does, after a resize),
    # they would pin the screen to a stale size, and every later resize would be missed.
    os.environ.pop("COLUMNS", None)
    os.environ.pop("LINES", None)


    engines = state.engines()
    try:
        fallback = state.engine()  # where `mux delete` looks for files without a container
    except MuxError:
        fallback = engines[0]
    app = MuxTui(state, engines, fallback)
    app.run()
    return app.return_code or 0
