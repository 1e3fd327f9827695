"""Colour for people, never for pipes: only on a terminal, never with NO_COLOR
(https://no-color.org: set and not empty) or TERM=dumb."""

from __future__ import annotations

import os
import sys
from typing import TextIO

# ANSI SGR codes by meaning, so callers name what a value is, not how it looks.
_CODES = {"good": "32", "warn": "33", "bad": "31", "dim": "2"}


def enabled(stream: TextIO | None = None) -> bool:
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    stream = stream or sys.stdout
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or odd stream: plain text
        return False


def paint(text: str, meaning: str | None, on: bool) -> str:
    """``text`` in the colour for ``meaning`` when ``on``; otherwise unchanged."""
    if not on or meaning not in _CODES:
        return text
    return f"\033[{_CODES[meaning]}m{text}\033[0m"


def status_meaning(status: str) -> str | None:
    """How `mux list` colours a STATUS cell ("running", "stopped", "missing", docker's
    own words, maybe followed by "(workdir missing)")."""
    word = status.split()[0] if status else ""
    if word in ("missing", "dead", "foreign"):
        return "bad"
    if "missing" in status or word in ("paused", "restarting"):
        return "warn"
    return {"running": "good", "stopped": "dim"}.get(word)
