"""Consistent edges on a real engine: colours only for a terminal, Ctrl-C is 130,
a missing git identity is said out loud (by `mux new` and `mux doctor`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import mux
from tests.integration.test_attach import read_until

pytestmark = pytest.mark.docker
ESC = b"\x1b["


def on_terminal(*args: str, env: dict[str, str] | None = None) -> tuple[int, bytes]:
    """Run mux with a pty as its stdout (and stdin, stderr); its exit code and output."""
    primary, secondary = os.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "mux", *args], stdin=secondary, stdout=secondary,
                            stderr=secondary, env={**os.environ, **(env or {})}, start_new_session=True)
    os.close(secondary)
    try:
        seen = read_until(primary, b"\0never\0", limit=30) if proc.wait(timeout=60) is not None else b""
    finally:
        os.close(primary)
    return proc.returncode, seen


@pytest.mark.parametrize(("env", "coloured"), [
    pytest.param({}, True, id="terminal"),
    pytest.param({"NO_COLOR": "1"}, False, id="NO_COLOR"),
    pytest.param({"TERM": "dumb"}, False, id="dumb"),
])
def test_list_and_doctor_colour_a_terminal_only(images, mux_home, unique_name, env, coloured) -> None:
    assert mux("new", unique_name).returncode == 0
    for args in (["list"], ["doctor"]):
        _, shown = on_terminal(*args, env=env)
        assert (ESC in shown) is coloured, shown
        piped = mux(*args, env=env)
        assert "\x1b[" not in piped.stdout and unique_name in mux("list").stdout
    _, listed = on_terminal("list", env=env)
    if coloured:
        assert b"\x1b[32mrunning" in listed  # green, padded inside the colour: columns stay aligned
    header, row = [line for line in listed.decode().splitlines() if line.strip()][:2]
    plain_row = row.replace("\x1b[32m", "").replace("\x1b[0m", "")
    assert plain_row.index("running") == header.index("STATUS")


def test_ctrl_c_in_exec_is_130(images, mux_home, unique_name) -> None:
    assert mux("new", unique_name).returncode == 0
    # Its own process group, like a shell's job: Ctrl-C signals the whole group (mux and docker).
    proc = subprocess.Popen([sys.executable, "-m", "mux", "exec", unique_name, "--", "sleep", "30"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        started = "for i in $(seq 100); do ps -o args | grep -q '^sleep 30' && exit 0; sleep 0.1; done; exit 1"
        waited = subprocess.run(["docker", "exec", f"mux-{unique_name}", "sh", "-c", started])
        assert waited.returncode == 0, "the exec'd sleep never started"
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=25)  # well before the sleep would end by itself
    finally:
        proc.kill()
    assert proc.returncode == 130


def test_no_git_identity_is_a_warning_on_new_and_a_doctor_failure(images, mux_home, unique_name, tmp_path) -> None:
    bare_home = tmp_path / "nogit"
    bare_home.mkdir()
    env = {"HOME": str(bare_home), "GIT_CONFIG_NOSYSTEM": "1", "XDG_CONFIG_HOME": str(bare_home / ".config")}
    made = mux("new", unique_name, env=env)
    assert made.returncode == 0, made.stderr
    warning = [line for line in made.stderr.splitlines() if line.startswith("mux: warning:")]
    assert len(warning) == 1 and "no git user.name or user.email" in warning[0]
    assert "[git] user_name and user_email" in warning[0] and "git config --global user.name" in warning[0]
    doctor = mux("doctor", "--json", env=env)
    git = {c["name"]: c for c in json.loads(doctor.stdout)["checks"]}["git"]
    assert doctor.returncode == 1 and git["ok"] is False and "git config --global" in git["fix"]

    config = Path(os.environ["MUX_CONFIG"])
    config.write_text(config.read_text() + '[git]\nuser_name = "Ada"\nuser_email = "ada@example.com"\n')
    again = mux("new", unique_name + "b", env=env)
    assert again.returncode == 0 and "warning" not in again.stderr
    git = {c["name"]: c for c in json.loads(mux("doctor", "--json", env=env).stdout)["checks"]}["git"]
    assert git == {"name": "git", "ok": True, "detail": "commits as Ada <ada@example.com>", "fix": ""}


def test_attach_returns_the_shells_exit_code_when_it_ends(images, mux_home, unique_name) -> None:
    assert mux("new", unique_name).returncode == 0
    primary, secondary = os.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "mux", "attach", unique_name],
                            stdin=secondary, stdout=secondary, stderr=secondary, start_new_session=True)
    os.close(secondary)
    try:
        assert b"Ctrl-Q" in read_until(primary, b"Ctrl-Q")
        os.write(primary, b"exit 3\r")
        proc.wait(timeout=30)
    finally:
        proc.kill()
        os.close(primary)
    assert proc.returncode == 3  # not a detach: the session stopped
    assert json.loads(mux("list", "--json").stdout)[0]["status"] == "stopped"
