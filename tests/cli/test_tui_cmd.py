"""`mux tui` without a terminal: exit 2, one line, and Textual never imported."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize("which", ["stdin", "stdout", "stderr"])
def test_no_terminal_is_a_usage_error(tmp_path: Path, which: str) -> None:
    env = {"MUX_CONFIG": str(tmp_path / "none.toml"), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
           "MUX_DATA_DIR": str(tmp_path / "data")}
    probe = ("import sys, runpy; sys.argv = ['mux', 'tui']\n"
             "try:\n    runpy.run_module('mux', run_name='__main__')\n"
             "finally:\n    print('textual' in sys.modules, file=sys.stderr)\n")
    # The two others are a terminal (a pty); the one under test is not.
    primary, secondary = pty.openpty()
    err = Path(tmp_path, "stderr")
    try:
        with err.open("w") as err_file:
            ends = {"stdin": secondary, "stdout": secondary, "stderr": secondary}
            ends[which] = {"stdin": subprocess.DEVNULL, "stdout": subprocess.PIPE, "stderr": err_file}[which]
            done = subprocess.run([sys.executable, "-c", probe], env={**env, "PYTHONPATH": os.environ["PYTHONPATH"]},
                                  timeout=60, **ends)  # type: ignore[call-overload]
    finally:
        os.close(secondary)
        shown = os.read(primary, 65536).decode() if which != "stderr" else ""
        os.close(primary)
    assert done.returncode == 2
    lines = (err.read_text() if which == "stderr" else shown).splitlines()
    assert lines[0].startswith("mux: error: mux tui needs a terminal") and lines[1:] == ["False"]
