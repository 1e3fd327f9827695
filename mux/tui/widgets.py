"""The session table: rows replaced on every refresh, the cursor kept on its session."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable

from mux.tui.data import COLUMNS, Row

STATE_STYLE = {"running": "green", "stopped": "dim", "missing": "red"}


def cell(value: str, column: str) -> Text:
    """A cell as plain Text: never parsed as markup (a label `[bold]` shows as typed)."""
    if column == "STATE":
        return Text(value, style=STATE_STYLE.get(value.split(" ")[0], "yellow"))
    if column == "NAME":
        return Text(value, style="bold")
    return Text(value)


class SessionTable(DataTable[Text]):
    BINDINGS = [
        Binding("enter", "select_cursor", "attach"),  # shown in the footer (DataTable's own is not)
        Binding("j", "cursor_down", "down", show=False),
        Binding("k", "cursor_up", "up", show=False),
    ]

    def __init__(self) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, id="sessions")
        self.shown: list[Row] = []

    def on_mount(self) -> None:
        for column in COLUMNS:
            self.add_column(column, key=column)

    def show(self, rows: list[Row]) -> None:
        """Show ``rows``: the same sessions in the same order get only their changed cells
        updated (a refresh usually changes one state, or nothing); otherwise the table
        is rebuilt, the cursor staying on the same session if it is still there."""
        if [r.key for r in rows] == [r.key for r in self.shown]:
            for old, new in zip(self.shown, rows):
                for column, before, after in zip(COLUMNS, old.cells, new.cells):
                    if before != after:
                        self.update_cell(new.key, column, cell(after, column), update_width=True)
            self.shown = list(rows)
            return
        current = self.current()
        self.clear()
        for row in rows:
            self.add_row(*(cell(v, c) for v, c in zip(row.cells, COLUMNS)), key=row.key)
        self.shown = list(rows)
        if current is not None:
            keys = [r.key for r in rows]
            if current.key in keys:
                self.move_cursor(row=keys.index(current.key), animate=False)

    def current(self) -> Row | None:
        """The row under the cursor, if any."""
        if not self.shown or not 0 <= self.cursor_row < len(self.shown):
            return None
        return self.shown[self.cursor_row]
