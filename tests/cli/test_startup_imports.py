"""`mux --help`, `--dry-run` and `list` stay light: no GitPython, no mitmproxy."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("git", "mitmproxy", "sh", "cryptography")

PROBE = """
import sys, runpy
sys.argv = ["mux", *sys.argv[1:]]
try:
    runpy.run_module("mux", run_name="__main__")
except SystemExit:
    pass
print(sorted(m for m in {heavy} if m in sys.modules))
"""


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["new", "--help"], ["config", "path"]],
                         ids=["help", "version", "new-help", "config-path"])
def test_light_commands_import_nothing_heavy(args: list[str], tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {"MUX_CONFIG": str(tmp_path / "none.toml"), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), *args], capture_output=True,
                         text=True, env=env, check=True).stdout
    assert out.splitlines()[-1] == "[]"
