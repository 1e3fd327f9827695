"""`mux diff` and `mux fetch`: the way back from a session, as data (mux/workspace)."""

from __future__ import annotations

from pathlib import Path

import click

from mux.commands.parsing import dry_run_option, state_of


@click.command()
@click.option("--stat", is_flag=True, help="A diffstat instead of the whole diff.")
@click.argument("name")
@click.argument("paths", metavar="[-- PATH...]", nargs=-1)
@click.pass_context
def diff(ctx: click.Context, stat: bool, name: str, paths: tuple[str, ...]) -> None:
    """Show everything session NAME changed since it was made, as one diff.

    Commits since the commit it started from, staged and unstaged changes and
    untracked files, read by git in a throwaway container on the session's engine
    (never by git here). Through a pager on a terminal; control characters are
    shown escaped. PATHs (relative to /workspace) narrow it.

    \b
    Examples:
      mux diff my-session
      mux diff --stat my-session -- src/
    """
    from mux.workspace.diff import diff as show_diff  # here: diff loads the git box

    show_diff(state_of(ctx).runner(), name, stat=stat, paths=paths)


@click.command()
@click.option("--into", type=click.Path(file_okay=False, path_type=Path), metavar="REPO",
              help="The repository to fetch into (default: the session's local --repo source, "
              "else the repository in the current directory).")
@dry_run_option
@click.argument("name")
@click.pass_context
def fetch(ctx: click.Context, into: Path | None, dry_run: bool, name: str) -> None:
    """Fetch session NAME's branches into a repository here, as mux/NAME/BRANCH.

    The branches come as a git bundle made in a throwaway container on the
    session's engine; git here fetches from that file with every object checked,
    into refs/remotes/mux/NAME/* only: your branches, HEAD, index, work tree,
    config and hooks are not touched. Then `git log mux/NAME/main`, `git merge
    mux/NAME/main`.
    """
    from mux.workspace.fetch import fetch as fetch_branches  # here: fetch loads the clone code

    state = state_of(ctx)
    fetch_branches(state.runner(dry_run), name, into=into, quiet=state.quiet)
