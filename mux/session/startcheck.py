"""Did a session's command start? Asked right after `docker run -d` / `docker start`.

docker reports success once the container's init (``--init``: tini) runs; the
session's own command is exec'd by tini a moment later and may fail to start
(not found, not executable). ``docker top`` tells the two apart without
guessing at timing: while the command has not been exec'd, every process in
the container still shows tini's command line; once it has, one does not. A
container that stops meanwhile is inspected for its exit code and last output.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, NamedTuple

from mux.engine import argv as A
from mux.safetext import line

if TYPE_CHECKING:
    from mux.engine.runner import Runner

INIT = "docker-init"  # what --init runs as PID 1 (tini)
EXEC_FAILED = "[FATAL tini"  # tini's words when exec of the command fails
PATIENCE = 10.0  # seconds of `docker top` polling before taking a busy init as started
TAIL = 10


class Outcome(NamedTuple):
    running: bool
    exit_code: int | None = None
    last_lines: tuple[str, ...] = ()

    @property
    def exec_error(self) -> str:
        """tini's line saying it could not exec the command; empty if it did."""
        found = [ln for ln in self.last_lines if EXEC_FAILED in ln and "exec " in ln]
        return found[-1] if found and not self.running else ""

    @property
    def cannot_start(self) -> bool:
        """The command never ran: tini could not exec it."""
        return bool(self.exec_error)

    def summary(self) -> str:
        return " | ".join(self.last_lines[-3:]) or "(no output)"


def command_started(top_output: str) -> bool | None:
    """True once the command runs, False while only init is there (or no process at
    all: the container ended while `docker top` looked), None if unreadable."""
    lines = [ln for ln in top_output.splitlines() if ln.strip()]
    if len(lines) == 1:
        return False
    if not lines:
        return None
    header = lines[0].split()
    if "CMD" not in header and "COMMAND" not in header:
        return None
    rows = [ln.split(None, len(header) - 1) for ln in lines[1:]]
    commands = [r[-1] for r in rows if len(r) == len(header)]
    if not commands:
        return None
    if INIT not in commands[0].split(" ", 1)[0]:
        return True  # no init in front: docker itself exec'd the command
    return any(cmd != commands[0] for cmd in commands)


def wait_started(runner: Runner, ref: str) -> Outcome:
    """Poll until the command runs or the container has stopped (dry-run: assume it runs)."""
    if runner.dry_run:
        return Outcome(running=True)
    deadline = time.monotonic() + PATIENCE
    while True:
        top = runner.query(A.top_argv(ref), check=False)
        if top.returncode != 0:
            break  # not running (any more), or gone
        if command_started(top.stdout) is not False or time.monotonic() > deadline:
            return Outcome(running=True)
        time.sleep(0.01)
    return stopped(runner, ref)


def stopped(runner: Runner, ref: str) -> Outcome:
    state = runner.query(A.inspect_argv(ref, "{{.State.Running}} {{.State.ExitCode}}"), check=False)
    running, _, code = state.stdout.strip().partition(" ")
    if state.returncode == 0 and running == "true":
        return Outcome(running=True)  # it stopped being readable by top, not running
    out = runner.query(A.logs_argv(ref, tail=TAIL), check=False)

    # The session's own output (an agent-written .bashrc's): escaped here, once, for every use.
    lines = [line(ln.rstrip("\r")) for ln in (out.stdout + out.stderr).splitlines() if ln.strip()]
    return Outcome(running=False, exit_code=int(code) if code.lstrip("-").isdigit() else None,
                   last_lines=tuple(lines[-TAIL:]))
