"""Command-line shapes shared by mux's commands: docker's habits, mux's rules."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import click

from mux.cli import report
from mux.errors import MuxError

if TYPE_CHECKING:
    from mux.cli import State

dry_run_option = click.option(
    "--dry-run", is_flag=True,
    help="Print the exact commands, one per line, shell-quoted, and run nothing.")


def state_of(ctx: click.Context) -> State:
    """The global options (mux.cli.State) from the top-level command."""
    root: State = ctx.find_root().obj
    return root


def _has_positional(command: click.Command, args: list[str]) -> bool:
    """Whether ``args`` (what comes before `--`) hold a positional argument,
    skipping the values of options that take one."""
    takes_value = {opt for p in command.params if isinstance(p, click.Option) and not p.is_flag
                   for opt in p.opts}
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in takes_value:
            skip = True
        elif not (arg.startswith("-") and len(arg) > 1):
            return True
    return False


class NameFirst(click.Command):
    """A command of the shape `mux CMD [OPTIONS] NAME [-- COMMAND...]`: a `--` with
    no NAME before it is a usage error (exit 2), never a session named after the
    program (`mux new -- echo hi` would otherwise make session "echo" run "hi")."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args and not _has_positional(self, args[:args.index("--")]):
            raise click.UsageError(f"give the session NAME before `--`: mux {self.name} NAME -- COMMAND...", ctx)
        return super().parse_args(ctx, args)


def each_name(names: Iterable[str], action: Callable[[str], None], verbose: bool) -> None:
    """Do ``action`` for every name, like `docker stop a b`: a failure is reported
    and the rest still run; the exit code is the first failure's."""
    first: MuxError | None = None
    for name in names:
        try:
            action(name)
        except MuxError as error:
            report(error, verbose)
            first = first or error
    if first is not None:
        raise click.exceptions.Exit(first.exit_code)
