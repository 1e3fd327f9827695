"""`mux new`: its flags, read into mux.session.create's NewOptions."""

from __future__ import annotations

import sys
from typing import Any

import click

from mux.commands.parsing import NameFirst, dry_run_option, state_of
from mux.engine.clis import CLIS


@click.command(cls=NameFirst)
@click.option("--backend", type=click.Choice(CLIS),
              help="The container CLI the session runs on, docker or podman: checked against this command's "
              "engine ([docker] cli, $MUX_DOCKER_CLI), which it must be (default: that engine's).")
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
@click.option("--unprotected", is_flag=True,
              help="Workdir sessions: let the agent write the user's .git, .envrc, .vscode/ and the other "
              "paths mux protects (default: a git directory of the session's own, those paths read-only).")
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
def new(ctx: click.Context, backend: str | None, dry_run: bool, command: tuple[str, ...], **flags: Any) -> None:
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
    from pathlib import Path

    from mux.session.create import NewOptions, create
    from mux.validate import named_volume_notes

    state = state_of(ctx)
    for note in named_volume_notes(flags["volumes"], Path.cwd()):
        click.echo(f"mux: note: {note}", err=True)
    opts = NewOptions(
        name=flags["name"], workdir=Path(flags["workdir"]) if flags["workdir"] else None, image=flags["image"],
        env=flags["env"], volumes=flags["volumes"], network=flags["network"],
        memory=flags["memory"], cpus=flags["cpus"], memory_swap=flags["memory_swap"],
        pull=flags["pull"], command=command, repo=flags["repo"], branch=flags["branch"],
        proxy=flags["proxy"], ports=flags["ports"], copy=flags["copy"], egress=flags["egress"],
        agent=flags["agent"], prompt=flags["prompt"], headless=flags["headless"],
        unprotected=flags["unprotected"],
    )
    runner = state.runner(dry_run)
    if backend is not None and backend != runner.engine.kind:
        from mux.errors import ConfigError

        raise ConfigError(f"--backend {backend}: this command's engine is {runner.engine.kind} "
                          f"({runner.engine.describe()})",
                          hint=f"choose {backend} with `[docker] cli = \"{backend}\"` or MUX_DOCKER_CLI={backend}")
    spec = create(runner, state.config(), opts,
                  progress=sys.stderr.isatty() and not state.quiet)
    if not dry_run:
        state.say(f"Created session {spec.name} (container {spec.container}).")
        state.say(f"Attach with: mux attach {spec.name}")
