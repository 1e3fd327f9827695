"""Session commands: thin wrappers that parse flags and call the core."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from mux.commands.parsing import NameFirst, each_name
from mux.errors import ConfigError

if TYPE_CHECKING:
    from mux.cli import State

dry_run_option = click.option(
    "--dry-run", is_flag=True,
    help="Print the exact commands, one per line, shell-quoted, and run nothing.")


def _state(ctx: click.Context) -> State:
    return ctx.find_root().obj


def _proxy_for(ctx: click.Context, name: str, dry_run: bool) -> None:
    """A session wired to the proxy gets it running, on the current config (exit 5 if it cannot)."""
    if not dry_run:
        from mux.proxy.session import ensure_proxy_for

        state = _state(ctx)
        ensure_proxy_for(name, state.config, state.runner())  # the config is read only for proxied sessions
        if state.engine().remote:  # and its tunnel, for a session on another machine
            from mux.tunnel import ensure_for_session

            ensure_for_session(state.runner(), name)


@click.command(cls=NameFirst)
@click.option("--backend", type=click.Choice(["docker"]), default="docker", show_default=True,
              help="Where the session runs.")
@click.option("--workdir", type=click.Path(file_okay=False),
              help="Directory mounted at /workspace (default: the current directory).")
@click.option("--image", help="Image to run (default: [docker] image, else ubuntu:22.04).")
@click.option("--env", "-e", "env", multiple=True, metavar="K=V",
              help="Set a variable; a bare NAME passes the host's value. Repeatable.")
@click.option("--volume", "-v", "volumes", multiple=True, metavar="SPEC",
              help="Extra mount HOST:CONTAINER[:ro|rw], added to [docker] volumes. HOST is a "
              "path if it starts with /, ./, ../ or ~ (relative: to the current directory), "
              "else a named volume (docker's rule). Repeatable.")
@click.option("-p", "--publish", "ports", multiple=True, metavar="SPEC",
              help="Publish a container port, docker's syntax ([ADDRESS:][HOST_PORT:]PORT[/udp]); "
              "binds 127.0.0.1 unless ADDRESS says otherwise. Added to [docker] ports. Repeatable.")
@click.option("--network", help="Network mode: bridge, host, none, or a docker network name.")
@click.option("--memory", help='Memory limit, like "4g".')
@click.option("--cpus", help='CPU limit, like "2" or "1.5".')
@click.option("--memory-swap", help='Memory plus swap limit, like "4g" (equal to --memory: no swap).')
@click.option("--pull", type=click.Choice(["missing", "always", "never"]),
              help="When docker may pull the image (default: docker's, missing).")
@click.option("--repo", metavar="URL", help="Clone this git repository and mount the clone.")
@click.option("--branch", help="Branch to check out (created from the default if new).")
@click.option("--copy", is_flag=True,
              help="Copy the working directory into a volume at /workspace instead of mounting it "
              "(how a local directory reaches a remote engine; `mux cp` brings files back).")
@click.option("--proxy/--no-proxy", default=None,
              help="Route the session's network through mux's credential proxy "
              "(default: when the config has a [proxy] table).")
@click.option("--agent", metavar="AGENT",
              help="Run an agent (claude, codex, gemini, or an [agents.NAME] table) as the session's "
              "program; arguments after `--` go to it.")
@click.option("--prompt", metavar="TEXT", help="The agent's first message.")
@click.option("--headless", is_flag=True,
              help="Run the agent's one-shot mode on --prompt: output in `mux logs`, then the session exits.")
@click.option("--egress", type=click.Choice(["open", "proxy-only"]),
              help="proxy-only: the proxy is the session's only way out (mux's internal network); "
              "default: [proxy] egress, else proxy-only with allowlist_only, else open.")
@dry_run_option
@click.argument("name")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def new(ctx: click.Context, backend: str, dry_run: bool, command: tuple[str, ...], **flags: Any) -> None:
    """Create session NAME and start it in the background.

    NAME is 1-63 letters, digits, '_', '.' or '-'. An optional COMMAND after
    `--` runs instead of the configured shell. Flags override the config.
    `-e` and `-v` are docker's short forms of --env and --volume (`mux -v`,
    before the command, is still --verbose).

    \b
    Examples:
      mux new my-session
      mux new -v ~/data:/data:ro -e DEBUG=1 my-session
      mux new --image rust:1.85 --memory 8g my-rust-session
      mux new --dry-run api -- claude --dangerously-skip-permissions
      mux new --agent claude fix-123
      mux new --agent claude --headless --prompt "fix the failing test" fix-124
    """
    from mux.create import NewOptions, create
    from mux.validate import named_volume_notes

    state = _state(ctx)
    from pathlib import Path  # not at module level: every command's start-up imports this module

    for note in named_volume_notes(flags["volumes"], Path.cwd()):
        click.echo(f"mux: note: {note}", err=True)
    opts = NewOptions(
        name=flags["name"], workdir=Path(flags["workdir"]) if flags["workdir"] else None, image=flags["image"],
        env=flags["env"], volumes=flags["volumes"], network=flags["network"],
        memory=flags["memory"], cpus=flags["cpus"], memory_swap=flags["memory_swap"],
        pull=flags["pull"], command=command, repo=flags["repo"], branch=flags["branch"],
        proxy=flags["proxy"], ports=flags["ports"], copy=flags["copy"], egress=flags["egress"],
        agent=flags["agent"], prompt=flags["prompt"], headless=flags["headless"],
    )
    spec = create(state.runner(dry_run), state.config(), opts,
                  progress=sys.stderr.isatty() and not state.quiet)
    if not dry_run:
        state.say(f"Created session {spec.name} (container {spec.container}).")
        state.say(f"Attach with: mux attach {spec.name}")


@click.command("list")
@click.option("--json", "as_json", is_flag=True, help="An array of objects, for scripts.")
@click.option("--running", is_flag=True, help="Only running sessions.")
@click.option("--stopped", is_flag=True, help="Only stopped sessions.")
@click.pass_context
def list_(ctx: click.Context, as_json: bool, running: bool, stopped: bool) -> None:
    """List sessions (one `docker ps` call; state comes from container labels)."""
    import json

    from mux.listing import gather
    from mux.sessions import leftovers
    from mux.table import created_local, render

    if running and stopped:
        raise ConfigError("--running and --stopped exclude each other; give at most one")
    state = _state(ctx)
    engines = state.engines()
    pairs, foreign, warnings = gather(engines, verbose=state.verbose)
    for warning in warnings:
        click.echo(f"mux: warning: {warning}", err=True)
    context = {id(s): name for name, s in pairs}
    sessions = [s for _, s in pairs]
    sessions += leftovers(sessions)
    if running:
        sessions = [s for s in sessions if s.running]
    if stopped:
        sessions = [s for s in sessions if not s.running and s.status != "missing"]
    # Containers whose mux.session label is no session name: shown, never acted on.
    foreign = [] if running or stopped else foreign
    # A working directory (or repo clone) deleted behind mux's back is shown, not hidden.
    from pathlib import Path

    present = {s.name: not s.workdir or s.workdir.startswith("volume:") or Path(s.workdir).exists()
               for s in sessions}
    if as_json:
        data = [{**s.public(), "workdir_exists": present[s.name], "context": context.get(id(s), "")}
                for s in sessions]
        data += [{**f.public(), "workdir_exists": False, "context": name} for name, f in foreign]
        click.echo(json.dumps(data, indent=2))
        return
    if not sessions and not foreign:
        click.echo("No sessions. Create one with: mux new NAME", err=True)
        return
    with_repo = any(s.repo for s in sessions)
    with_agent = any(s.agent for s in sessions)
    with_egress = any(s.egress not in ("", "open") for s in sessions)  # shown when not all are open
    several = len(engines) > 1
    headers = (["NAME"] + (["CONTEXT"] if several else []) + ["BACKEND", "STATUS", "EXIT", "CREATED"]
               + (["AGENT"] if with_agent else []) + ["WORKING DIRECTORY"] + (["REPO"] if with_repo else []))
    rows = [[s.name] + ([context.get(id(s), "")] if several else [])
            + [s.backend, s.status + ("" if present[s.name] else " (workdir missing)"),
               "" if s.exit_code is None else str(s.exit_code), created_local(s.created)]
            + ([s.agent or "-"] if with_agent else []) + [s.workdir]
            + ([s.repo] if with_repo else []) for s in sessions]
    if with_egress:
        at = headers.index("CREATED")
        headers.insert(at, "EGRESS")
        for row, s in zip(rows, sessions):
            row.insert(at, s.egress or "-")  # "-": not through the proxy
    # Containers whose mux.session label is no NAME: a row each, the label shown quoted.
    rows += [[json.dumps(f.label)] + ([name] if several else []) + ["", f"foreign (container {f.container})"]
             + [""] * (len(headers) - 3 - several) for name, f in foreign]
    click.echo(render(headers, rows, paint=_status_painter()))


def _status_painter() -> Any:
    """Colours for the STATUS column, on a terminal only (see mux.colour)."""
    from mux import colour

    on = colour.enabled()
    if not on:
        return None
    return lambda header, cell: colour.paint(cell, colour.status_meaning(cell.strip()), on) \
        if header == "STATUS" else cell


@click.command()
@dry_run_option
@click.argument("name")
@click.pass_context
def attach(ctx: click.Context, dry_run: bool, name: str) -> None:
    """Attach your terminal to session NAME, starting it if it is stopped.

    Detach with Ctrl-P Ctrl-Q; the session keeps running. Exiting its shell
    stops the session (`mux attach` starts it again).
    """
    from mux import lifecycle

    state = _state(ctx)
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
    from mux import lifecycle

    state = _state(ctx)
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
              help="Delete even if running (and, for repo sessions, with unsaved work).")
@click.option("--all", "all_", is_flag=True, help="Delete every session (only the safe ones without --force).")
@dry_run_option
@click.argument("names", metavar="[NAME...]", nargs=-1)
@click.pass_context
def delete(ctx: click.Context, force: bool, all_: bool, dry_run: bool, names: tuple[str, ...]) -> None:
    """Delete sessions: their containers and their files under the data dir."""
    from mux import lifecycle

    if bool(names) == all_:
        raise ConfigError("give a session NAME or --all (not both); several NAMEs are fine")
    state = _state(ctx)
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
    from mux import lifecycle

    if command[:1] == ("--",):
        command = command[1:]
    state = _state(ctx)
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
    from mux import lifecycle

    ctx.exit(lifecycle.logs(_state(ctx).runner(), name, follow=follow))


@click.command("cp")
@dry_run_option
@click.argument("source")
@click.argument("dest")
@click.pass_context
def cp(ctx: click.Context, dry_run: bool, source: str, dest: str) -> None:
    """Copy files between a session and this machine (docker cp's syntax).

    NAME:PATH is PATH in session NAME, relative to /workspace unless absolute;
    the other side is a path here. Works wherever the session's engine is.

    \b
    Examples:
      mux cp my-session:results ./results
      mux --context box cp ./data.csv my-session:input/
    """
    from mux.cp import copy

    copy(_state(ctx).runner(dry_run), source, dest)


COMMANDS = [new, list_, attach, start, stop, delete, exec_, logs, cp]


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable results.")
@click.option("--context", metavar="NAME", help="Check this docker context's engine (as `mux --context`).")
@click.pass_context
def doctor(ctx: click.Context, as_json: bool, context: str | None) -> None:
    """Check everything a session needs, with a fix for each failure.

    Docker CLI and engine (local or remote), socket permissions, conflicting
    or leftover mux- containers, the config and its image on the engine, the
    data dir, and (when configured) the proxy, the ssh tunnel to a remote
    engine, one short-lived container reaching the proxy from the engine, and
    sccache. Exits 0 only when every check passes.
    """
    from mux.doctor import render, run_checks

    state = _state(ctx)
    if context:
        state.context = context
    checks = run_checks(state)
    click.echo(render(checks, as_json))
    if not all(c.ok for c in checks):
        ctx.exit(1)


COMMANDS.append(doctor)
