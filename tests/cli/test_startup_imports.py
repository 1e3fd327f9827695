"""`mux --help`, `--dry-run` and `list` stay light: no GitPython, no mitmproxy."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("git", "mitmproxy", "sh", "cryptography", "textual", "rich")

# What mux imports, not what the interpreter had loaded before it ran (a site .pth
# file may import anything: one on a machine here pulls in shutil at every start).
PROBE = """
import sys, runpy
before = set(sys.modules)
sys.argv = ["mux", *sys.argv[1:]]
try:
    runpy.run_module("mux", run_name="__main__")
except SystemExit:
    pass
print(sorted(m for m in {heavy} if m in sys.modules and m not in before))
"""


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["new", "--help"], ["config", "path"]],
                         ids=["help", "version", "new-help", "config-path"])
def test_light_commands_import_nothing_heavy(args: list[str], tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {"MUX_CONFIG": str(tmp_path / "none.toml"), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), *args], capture_output=True,
                         text=True, env=env, check=True).stdout
    assert out.splitlines()[-1] == "[]"


# What every start-up of a session command would pay for, measured in bench/installed.py:
# the config parser and validators, pathlib (~3.5 ms), the other commands' modules.
NOT_FOR_LIST = ("mux.config", "mux.validate", "mux.spec", "mux.workspace.repo", "mux.commands.config_cmd",
                "mux.commands.port_cmd", "mux.commands.new_cmd", "mux.commands.session_cmd", "mux.proxy.cli",
                "tomllib", "shutil", "dataclasses", "_strptime", "pathlib", "shlex", "mux.session.hostfiles",
                "mux.commands.tui_cmd", "mux.tui", "textual")


def test_list_and_help_import_only_what_they_use(tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "config.toml"
    config.write_text('[docker]\nimage = "mux-test/busybox"\n')
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "docker").write_text("#!/bin/sh\nexit 0\n")  # `docker ps` with no sessions
    (fake / "docker").chmod(0o755)
    env = {"MUX_CONFIG": str(config), "PATH": f"{fake}:/usr/bin:/bin", "HOME": str(tmp_path),
           "MUX_DATA_DIR": str(tmp_path / "data")}
    for args in (["list"], ["--help"]):
        # click's help formatter asks shutil for the terminal's width
        heavy = NOT_FOR_LIST if args == ["list"] else tuple(m for m in NOT_FOR_LIST if m != "shutil")
        out = subprocess.run([sys.executable, "-c", PROBE.format(heavy=heavy), *args], capture_output=True,
                             text=True, env=env, check=True).stdout
        assert out.splitlines()[-1] == "[]", args


def test_lazy_commands_are_listed_with_their_own_short_help() -> None:
    import importlib

    import click

    from mux.cli import LAZY

    for name, (module, attr, short) in LAZY.items():
        command: click.Command = getattr(importlib.import_module(module), attr)
        assert command.get_short_help_str(200) == short, name
