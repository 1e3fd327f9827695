"""`mux list`: every session, from one `docker ps` per engine.

The command every user runs most: it imports only what it uses (no pathlib, no
config parser); tests/cli/test_startup_imports.py holds it to that.
"""

from __future__ import annotations

import os
from typing import Any

import click

from mux.commands.parsing import state_of
from mux.errors import ConfigError, MuxError
from mux.safetext import escape
from mux.session.listing import gather
from mux.session.sessions import leftovers
from mux.table import created_local, render


@click.command("list")
@click.option("--json", "as_json", is_flag=True, help="An array of objects, for scripts.")
@click.option("--running", is_flag=True, help="Only running sessions.")
@click.option("--stopped", is_flag=True, help="Only stopped sessions.")
@click.pass_context
def list_(ctx: click.Context, as_json: bool, running: bool, stopped: bool) -> None:
    """List sessions (one `docker ps` call; state comes from container labels)."""
    import json


    if running and stopped:
        raise ConfigError("--running and --stopped exclude each other; give at most one")
    state = state_of(ctx)
    engines = state.engines()
    pairs, foreign, warnings = gather(engines, verbose=state.verbose)

    for warning in warnings:  # quotes docker's error: escaped
        click.echo(f"mux: warning: {escape(warning)}", err=True)
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
    present = {s.name: not s.workdir or s.workdir.startswith("volume:") or os.path.exists(s.workdir)
               for s in sessions}
    if as_json:
        pushes = _push_prefixes(state)
        data = [{**s.public(), "workdir_exists": present[s.name], "context": context.get(id(s), ""),
                 "push_prefix": pushes(s.name) if s.egress else {}} for s in sessions]
        data += [{**f.public(), "workdir_exists": False, "context": name, "push_prefix": {}} for name, f in foreign]
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


def _push_prefixes(state: Any) -> Any:
    """Session name -> {credential rule: the refs it may push there} (mux.proxy.gitpush);
    {} for each when the config cannot be read: listing never fails on it."""
    from mux.proxy.settings import push_prefixes  # here: plain `mux list` does without the proxy's settings

    try:
        config = state.config()
        push_prefixes(config.raw_credentials, "x", str(config.source))
    except MuxError:
        return lambda name: {}
    return lambda name: push_prefixes(config.raw_credentials, name, str(config.source))


def _status_painter() -> Any:
    """Colours for the STATUS column, on a terminal only (see mux.colour)."""
    from mux import colour  # here: only a terminal gets colours

    on = colour.enabled()
    if not on:
        return None
    return lambda header, cell: colour.paint(cell, colour.status_meaning(cell.strip()), on) \
        if header == "STATUS" else cell
