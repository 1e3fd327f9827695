"""`mux tui` without a terminal: exit 2, one line, and Textual never imported."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize("which", ["stdin", "stdout"])
def test_no_terminal_is_a_usage_error(tmp_path: Path, which: str) -> None:
    env = {"MUX_CONFIG": str(tmp_path / "none.toml"), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
           "MUX_DATA_DIR": str(tmp_path / "data")}
    probe = ("import sys, runpy; sys.argv = ['mux', 'tui']\n"
             "try:\n    runpy.run_module('mux', run_name='__main__')\n"
             "finally:\n    print('textual' in sys.modules, file=sys.stderr)\n")
    # Neither end is a terminal here (pytest's own are pipes); the one under test is
    # the only one that can be: a pty for the other, when this machine has one.
    primary, secondary = pty.openpty()
    try:
        done = subprocess.run([sys.executable, "-c", probe], env={**env, "PYTHONPATH": os.environ["PYTHONPATH"]},
                              stdin=subprocess.DEVNULL if which == "stdin" else secondary,
                              stdout=secondary if which == "stdin" else subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(primary)
        os.close(secondary)
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert lines[0].startswith("mux: error: mux tui needs a terminal") and lines[1:] == ["False"]
