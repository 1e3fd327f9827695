"""Session commands: thin wrappers that parse flags and call the core (`new` and
`list` have modules of their own)."""

from __future__ import annotations

import sys

import click

from mux.commands.parsing import NameFirst, dry_run_option, each_name, state_of
from mux.errors import ConfigError


def _proxy_for(ctx: click.Context, name: str, dry_run: bool) -> None:
    """The session's proxy, relay and tunnel up first (mux.session.lifecycle.ready)."""
    from mux.session import lifecycle

    state = state_of(ctx)
    lifecycle.ready(state.runner(dry_run), state.config, name)


@click.command()
@dry_run_option
@click.argument("name")
@click.pass_context
def attach(ctx: click.Context, dry_run: bool, name: str) -> None:
    """Attach your terminal to session NAME, starting it if it is stopped.

    Detach with Ctrl-P Ctrl-Q; the session keeps running. Exiting its shell
    stops the session (`mux attach` starts it again).
    """
    from mux.session import lifecycle

    state = state_of(ctx)
    _proxy_for(ctx, name, dry_run)
    ctx.exit(lifecycle.attach(state.runner(dry_run), name, quiet=state.quiet))


@click.command()
@dry_run_option
@click.argument("names", metavar="NAME...", nargs=-1, required=True)
@click.pass_context
def start(ctx: click.Context, dry_run: bool, names: tuple[str, ...]) -> None:
    """Start stopped sessions."""
    _simple(ctx, "start", names, dry_run)


@click.command()
@dry_run_option
@click.argument("names", metavar="NAME...", nargs=-1, required=True)
@click.pass_context
def stop(ctx: click.Context, dry_run: bool, names: tuple[str, ...]) -> None:
    """Stop sessions (their files and containers stay; `mux start` resumes them).

    An idle session stops at once; a busy one gets [docker] stop_timeout
    seconds (default 10) to finish before it is killed.
    """
    _simple(ctx, "stop", names, dry_run)


def _simple(ctx: click.Context, verb: str, names: tuple[str, ...], dry_run: bool) -> None:
    """`docker start|stop` per name, each reported; failures do not stop the rest."""
    from mux.session import lifecycle

    state = state_of(ctx)
    runner = state.runner(dry_run)

    def one(name: str) -> None:
        if verb == "start":
            _proxy_for(ctx, name, dry_run)
        lifecycle.simple(runner, verb, name)
        if not dry_run:
            state.say(f"{'Started' if verb == 'start' else 'Stopped'} session {name}.")

    each_name(names, one, state.verbose)


@click.command()
@click.option("-f", "--force", is_flag=True,
              help="Delete even if running or with unsaved work (a clone's changes, a workdir session's own commits).")
@click.option("--all", "all_", is_flag=True, help="Delete every session (only the safe ones without --force).")
@dry_run_option
@click.argument("names", metavar="[NAME...]", nargs=-1)
@click.pass_context
def delete(ctx: click.Context, force: bool, all_: bool, dry_run: bool, names: tuple[str, ...]) -> None:
    """Delete sessions: their containers and their files under the data dir."""
    from mux.session import lifecycle

    if bool(names) == all_:
        raise ConfigError("give a session NAME or --all (not both); several NAMEs are fine")
    state = state_of(ctx)
    runner = state.runner(dry_run)
    if all_:
        lifecycle.delete(runner, None, force=force, quiet=state.quiet)
        return
    each_name(names, lambda name: lifecycle.delete(runner, name, force=force, quiet=state.quiet),
              state.verbose)


# Like `docker exec`, options come before NAME; everything after it is the command.
@click.command("exec", cls=NameFirst, context_settings={"allow_interspersed_args": False})
@dry_run_option
@click.option("-i", "--interactive", is_flag=True, help="Accepted for docker's habit: stdin is always kept open.")
@click.option("-t", "--tty", is_flag=True,
              help="Accepted for docker's habit: mux gives a TTY exactly when yours is one.")
@click.argument("name")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def exec_(ctx: click.Context, dry_run: bool, interactive: bool, tty: bool, name: str,
          command: tuple[str, ...]) -> None:
    """Run COMMAND in running session NAME (default: its shell).

    \b
    Examples:
      mux exec my-session -- git status
      mux exec -it my-session bash
    """
    from mux.session import lifecycle

    if command[:1] == ("--",):
        command = command[1:]
    state = state_of(ctx)
    shell = state.config().docker.shell if not command else ""
    _proxy_for(ctx, name, dry_run)
    ctx.exit(lifecycle.exec_in(state.runner(dry_run), name, command, shell=shell,
                               tty=sys.stdin.isatty() and sys.stdout.isatty()))


@click.command()
@click.option("-f", "--follow", is_flag=True, help="Keep printing new output.")
@click.argument("name")
@click.pass_context
def logs(ctx: click.Context, follow: bool, name: str) -> None:
    """Show the output of session NAME's main process."""
    from mux.session import lifecycle

    ctx.exit(lifecycle.logs(state_of(ctx).runner(), name, follow=follow))


@click.command("cp")
@dry_run_option
@click.argument("source")
@click.argument("dest")
@click.pass_context
def cp(ctx: click.Context, dry_run: bool, source: str, dest: str) -> None:
    """Copy files between a session and this machine (docker cp's syntax).

    NAME:PATH is PATH in session NAME, relative to /workspace unless absolute;
    the other side is a path here. Works wherever the session's engine is.
    Only data crosses: links out of the copy, device nodes and fifos are left
    out, setuid/setgid bits cleared (one line says so); [docker] cp_limit
    bounds the size.

    \b
    Examples:
      mux cp my-session:results ./results
      mux --context box cp ./data.csv my-session:input/
    """
    from mux.session.cp import copy

    state = state_of(ctx)
    copy(state.runner(dry_run), source, dest, limit=state.config().docker.cp_limit)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable results.")
@click.option("--context", metavar="NAME", help="Check this docker context's engine (as `mux --context`).")
@click.pass_context
def doctor(ctx: click.Context, as_json: bool, context: str | None) -> None:
    """Check everything a session needs, with a fix for each failure.

    Docker CLI and engine (local or remote), socket permissions, conflicting
    or leftover mux- containers, the config and its image on the engine, the
    data dir, and (when configured) the proxy, the ssh tunnel to a remote
    engine, one short-lived container reaching the proxy from the engine, the
    egress relay of running proxy-only sessions, and sccache. Exits 0 only
    when every check passes.
    """
    from mux.doctor import render, run_checks

    state = state_of(ctx)
    if context:
        state.context = context
    checks = run_checks(state)
    click.echo(render(checks, as_json))
    if not all(c.ok for c in checks):
        ctx.exit(1)

