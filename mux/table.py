"""Plain-text tables for `mux list`. Every cell came from Docker (labels a session
could have set): shown on one line, control characters escaped (mux/safetext.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from mux.safetext import line as one_line


def created_local(stamp: str) -> str:
    """``2026-11-26T21:30:00Z`` as local time, minutes precision; other text as is."""
    # Not strptime: its first use imports _strptime and calendar, ~2 ms of every `mux list`.
    if len(stamp) != 20 or stamp[10] != "T" or not stamp.endswith("Z"):
        return stamp
    try:
        when = datetime.fromisoformat(stamp[:-1] + "+00:00")
    except ValueError:
        return stamp
    return when.astimezone().strftime("%Y-%m-%d %H:%M")


def render(headers: list[str], rows: list[list[str]],
           paint: Callable[[str, str], str] | None = None) -> str:
    """Columns padded to their widest cell. ``paint(header, padded_cell)`` may
    colour data cells; it sees them padded, so colour codes never skew widths."""
    rows = [[one_line(str(c)) for c in r] for r in rows]
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]

    def line(row: list[str], painted: bool) -> str:
        cells = [str(c).ljust(w) for c, w in zip(row, widths)]
        if painted and paint is not None:
            cells = [paint(h, c) for h, c in zip(headers, cells)]
        return "  ".join(cells).rstrip()

    return "\n".join([line(headers, False)] + [line(r, True) for r in rows])
