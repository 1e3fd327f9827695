"""Text from a container or docker, made safe to put on the screen.

Labels, logs, ports and audit lines are input: a control character could move the
cursor, clear the screen or retitle the terminal, and a bidi override or a
zero-width character could make one name look like another. Each such character
is shown as a visible escape (``\\x1b``, ``\\u202e``) instead. Rich markup is never
interpreted: the widgets get plain ``Text`` (see mux/tui/widgets.py), so
``[bold]`` shows as those seven characters.
"""

from __future__ import annotations

import re

# C0 (tab and newline are handled by the callers), DEL, C1, and the invisible
# format characters that change how text around them reads.
UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
MAX_FIELD = 200  # a label longer than this is cut: one cell never pushes the others off the screen


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def field(value: object, limit: int = MAX_FIELD) -> str:
    """One table cell or title: every control character escaped, newlines included."""
    text = str(value)
    if len(text) > limit:
        text = text[:limit] + "…"
    return UNSAFE.sub(_escaped, text)


def line(value: str) -> str:
    """One line of a log: tabs kept (they only move right), a trailing CR dropped
    (a terminal's line end), every other control character escaped."""
    if value.endswith("\r"):
        value = value[:-1]
    return "\t".join(UNSAFE.sub(_escaped, part) for part in value.split("\t"))
