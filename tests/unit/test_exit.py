"""mux's own command line ends without Python's last garbage collections (mux.cli.main)."""

from __future__ import annotations

import gc
import subprocess
import sys

import pytest

AT_EXIT = """
import atexit, gc, sys
atexit.register(lambda: print("frozen at exit:", gc.get_freeze_count() > 0, flush=True))
sys.argv = ["mux", *sys.argv[1:]]
from mux.cli import main
main()
"""


@pytest.mark.parametrize("args", [["--version"], ["no-such-command"]], ids=["ok", "usage-error"])
def test_the_program_freezes_its_objects_before_exit(args: list[str]) -> None:
    proc = subprocess.run([sys.executable, "-c", AT_EXIT, *args], capture_output=True, text=True)
    assert proc.returncode == (0 if args == ["--version"] else 2), proc.stderr
    assert proc.stdout.splitlines()[-1] == "frozen at exit: True"
    if args == ["--version"]:
        assert proc.stdout.startswith("mux ")  # and its output was flushed, not lost


def test_a_call_with_argv_leaves_the_callers_process_alone() -> None:
    from mux.cli import main

    before = gc.get_freeze_count()
    with pytest.raises(SystemExit):
        main(["--version"])
    assert gc.get_freeze_count() == before
