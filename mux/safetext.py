"""Text from a container or from Docker, made safe to print on the user's terminal.

A label, a log line or docker's stderr is written by whoever controls the
session: raw, an ESC sequence in it could set the terminal's title (OSC 0),
write the clipboard (OSC 52), or move the cursor to hide a line. Every such
text mux prints goes through :func:`escape`: control characters other than
tab and newline are shown as ``\\x1b``-style escapes, and the length is bounded.
"""

from __future__ import annotations

import re

DEFAULT_LIMIT = 4000
# C0 controls but tab and newline, DEL, C1 controls (U+0080-U+009F: 8-bit CSI/OSC),
# and the invisible format characters (zero-width, bidi overrides, BOM) that change
# how the text around them reads (the TUI shows text through here too: mux/tui/text.py).
_FORMAT = "\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff"
_UNSAFE = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_FORMAT}]")
_UNSAFE_LINE = re.compile(f"[\x00-\x1f\x7f-\x9f{_FORMAT}]")


def _show(m: re.Match[str]) -> str:
    c = m.group(0)
    if c == "\n":
        return "\\n"
    if c == "\t":
        return "\\t"
    return f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"


def escape(text: str | bytes, *, limit: int = DEFAULT_LIMIT, one_line: bool = False) -> str:
    """``text`` with control characters escaped (``one_line``: tab and newline too),
    cut to ``limit`` characters (before escaping) with a note of how much was left out."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="backslashreplace")
    extra = len(text) - limit if limit and len(text) > limit else 0
    if extra:
        text = text[:limit]
    shown = (_UNSAFE_LINE if one_line else _UNSAFE).sub(_show, text)
    return f"{shown}... ({extra} more characters)" if extra else shown


def line(text: str | bytes, *, limit: int = 200) -> str:
    """One line of untrusted text for a table cell or a message: nothing breaks the line."""
    return escape(text, limit=limit, one_line=True)
