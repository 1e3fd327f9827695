"""The `mux` command: global options, the one error handler, command registry.

Only click and mux's light modules are imported here; commands import what is
heavy (GitPython, the proxy) inside their functions, so `mux --help` stays fast.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import TYPE_CHECKING

try:
    import click
except KeyboardInterrupt:  # Ctrl-C while mux is still starting (the `mux` script lands here): nothing done yet
    sys.exit(130)

from mux import __version__
from mux.errors import ConfigError, MuxError

if TYPE_CHECKING:  # types only: `mux --help` imports none of these
    from mux.config import Config
    from mux.engine.choice import Engine
    from mux.engine.runner import Runner


class State:
    """Global options, shared by every command through click's context.
    (A plain class: `dataclasses` alone would add ~4 ms to every start-up.)"""

    def __init__(self, config_path: str | None = None, verbose: bool = False, quiet: bool = False,
                 context: str | None = None) -> None:
        self.config_path = config_path
        self.verbose = verbose
        self.quiet = quiet
        self.context = context
        self._config: Config | None = None
        self._engine: Engine | None = None
        self._engine_settings: tuple[str | None, tuple[str, ...]] | None = None
        self._cli_source = "[docker] cli"

    def config(self) -> Config:
        if self._config is None:
            from mux import config

            self._config = config.load(self.config_path)
        return self._config

    def engine(self) -> Engine:
        """The engine of this command (mux/engine/choice.py); the config is read only
        when neither --context nor the environment decides."""
        if self._engine is None:
            from mux.engine import choice as engine

            if self.cli_name() != "docker":
                configured = self.engine_settings()[0] if not self.context else None
                self._engine = engine.podman(self._cli_source, self.context, configured)
                return self._engine
            configured = None
            if not (self.context or engine.decided_by_env(os.environ)):
                configured = self.engine_settings()[0]
            self._engine = engine.resolve(self.context, configured)
        return self._engine

    def cli_name(self) -> str:
        """docker or podman: $MUX_DOCKER_CLI, then `[docker] cli` (mux/engine/clis.py)."""
        from mux.engine import clis as engine_cli

        if os.environ.get(engine_cli.ENV):
            self._cli_source = f"${engine_cli.ENV}"
            engine_cli.ACTIVE = engine_cli.choose(None)
            return engine_cli.ACTIVE
        if self._config is not None:
            configured = self._config.docker.cli
        else:
            from mux.configfile import cli_setting
            from mux.engine import choice as engine

            try:
                configured = cli_setting(self.config_path)
            except ConfigError:
                if not engine.decided_by_env(os.environ):
                    raise
                configured = None  # DOCKER_HOST names a docker engine: an unreadable config is no obstacle
        self._cli_source = "[docker] cli"
        engine_cli.ACTIVE = engine_cli.choose(configured, {})
        return engine_cli.ACTIVE

    def engine_settings(self) -> tuple[str | None, tuple[str, ...]]:
        """[docker] context and contexts (the rest of the config need not be valid)."""
        if self._config is not None:
            return self._config.docker.context, self._config.docker.contexts
        if self._engine_settings is None:  # read once: `mux list` asks for both
            from mux.configfile import engine_settings

            self._engine_settings = engine_settings(self.config_path)
        return self._engine_settings

    def engines(self) -> list[Engine]:
        """The engines `mux list` asks: [docker] contexts, unless --context or the
        environment names one."""
        from mux.engine import choice as engine

        if self.engine().kind != "docker":
            return [self.engine()]  # podman: this machine's, no docker contexts
        contexts = () if self.context or engine.decided_by_env(os.environ) else self.engine_settings()[1]
        return [engine.named(name) for name in contexts] or [self.engine()]

    def runner(self, dry_run: bool = False) -> Runner:
        from mux.engine.runner import Runner

        return Runner(dry_run=dry_run, verbose=self.verbose, engine=self.engine())

    def say(self, message: str) -> None:
        if not self.quiet:
            click.echo(message)


LOG_LEVELS = {"debug": (True, False), "info": (False, False), "warning": (False, True),
              "error": (False, True), "quiet": (False, True)}


ALIASES = {"ls": "list", "rm": "delete"}  # docker's short names
# Every command's module is imported only when it runs: `mux list` pays for
# list's module, not for the twenty options of `new`. `mux --help` lists them from
# the short help here (tests/cli/test_startup_imports.py checks it matches each
# command's own).
SESSION = "mux.commands.session_cmd"
LAZY = {
    "new": ("mux.commands.new_cmd", "new", "Create session NAME and start it in the background."),
    "list": ("mux.commands.list_cmd", "list_",
             "List sessions (one `docker ps` call; state comes from container labels)."),
    "attach": (SESSION, "attach", "Attach your terminal to session NAME, starting it if it is stopped."),
    "start": (SESSION, "start", "Start stopped sessions."),
    "stop": (SESSION, "stop", "Stop sessions (their files and containers stay; `mux start` resumes them)."),
    "delete": (SESSION, "delete", "Delete sessions: their containers and their files under the data dir."),
    "exec": (SESSION, "exec_", "Run COMMAND in running session NAME (default: its shell)."),
    "logs": (SESSION, "logs", "Show the output of session NAME's main process."),
    "cp": (SESSION, "cp", "Copy files between a session and this machine (docker cp's syntax)."),
    "doctor": (SESSION, "doctor", "Check everything a session needs, with a fix for each failure."),
    "diff": ("mux.commands.workspace_cmd", "diff",
             "Show everything session NAME changed since it was made, as one diff."),
    "fetch": ("mux.commands.workspace_cmd", "fetch",
              "Fetch session NAME's branches into a repository here, as mux/NAME/BRANCH."),
    "port": ("mux.commands.port_cmd", "port", "Show how to reach session NAME's ports from this machine."),
    "forward": ("mux.commands.port_cmd", "forward",
                "Forward local ports to ports of running session NAME, until Ctrl-C."),
    "config": ("mux.commands.config_cmd", "config", "Show, create or edit the configuration file."),
    "tui": ("mux.commands.tui_cmd", "tui", "One screen for every session, with keys for the commands."),
    "proxy": ("mux.proxy.cli", "proxy", "Run the credential proxy sessions reach the network through."),
}


class MuxGroup(click.Group):
    """The top-level group: docker's aliases resolve to mux's commands, LAZY ones are
    imported on first use, and the help lists each alias beside its command."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *LAZY})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        name = ALIASES.get(cmd_name, cmd_name)
        if name in LAZY and name not in self.commands:
            import importlib

            module, attr, _ = LAZY[name]
            self.add_command(getattr(importlib.import_module(module), attr), name)
        return super().get_command(ctx, name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.commands.get(name)
            if command is not None and command.hidden:
                continue
            aliases = [a for a, target in ALIASES.items() if target == name]
            shown = f"{name}, {', '.join(aliases)}" if aliases else name
            limit = formatter.width - 6 - len(shown)
            if command is None:  # not loaded: LAZY's words, cut as click cuts them
                short = click.Command(name, help=LAZY[name][2]).get_short_help_str(limit)
            else:
                short = command.get_short_help_str(limit)
            rows.append((shown, short))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=MuxGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", metavar="PATH", type=click.Path(dir_okay=False),
              help="Config file to use (default: $MUX_CONFIG, then "
              "~/.config/mux/config.toml, then /etc/mux/config.toml).")
@click.option("-v", "--verbose", is_flag=True,
              help="Print every command mux runs to stderr, as `+ docker ...`.")
@click.option("-q", "--quiet", is_flag=True, help="Print only results and errors.")
@click.option("--context", metavar="NAME",
              help="Docker context (engine) to use, as `docker --context` (default: "
              "$DOCKER_HOST, $DOCKER_CONTEXT, [docker] context, then docker's current one).")
@click.version_option(__version__, "--version", prog_name="mux", message="%(prog)s %(version)s")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, verbose: bool, quiet: bool,
        context: str | None) -> None:
    """Run AI coding-agent sessions in Docker containers.

    A session is a container named mux-NAME with your project at /workspace,
    your git identity, and the image, limits and volumes from your config.
    Every docker command mux runs can be printed: --dry-run prints instead of
    running, -v prints while running.

    \b
    Quick start:
      mux new my-session            # container for the current directory
      mux attach my-session         # its shell (detach: Ctrl-P Ctrl-Q)
      mux list                      # every session, from docker's labels
      mux delete --force my-session

    \b
    Environment: MUX_CONFIG (config file), MUX_DATA_DIR (default
    ~/.local/share/mux), MUX_LOG_LEVEL (debug = -v, quiet = -q).
    Exit codes: 0 ok, 1 error, 2 configuration or usage, 3 session not
    found, 4 docker failure, 5 proxy.
    """
    level = os.environ.get("MUX_LOG_LEVEL", "").lower()
    env_verbose, env_quiet = LOG_LEVELS.get(level, (False, False))
    ctx.obj = State(config_path=config_path, verbose=verbose or env_verbose,
                    quiet=quiet or (env_quiet and not verbose), context=context)


def report(error: MuxError, verbose: bool) -> None:
    if verbose:
        import traceback

        traceback.print_exception(type(error), error, error.__traceback__, file=sys.stderr)
    from mux.safetext import escape

    message, hint = error.message, error.hint
    chosen = sys.modules.get("mux.engine.clis")  # loaded only when a command chose its CLI
    if chosen is not None and chosen.ACTIVE != "docker":
        message, hint = chosen.own_words(message), hint and chosen.own_words(hint)
    # Messages quote docker's stderr, labels and paths a session wrote: escaped.
    click.echo(f"mux: error: {escape(message)}", err=True)
    if hint:
        click.echo(f"mux: hint: {escape(hint)}", err=True)


def _terminated(signum: int, frame: object) -> None:
    # SIGTERM unwinds like Ctrl-C, so half-made sessions and clones are undone.
    raise KeyboardInterrupt


def _interrupt_lost(unraisable: sys.UnraisableHookArgs) -> None:
    """A Ctrl-C (or SIGTERM) that lands in a callback Python cannot raise from (the
    import lock's, during a lazy import) is not lost with a traceback: it is sent
    again as a signal once this hook has returned (mux.interrupts.redeliver_later),
    so it interrupts where it can, and the undo runs as usual."""
    if isinstance(unraisable.exc_value, KeyboardInterrupt):
        while True:
            try:
                from mux.interrupts import redeliver_later

                redeliver_later()
                return
            except KeyboardInterrupt:  # the re-delivered signal landed in this hook: once more
                continue
    sys.__unraisablehook__(unraisable)


def global_verbose(args: list[str]) -> bool:
    """Whether -v/--verbose comes before the subcommand (after it, `-v` is a
    command's own option, like `mux new -v HOST:CONTAINER`)."""
    takes_value = False
    for arg in args:
        if takes_value:
            takes_value = False
        elif arg in ("-v", "--verbose") or (arg.startswith("-") and not arg.startswith("--") and "v" in arg):
            return True
        elif arg == "--config":
            takes_value = True
        elif not arg.startswith("-") or arg == "--":
            return False  # the subcommand
    return False


def main(argv: list[str] | None = None) -> None:
    signal.signal(signal.SIGTERM, _terminated)
    sys.unraisablehook = _interrupt_lost
    verbose = global_verbose(argv if argv is not None else sys.argv[1:])
    verbose = verbose or os.environ.get("MUX_LOG_LEVEL", "").lower() == "debug"
    chosen = sys.modules.get("mux.engine.clis")
    if chosen is not None:  # a new command (tests run many in one process) chooses again
        setattr(chosen, "ACTIVE", "docker")  # noqa: B010
    try:
        code = cli.main(args=argv, prog_name="mux", standalone_mode=False)
    except MuxError as error:
        report(error, verbose)
        code = error.exit_code
    except click.exceptions.Abort:
        click.echo("mux: aborted", err=True)
        code = 130
    except click.ClickException as error:
        error.show()
        code = error.exit_code
    except KeyboardInterrupt:
        click.echo("mux: interrupted", err=True)
        code = 130
    except BrokenPipeError:
        code = 141
    except OSError as error:  # a host-side failure no command anticipated: still one line
        report(MuxError(f"{error.strerror or error}" + (f": {error.filename}" if error.filename else "")), verbose)
        code = 1
    except Exception as error:  # a bug in mux: one line, the traceback with -v
        if verbose:
            import traceback

            traceback.print_exception(type(error), error, error.__traceback__, file=sys.stderr)
        report(MuxError(f"internal error: {type(error).__name__}: {error}",
                        hint="run again with -v for the traceback, and please report it"), False)
        code = 1
    if argv is None:  # mux's own command line: the process ends here
        # Python's last garbage collections walk every object of every module (~3 ms
        # of each run here, bench/installed.py) to free memory the OS takes back
        # anyway. Frozen objects are skipped; buffers are still flushed and atexit
        # handlers still run. Not when called with argv (tests, in their own process).
        import gc

        gc.freeze()
    sys.exit(code if isinstance(code, int) else 0)
