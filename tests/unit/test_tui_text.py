"""What the TUI puts on screen from a container: escaped, bounded; the `/` filter."""

from __future__ import annotations

import pytest

from mux.tui.data import Row, matching
from mux.tui.text import field, line


@pytest.mark.parametrize("raw, shown", [
    ("plain name", "plain name"),
    ("\x1b[2J\x1b]0;title\x07", "\\x1b[2J\\x1b]0;title\\x07"),
    ("two\nlines\ttab", "two\\nlines\\ttab"),
    ("\u202egnp.exe", "\\u202egnp.exe"),  # a bidi override would make it read "exe.png"
    ("zero\u200bwidth\ufeff", "zero\\u200bwidth\\ufeff"),
    ("c1\x9bcsi\x7f", "c1\\x9bcsi\\x7f"),
    ("[bold]markup[/bold]", "[bold]markup[/bold]"),  # not markup's to interpret: widgets get plain Text
    ("naïve ünïcode ✓", "naïve ünïcode ✓"),
], ids=["plain", "escape-sequences", "newline-tab", "bidi", "zero-width", "c1-del", "markup", "unicode"])
def test_field_escapes_what_moves_or_hides(raw: str, shown: str) -> None:
    assert field(raw) == shown


def test_field_is_bounded() -> None:
    assert field("x" * 10_000) == "x" * 200 + "…"


def test_log_lines_keep_tabs_and_drop_the_terminal_line_end() -> None:
    assert line("a\tb\r") == "a\tb"
    assert line("progress\r50%\r") == "progress\\x0d50%"


def test_filter_is_by_name_case_insensitively() -> None:
    rows = [Row(key=n, name=n, cells=(n, "running"), session=None, engine=None) for n in ("api", "Web-1", "web-2")]
    assert [r.name for r in matching(rows, "WEB")] == ["Web-1", "web-2"]
    assert matching(rows, "  ") == rows
    assert matching(rows, "running") == []  # the name only, not the other cells
