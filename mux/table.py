"""Plain-text tables for `mux list`."""

from __future__ import annotations

from datetime import datetime


def created_local(stamp: str) -> str:
    """``2026-11-26T21:30:00Z`` as local time, minutes precision; other text as is."""
    try:
        when = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S%z")
    except ValueError:
        return stamp
    return when.astimezone().strftime("%Y-%m-%d %H:%M")


def render(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in [headers, *rows]]
    return "\n".join(lines)
