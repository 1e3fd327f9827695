"""Benchmark 2: start-up. `mux --help`, `mux --version`, `mux new --dry-run x`
against the Python + Click floor (`python -c "import click"`)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import MUX, Sandbox, interleave, ratio, runs, summary, table  # noqa: E402


def main() -> str:
    box = Sandbox()
    cases = {
        "`python -c pass`": [sys.executable, "-c", "pass"],
        '`python -c "import click"` (floor)': [sys.executable, "-c", "import click"],
        "`mux --version`": [*MUX, "--version"],
        "`mux --help`": [*MUX, "--help"],
        "`mux new --dry-run x`": [*MUX, "new", "--dry-run", "x"],
    }
    try:
        t = interleave({k: (lambda a=argv: box.timed(a)) for k, argv in cases.items()}, runs(20))
    finally:
        box.close()
    floor = t['`python -c "import click"` (floor)']
    n = len(floor)
    return f"### Start-up ({n} runs each, interleaved)\n\n" + table(
        ["command", "median (min–max)", "vs floor"],
        [[k, summary(v), ratio(v, floor)] for k, v in t.items()],
    )


if __name__ == "__main__":
    print(main())
