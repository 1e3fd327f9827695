"""`mux tui` end to end in a real terminal: tmux runs `python -m mux tui`, keys go in
with send-keys, the screen comes back with capture-pane; the sessions are real."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import DEBIAN, ROOT, mux, session_dir
from tests.integration.test_repo_sessions import git

pytestmark = pytest.mark.docker


class Terminal:
    """One tmux server of this test's own (its socket named for the instance)."""

    def __init__(self, socket: str) -> None:
        self.socket = socket

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, "-f", "/dev/null", *args], capture_output=True,
                              text=True, check=True).stdout

    def send(self, *keys: str) -> None:
        for key in keys:  # one at a time, as a person types: a burst would land before a screen is up
            self.tmux("send-keys", "-t", "tui", key)
            time.sleep(0.15)

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "tui")

    def wait(self, check: str, gone: bool = False, limit: float = 20.0) -> str:
        deadline = time.monotonic() + limit
        while True:
            shown = self.screen()
            if (check in shown) != gone:
                return shown
            if time.monotonic() > deadline:
                raise AssertionError(f"{check!r} {'still' if gone else 'not'} on the screen after {limit} s:\n{shown}")
            time.sleep(0.2)

    def row(self, name: str) -> str:
        """The table line of session ``name`` ("" when it is not shown)."""
        return next((ln for ln in self.screen().splitlines() if ln.split()[:1] == [name]), "")

    def wait_row(self, name: str, state: str, limit: float = 20.0) -> None:
        """Until session ``name``'s row shows ``state`` ("": until it has no row)."""
        deadline = time.monotonic() + limit
        while (state not in self.row(name).split()[1:2]) if state else self.row(name):
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} not {state} after {limit} s:\n{self.screen()}")
            time.sleep(0.2)


@pytest.fixture
def terminal(tmp_path: Path, mux_home: Path, own_instance: str) -> Iterator[Terminal]:
    """`mux tui` in a 120x40 tmux pane, with this test's MUX_* environment; the pane's
    shell says how mux exited, then waits, so the screen after it can be read."""
    env = {k: os.environ[k] for k in ("MUX_INSTANCE", "MUX_DATA_DIR", "MUX_CONFIG", "PATH", "HOME")}
    env["PYTHONPATH"] = str(ROOT)
    script = tmp_path / "run.sh"
    script.write_text("".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())
                      + f"cd {shlex.quote(str(tmp_path))}\necho before-tui\n"
                      + f"{shlex.quote(sys.executable)} -m mux tui\necho EXIT=$?\nexec sleep 600\n")
    term = Terminal(f"mux-{own_instance}")
    term.tmux("new-session", "-d", "-x", "120", "-y", "40", "-s", "tui", f"bash --norc {shlex.quote(str(script))}")
    try:
        yield term
    finally:
        term.tmux("kill-server")


def test_tui_in_a_terminal(images, terminal: Terminal, unique_name: str) -> None:
    a, b, c = f"{unique_name}a", f"{unique_name}b", f"{unique_name}c"
    assert mux("new", a, "--", "sh", "-c", "echo hello-from-$((6*7)); sleep 600").returncode == 0
    assert mux("new", b).returncode == 0
    assert mux("stop", b).returncode == 0
    terminal.wait("NAME")
    terminal.wait_row(a, "running")
    terminal.wait_row(b, "stopped")
    shown = terminal.screen()
    assert "q quit" in shown and "/ filter" in shown, shown  # the footer lists the keys

    assert mux("new", c).returncode == 0  # from another terminal: it shows up, and goes
    terminal.wait_row(c, "running")
    assert mux("delete", "--force", c).returncode == 0
    terminal.wait_row(c, "")

    terminal.send("/", *b[-4:])
    terminal.wait_row(a, "")
    terminal.send("Escape")
    terminal.wait_row(a, "running")

    terminal.send("k", "l")  # the cursor stayed on b through the filter: up to a
    terminal.wait("hello-from-42")
    terminal.send("Escape")
    terminal.wait("logs of", gone=True)

    terminal.send("j", "s")  # b starts; s again stops it
    terminal.wait_row(b, "running")
    terminal.send("s")
    terminal.wait_row(b, "stopped")

    terminal.send("d")
    terminal.wait("[y/n]")
    terminal.send("n")
    terminal.wait(f"kept session {b}")
    assert terminal.row(b)
    terminal.send("d")
    terminal.wait("[y/n]")
    terminal.send("y")
    terminal.wait(f"Deleted session {b}.")
    terminal.wait_row(b, "")
    assert not session_dir(b).exists()

    terminal.send("q")
    after = terminal.wait("EXIT=0")
    assert "before-tui" in after and "NAME" not in after  # the screen as it was before, restored
    assert terminal.tmux("display-message", "-p", "-t", "tui", "#{alternate_on}").strip() == "0"


def test_unsaved_work_refused_then_attach_and_detach(images, terminal: Terminal, tmp_path: Path,
                                                     unique_name: str) -> None:
    seed = tmp_path / "seed"
    seed.mkdir()
    git("init", "-q", "-b", "main", cwd=seed)
    (seed / "README").write_text("hello\n")
    git("add", "README", cwd=seed)
    git("commit", "-qm", "first", cwd=seed)
    bare = tmp_path / "remote.git"
    git("clone", "-q", "--bare", str(seed), str(bare))
    # debian: git in the image, where mux delete may read the clone (the git box)
    assert mux("new", "--image", DEBIAN, "--repo", str(bare), unique_name).returncode == 0
    assert mux("stop", unique_name).returncode == 0
    (session_dir(unique_name) / "repo" / "scratch.txt").write_text("work\n")
    terminal.wait_row(unique_name, "stopped")

    terminal.send("d")
    terminal.wait("[y/n]")
    terminal.send("y")
    refusal = terminal.wait("not deleting")
    assert "untracked" in refusal and "F: delete anyway" in refusal
    terminal.send("F")
    terminal.wait("Force-delete")
    terminal.send("n")
    terminal.wait(f"kept session {unique_name}")
    assert (session_dir(unique_name) / "repo" / "scratch.txt").exists()

    terminal.send("Enter")  # attach starts the stopped session and hands the terminal over
    terminal.wait("detach with Ctrl-P Ctrl-Q")
    terminal.send("echo in-session-$((40+2))", "Enter")
    terminal.wait("in-session-42")
    terminal.send("C-p", "C-q")
    terminal.wait(f"detached from {unique_name}")
    terminal.wait_row(unique_name, "running")

    terminal.send("d")  # running and with unsaved work: refused; forced, after a second yes
    terminal.wait("[y/n]")
    terminal.send("y")
    terminal.wait("it is running")
    terminal.send("F")
    terminal.wait("Force-delete")
    terminal.send("y")
    terminal.wait(f"Deleted session {unique_name}.")
    terminal.wait_row(unique_name, "")
    assert not session_dir(unique_name).exists()
    terminal.send("q")
    terminal.wait("EXIT=0")
