"""`mux port` and `mux forward`: reach what a session serves (mux/session/ports.py, mux/session/forward.py)."""

from __future__ import annotations

import click

from mux.commands.parsing import dry_run_option, state_of
from mux.session import ports as P
from mux.session.sessions import find
from mux.table import render


@click.command()
@click.option("--json", "as_json", is_flag=True, help="An array of objects, for scripts.")
@click.argument("name")
@click.pass_context
def port(ctx: click.Context, as_json: bool, name: str) -> None:
    """Show how to reach session NAME's ports from this machine.

    Published ports (`mux new -p`) come from docker; forwards are the
    `mux forward` processes running on this machine.
    """
    import json


    runner = state_of(ctx).runner()
    session = find(runner, name)
    found = P.published(runner, session.id) + P.active_forwards(name, session.id)
    if as_json:
        click.echo(json.dumps([p.public() for p in found], indent=2))
        return
    if not found:
        click.echo(f"Session {name} has no published or forwarded ports. "
                   f"Reach one with: mux forward {name} PORT", err=True)
        return
    rows = [[f"{p.container_port}/{p.protocol}", P.host_address(p),
             "published" if p.kind == "published" else f"mux forward (pid {p.pid})"] for p in found]
    click.echo(render(["CONTAINER PORT", "HOST ADDRESS", "VIA"], rows))


@click.command()
@click.option("--address", default="127.0.0.1", show_default=True,
              help="Local address to listen on (0.0.0.0: every interface, with a warning).")
@dry_run_option
@click.argument("name")
@click.argument("ports", nargs=-1, required=True, metavar="[LOCAL:]REMOTE...")
@click.pass_context
def forward(ctx: click.Context, address: str, dry_run: bool, name: str, ports: tuple[str, ...]) -> None:
    """Forward local ports to ports of running session NAME, until Ctrl-C.

    Reaches servers that listen only on the session's own 127.0.0.1, in any
    image, without recreating the session. Every connection travels, as
    frames, through one `docker exec` of a small helper that mux copies into
    the container: a connection costs a frame, not a process.

    \b
    Examples:
      mux forward app 5173          # 127.0.0.1:5173 -> port 5173 in app
      mux forward app 8080:80 :9229 # and a free local port -> 9229
    """
    from mux.session.forward import forward as run_forward  # here: sockets and threads: `mux port` does without

    state = state_of(ctx)
    run_forward(state.runner(dry_run), name, list(ports), address=address, say=state.say)
