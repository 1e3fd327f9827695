"""mux/safetext.py: untrusted text printed without driving the terminal."""

from __future__ import annotations

import pytest

from mux.safetext import escape, line


@pytest.mark.parametrize(("text", "shown"), [
    ("plain text", "plain text"),
    ("tab\tand\nnewline", "tab\tand\nnewline"),
    ("\x1b]0;pwned\x07title", "\\x1b]0;pwned\\x07title"),
    ("\x1b]52;c;cm0gLXJmIH4=\x1b\\", "\\x1b]52;c;cm0gLXJmIH4=\\x1b\\"),
    ("\x1b[2J\x1b[Hclear", "\\x1b[2J\\x1b[Hclear"),
    ("carriage\roverwrite", "carriage\\x0doverwrite"),
    ("8-bit \x9b31m CSI", "8-bit \\x9b31m CSI"),
    ("del\x7f nul\x00", "del\\x7f nul\\x00"),
    ("bidi \u202eevil", "bidi \\u202eevil"),
    ("zero\u200bwidth\ufeff", "zero\\u200bwidth\\ufeff"),
    ("unicode é ✓ 日本", "unicode é ✓ 日本"),
    (b"bytes \x1b[31m \xff", "bytes \\x1b[31m \\xff"),
], ids=["plain", "tab-newline", "osc0", "osc52", "csi", "cr", "c1", "del-nul", "bidi", "zero-width", "unicode",
        "bytes"])
def test_escape(text: str | bytes, shown: str) -> None:
    assert escape(text) == shown


def test_line_escapes_tab_and_newline_too() -> None:
    assert line("a\tb\nc\x1b") == "a\\tb\\nc\\x1b"


def test_length_is_bounded() -> None:
    shown = escape("x" * 10_000, limit=100)
    assert shown == "x" * 100 + "... (9900 more characters)"
    assert len(line("\x1b" * 10_000, limit=50)) < 50 * 4 + 40


def test_nothing_raw_survives_any_byte() -> None:
    every = bytes(range(256)).decode("latin-1")
    shown = escape(every)
    assert not any(ord(c) < 32 and c not in "\t\n" for c in shown)
    assert not any(0x7F <= ord(c) <= 0x9F for c in shown)
