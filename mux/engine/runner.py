"""The one place mux starts processes.

Every command is an argv list (never a shell string). An engine command is an
:class:`~mux.engine.argv.EngineArgv`, verb first: the runner puts its engine's base argv
in front (``docker``, ``docker --context NAME``, ``podman``) and, for podman, rewrites it
in podman's words (mux/engine/clis.py); any other list is a host command and runs as
it is. With ``dry_run`` a command that would change something is printed, shell-quoted,
instead of run, so what is printed is exactly what would run. With ``verbose`` every
command is echoed to stderr as ``+ cmd`` before it runs. Failures become
:class:`DockerError` (or the caller's own error class) carrying the command, exit status
and stderr.
"""

from __future__ import annotations

import os
import pty
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Callable, NamedTuple, NoReturn, TextIO

from mux.engine import clis
from mux.engine.argv import EngineArgv
from mux.engine.failures import docker_failure, last_line
from mux.errors import DockerError, MuxError

if TYPE_CHECKING:
    from mux.engine.choice import Engine

Argv = Sequence[object]

class Result(NamedTuple):
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str


def to_argv(argv: Argv) -> list[str]:
    return [os.fspath(a) if isinstance(a, os.PathLike) else str(a) for a in argv]


def quote(argv: Argv) -> str:
    import shlex  # only to print: most runs print nothing

    return shlex.join(to_argv(argv))


class Runner:
    def __init__(
        self,
        *,
        dry_run: bool = False,
        verbose: bool = False,
        out: TextIO | None = None,
        err: TextIO | None = None,
        engine: Engine | None = None,
        timeout: float | None = None,
    ) -> None:
        self.dry_run = dry_run
        self.verbose = verbose
        self._engine = engine
        self._warned_limits = False
        self.timeout = timeout  # seconds a command may take (None: no limit)
        self._out = out
        self._err = err

    @property
    def engine(self) -> Engine:
        """The engine every docker command of this runner goes to (mux/engine/choice.py)."""
        if self._engine is None:
            from mux.engine.choice import LOCAL

            return LOCAL
        return self._engine

    def argv(self, argv: Argv) -> list[str]:
        """``argv`` as it will run: an engine command (EngineArgv) gets the engine's base
        argv in front, in its CLI's words; a host command is left as it is."""
        if not isinstance(argv, EngineArgv):
            return to_argv(argv)
        engine = self.engine
        args = [*engine.base, *argv]
        if engine.kind == clis.PODMAN:
            return self._podman(args)
        return args

    def _podman(self, args: list[str]) -> list[str]:
        rootless = clis.rootless()
        drop = clis.limits_ignored(rootless)
        out = clis.translate(args, is_rootless=rootless, drop_limits=drop)
        if drop and not self._warned_limits and clis.limits_count(out) < clis.limits_count(args):
            self._warned_limits = True
            print(f"mux: warning: {clis.LIMITS_IGNORED}", file=self.err, flush=True)
        return out

    def _engine_kind(self, argv: Argv) -> str | None:
        """The CLI an engine command runs (docker or podman); None for a host command."""
        return self.engine.kind if isinstance(argv, EngineArgv) else None

    def failure(self, result: Result) -> DockerError:
        """The error of a failed engine command's result (a check=False query's)."""
        return docker_failure(result.argv, result.returncode, result.stderr, self.engine)

    @property
    def out(self) -> TextIO:
        return self._out or sys.stdout

    @property
    def err(self) -> TextIO:
        return self._err or sys.stderr

    def show(self, argv: Argv) -> None:
        """Print a command the way dry-run does: shell-quoted, one line, stdout."""
        self._print(self.argv(argv))

    def _print(self, args: list[str]) -> None:
        print(quote(args), file=self.out, flush=True)

    def _echo(self, argv: list[str]) -> None:
        if self.verbose:
            print("+ " + quote(argv), file=self.err, flush=True)

    def run(
        self,
        argv: Argv,
        *,
        check: bool = True,
        mutates: bool = True,
        capture: bool = True,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
        error: type[MuxError] | None = None,
        timeout: float | None = None,
        shield: bool = False,
    ) -> Result:
        """Run ``argv``; in dry-run, print it instead when it ``mutates`` state.

        Read-only queries (``mutates=False``) run even in dry-run, because the
        commands printed may depend on what they find. ``shield``: the command runs
        in its own session, out of reach of the terminal's Ctrl-C, and a first
        KeyboardInterrupt waits for it to finish (then is raised), so the caller
        knows what it did and can undo it; a second one kills it.
        """
        args = self.argv(argv)
        limit = timeout or self.timeout
        if self.dry_run and mutates:
            self._print(args)
            return Result(args, 0, "", "")
        self._echo(args)
        try:
            proc = subprocess.Popen(
                args,
                stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE if capture else None,
                stderr=subprocess.PIPE if capture else None,
                text=True,
                env=None if env is None else {**os.environ, **env},
                start_new_session=shield,
            )
        except FileNotFoundError:
            raise self._missing(args, self._engine_kind(argv), error) from None
        except PermissionError as exc:
            raise (error or MuxError)(f"cannot run {args[0]}: {exc.strerror}") from None
        try:
            stdout, stderr, interrupted = _wait(proc, input, shield, limit)
        except subprocess.TimeoutExpired:
            raise (error or DockerError)(f"{quote(args[:4])} ... did not answer within {limit:g} s") from None
        if interrupted:
            raise KeyboardInterrupt
        kind = self._engine_kind(argv)
        if kind == clis.PODMAN and stderr:
            stderr = clis.docker_wording(stderr)  # what mux matches is docker's wording
        result = Result(args, proc.returncode, stdout or "", stderr or "")
        if check and proc.returncode != 0:
            if error is None:
                raise docker_failure(args, proc.returncode, result.stderr, self._failing(argv))
            detail = last_line(result.stderr) or f"exit status {proc.returncode}"
            raise error(f"{args[0]} {args[1] if len(args) > 1 else ''} failed: {detail}".replace("  ", " "))
        return result

    def query(self, argv: Argv, **kwargs: object) -> Result:
        return self.run(argv, mutates=False, **kwargs)  # type: ignore[arg-type]

    def stream(self, argv: Argv) -> subprocess.Popen[bytes]:
        """Start ``argv`` with stdout and stderr merged into one pipe, no stdin, and return
        at once (`mux tui` follows `docker logs -f` through it; the caller kills it)."""
        args = self.argv(argv)
        self._echo(args)
        try:
            return subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT)
        except FileNotFoundError:
            raise self._missing(args, self._engine_kind(argv), None) from None

    def spawn(self, argv: Argv, *, stdin: int, stdout: int) -> subprocess.Popen[bytes]:
        """Start ``argv`` and return at once: stdin and stdout are file descriptors
        or subprocess.PIPE (`mux forward`'s tunnel); stderr is a pipe for the caller."""
        args = self.argv(argv)
        self._echo(args)
        try:
            return subprocess.Popen(args, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE)
        except FileNotFoundError:
            raise self._missing(args, self._engine_kind(argv), None) from None

    def background(self, argv: Argv) -> Background:
        """Start a read-only ``argv`` now and collect its output later (a check that
        runs while other commands do): :meth:`Background.wait`."""
        args = self.argv(argv)
        self._echo(args)
        try:
            proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
        except FileNotFoundError:
            raise self._missing(args, self._engine_kind(argv), None) from None
        return Background(args, proc)

    @contextmanager
    def pipe(self, argv: Argv, *, write: bool = False) -> Iterator[Pipe]:
        """Run ``argv`` with its stdout (or, ``write``, its stdin) a binary stream the
        caller reads (writes) in the with-block: `docker cp` tar streams that mux
        checks itself (mux/session/safetar.py). After the block the command must exit 0
        (DockerError with its stderr otherwise); ``Pipe.stop()`` ends it early
        without that check. A MuxError from the block kills the command and stands;
        another error (a broken stream) is docker's error when docker failed."""
        import tempfile  # here: it imports shutil, which `mux list` does not need

        args = self.argv(argv)
        self._echo(args)
        with tempfile.TemporaryFile() as err:  # a file, not a pipe: nobody has to drain it
            try:
                proc = subprocess.Popen(args, stdin=subprocess.PIPE if write else subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL if write else subprocess.PIPE, stderr=err)
            except FileNotFoundError:
                raise self._missing(args, self._engine_kind(argv), None) from None
            end = proc.stdin if write else proc.stdout
            assert end is not None
            handle = Pipe(end, proc)
            try:
                yield handle
            except MuxError:
                proc.kill()
                proc.wait()
                raise
            except Exception as exc:
                code = _finish(proc, end)
                if code:
                    raise docker_failure(args, code, _text(err), self._failing(argv)) from exc
                raise
            except BaseException:
                proc.kill()
                proc.wait()
                raise
            code = _finish(proc, end)
            if code and not handle.stopped:
                raise docker_failure(args, code, _text(err), self._failing(argv))

    def exec(self, argv: Argv) -> NoReturn:
        """Hand the terminal over to ``argv`` (dry-run: print it and exit 0)."""
        args = self.argv(argv)
        if self.dry_run:
            self._print(args)
            raise SystemExit(0)
        self._echo(args)
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            os.execvp(args[0], args)
        except FileNotFoundError:
            raise self._missing(args, self._engine_kind(argv), None) from None

    def interactive(self, argv: Argv) -> int:
        """Run ``argv`` on this terminal and return its exit code (dry-run: print it, 0).

        A child, not an exec, so mux has the last word on the exit code: a Ctrl-C
        (SIGINT) while it runs reaches it through the terminal and makes mux exit
        130, as a shell reports an interrupted job, whatever the child returns.
        """
        args = self.argv(argv)
        if self.dry_run:
            self._print(args)
            return 0
        self._echo(args)
        sys.stdout.flush()
        sys.stderr.flush()
        from mux.engine import podman_tty  # podman 4.3's detach keys need a pty of mux's

        if podman_tty.wanted(args):
            pid, master = pty.fork()
            if pid == 0:  # the child: podman on a terminal of mux's
                try:
                    podman_tty.child_terminal()
                    os.execvp(args[0], args)
                finally:
                    os._exit(127)
            return podman_tty.attach(pid, master)
        interrupted: list[int] = []
        # A Python handler (not SIG_IGN) is reset to the default in the child at exec.
        previous = signal.signal(signal.SIGINT, lambda signum, frame: interrupted.append(signum))
        try:
            try:
                proc = subprocess.Popen(args)
            except FileNotFoundError:
                raise self._missing(args, self._engine_kind(argv), None) from None
            try:
                code = proc.wait()
            except BaseException:  # SIGTERM (raised as KeyboardInterrupt): the child goes too
                proc.terminate()
                proc.wait()
                raise
        finally:
            signal.signal(signal.SIGINT, previous)
        if interrupted:
            return 130
        return 128 - code if code < 0 else code  # killed by signal N: 128+N, as a shell says

    def _failing(self, argv: Argv) -> Engine | None:
        return self.engine if isinstance(argv, EngineArgv) else None

    @staticmethod
    def _missing(args: list[str], kind: str | None, error: type[MuxError] | None) -> MuxError:
        if kind is not None and error is None:
            return DockerError(f"the {kind} command was not found on PATH", hint=clis.MISSING_HINTS[kind],
                               argv=args)
        return (error or MuxError)(f"{args[0]} was not found on PATH")


class Background:
    """A command started by :meth:`Runner.background`."""

    def __init__(self, argv: list[str], proc: subprocess.Popen[str]) -> None:
        self.argv, self.proc = argv, proc

    def wait(self, timeout: float | None = None) -> Result:
        """Its result once it ends (killed after ``timeout`` seconds: status -9)."""
        try:
            stdout, stderr = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return Result(self.argv, -9, "", f"did not answer within {timeout:g} s")
        except BaseException:
            self.kill()
            raise
        return Result(self.argv, self.proc.returncode, stdout or "", stderr or "")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()


class Pipe:
    """The stream of a :meth:`Runner.pipe` command."""

    def __init__(self, stream: IO[bytes], proc: subprocess.Popen[bytes]) -> None:
        self.stream = stream
        self.stopped = False
        self._proc = proc

    def stop(self) -> None:
        """End the command now (the caller has read enough); its exit status is not checked."""
        self.stopped = True
        self._proc.kill()


def _finish(proc: subprocess.Popen[bytes], end: IO[bytes]) -> int:
    """Close our end, give the command a few seconds to exit, then kill it. What a
    reader left unread (a tar's end padding) is drained, bounded, so docker does not
    fail on a closed pipe."""
    try:
        if end.readable():
            for _ in range(64):
                if not end.read(16 * 1024):
                    break
        end.close()
    except OSError:  # a writer whose reader is gone: the exit status says why
        pass
    try:
        return proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def _text(err: IO[bytes]) -> str:
    err.seek(0)
    return err.read(64 * 1024).decode(errors="replace")


def _wait(proc: subprocess.Popen[str], input: str | None, shield: bool,
          timeout: float | None) -> tuple[str, str, bool]:
    """Output of a finished ``proc``. Unshielded, Ctrl-C kills it (as subprocess.run
    does); shielded, the first one waits for it and the second kills it. After
    ``timeout`` seconds it is killed (TimeoutExpired)."""
    interrupts = 0
    while True:
        try:
            stdout, stderr = proc.communicate(input if interrupts == 0 else None, timeout=timeout)
            return stdout, stderr, interrupts > 0
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise
        except KeyboardInterrupt:
            interrupts += 1
            if not shield or interrupts > 1:
                proc.kill()
                proc.wait()
                raise


def host_step(runner: Runner, argv: Argv, action: Callable[[], object]) -> None:
    """A host-side step done in Python, shown as the command that does the same.

    Dry-run prints ``argv`` without acting; ``-v`` echoes it before acting.
    """
    args = to_argv(argv)
    if runner.dry_run:
        runner.show(args)
        return
    runner._echo(args)
    action()


def write_argv(path: os.PathLike[str] | str, text: str, *, append: bool = False) -> tuple[list[str], str]:
    """The command that writes ``text`` to ``path`` (a host step's printed form),
    and the exact content it writes: each line, newline-ended. The lines are
    arguments, never part of the script."""
    lines = text.splitlines()
    script = 'printf "%s\\n" "$@" >> "$0"' if append else 'printf "%s\\n" "$@" > "$0"'
    return ["sh", "-c", script, os.fspath(path), *lines], "".join(f"{line}\n" for line in lines)


def spawn_detached(argv: Argv, log_path: os.PathLike[str] | str, env: Mapping[str, str] | None = None) -> int:
    """Start ``argv`` in the background, in its own session, output appended to ``log_path``.

    For long-lived helpers (the credential proxy) that must outlive this mux
    process and the terminal it runs in. Returns the child's pid.
    """
    args = to_argv(argv)
    with open(log_path, "ab") as log:
        try:
            proc = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, env=None if env is None else {**os.environ, **env},
            )
        except FileNotFoundError:
            raise MuxError(f"{args[0]} was not found on PATH") from None
    return proc.pid
