"""Text from a container or docker, made safe to put on the screen.

Labels, logs, ports and audit lines are input: a control character could move the
cursor, clear the screen or retitle the terminal, and a bidi override or a
zero-width character could make one name look like another. Each such character
is shown as a visible escape (``\\x1b``, ``\\u202e``) instead. Rich markup is never
interpreted: the widgets get plain ``Text`` (see mux/tui/widgets.py), so
``[bold]`` shows as those seven characters.
"""

from __future__ import annotations

from mux.safetext import escape

MAX_FIELD = 200  # a label longer than this is cut: one cell never pushes the others off the screen


def field(value: object, limit: int = MAX_FIELD) -> str:
    """One table cell or title: every control character escaped, newlines included
    (mux.safetext, the one escaping mux has)."""
    text = str(value)
    if len(text) > limit:
        text = text[:limit] + "…"
    return escape(text, limit=0, one_line=True)


def line(value: str) -> str:
    """One line of a log: tabs kept (they only move right), a trailing CR dropped
    (a terminal's line end), every other control character escaped."""
    if value.endswith("\r"):
        value = value[:-1]
    return "\t".join(escape(part, limit=0, one_line=True) for part in value.split("\t"))
