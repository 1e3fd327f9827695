"""Running git through GitPython (imported lazily: ``mux --help`` must not pay for it).

Every call gets an environment that never prompts on the terminal and only
allows the transports mux accepts; extra configuration travels in
``GIT_CONFIG_*`` variables, so a credential is never on a command line nor in a
file. Long commands stream their stderr through GitPython's ``RemoteProgress``
parser; any exception in the caller's progress callback, Ctrl-C or SIGTERM kills
git before the exception propagates, so the caller can clean up a directory git
is no longer writing to.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from git import RemoteProgress

ProgressCallback = Callable[[str, int, "int | None"], None]
Config = Sequence["tuple[str, str]"]

_STAGES = {
    "COUNTING": "Counting objects",
    "COMPRESSING": "Compressing objects",
    "WRITING": "Writing objects",
    "RECEIVING": "Receiving objects",
    "RESOLVING": "Resolving deltas",
    "FINDING_SOURCES": "Finding sources",
    "CHECKING_OUT": "Checking out files",
}


@dataclass
class Outcome:
    status: int
    stdout: str = ""
    lines: list[str] = field(default_factory=list)  # stderr, minus progress meters

    @property
    def ok(self) -> bool:
        return self.status == 0


def git_env(config: Config = ()) -> dict[str, str]:
    env = {
        # A hidden prompt would hang mux (and its tests); credential helpers still work.
        "GIT_TERMINAL_PROMPT": "0",
        "GCM_INTERACTIVE": "never",
        "GIT_ALLOW_PROTOCOL": os.environ.get("GIT_ALLOW_PROTOCOL", "https:http:ssh:file"),
    }
    # Append to configuration the user may already pass this way, not replace it.
    start = int(os.environ.get("GIT_CONFIG_COUNT", "0") or 0)
    for i, (key, value) in enumerate(config, start):
        env[f"GIT_CONFIG_KEY_{i}"] = key
        env[f"GIT_CONFIG_VALUE_{i}"] = value
    if config:
        env["GIT_CONFIG_COUNT"] = str(start + len(config))
    for key, value in config:
        if key.lower() == "http.sslcainfo":
            env["GIT_SSL_CAINFO"] = value  # an inherited GIT_SSL_CAINFO would outrank the config
    return env


def run(args: Sequence[str | os.PathLike[str]], *, cwd: Path | None = None, config: Config = ()) -> Outcome:
    """Run a short git command and capture its output; never raises for exit status."""
    import git

    argv = _argv(args)
    status, out, err = git.Git(cwd).execute(
        argv, with_extended_output=True, with_exceptions=False, env=git_env(config),
        strip_newline_in_stdout=False,
    )
    return Outcome(int(status or 0), str(out), str(err).splitlines())


def stream(
    args: Sequence[str | os.PathLike[str]],
    *,
    cwd: Path | None = None,
    config: Config = (),
    on_progress: ProgressCallback | None = None,
) -> Outcome:
    """Run a long git command (clone, fetch) with ``--progress`` parsed line by line."""
    import git

    failure: list[BaseException] = []
    progress = _progress(on_progress)
    argv = _argv(args)
    # universal_newlines makes "\r"-separated progress meters arrive as lines.
    handle = git.Git(cwd).execute(argv, as_process=True, universal_newlines=True, env=git_env(config))
    proc = handle.proc
    assert proc is not None

    def on_line(line: str) -> None:
        if failure:
            return  # keep draining so git never blocks on a full pipe
        try:
            progress._parse_progress_line(line.rstrip())
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            failure.append(exc)
            _kill(proc)

    try:
        git.cmd.handle_process_output(handle, None, on_line, None, decode_streams=False)
        status = proc.wait()
    except BaseException:
        _kill(proc)
        # GitPython's finalizer would close the pipes under a reader thread that
        # an escaped helper process can still block: let the garbage go instead.
        handle.proc = None
        raise
    if failure:
        raise failure[0]
    lines = [*progress.error_lines, *progress.other_lines]
    return Outcome(status, "", lines)


class _Process(Protocol):
    pid: int

    def poll(self) -> int | None: ...
    def wait(self) -> int: ...


def _kill(proc: _Process) -> None:
    """Kill git and its helpers (remote-https, index-pack), which would otherwise
    live on, keep writing into the clone being removed, and hold our pipes open."""
    if proc.poll() is None:
        tree = _descendants(proc.pid)  # before the kill: orphans lose their parent link
        for pid in [proc.pid, *tree]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    proc.wait()


def _descendants(pid: int) -> list[int]:
    # Not a process group of its own: git and ssh must keep the terminal (ssh asks
    # for passphrases and host keys there), so the tree is found through /proc.
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fields = Path(entry.path, "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue  # it exited meanwhile
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def _argv(args: Sequence[str | os.PathLike[str]]) -> list[str]:
    return ["git", *(os.fspath(a) for a in args)]


def _progress(on_progress: ProgressCallback | None) -> RemoteProgress:
    from git import RemoteProgress

    class Progress(RemoteProgress):
        def update(self, op_code: int, cur_count: str | float, max_count: str | float | None = None,
                   message: str = "") -> None:
            if on_progress is None:
                return
            stage = next((name for flag, name in _STAGES.items() if op_code & getattr(self, flag)), "")
            total = int(float(max_count)) if max_count not in (None, "") else None
            on_progress(stage, int(float(cur_count or 0)), total)

    return Progress()


class Terminated(Exception):
    """SIGTERM arrived while mux was cloning."""


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """Turn SIGTERM into an exception for a while, so cleanup code gets to run.

    Only the main thread may install signal handlers; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
