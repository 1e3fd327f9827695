"""``mux proxy``: start, stop, status, regenerate-ca. Thin: parse, call ``control``, print.

Settings come from the same config file, read by the same code, as the rest of
mux (``mux.config``: ``--config``, ``$MUX_CONFIG``, then the usual places). The
proxy process reads ``[credentials.*]`` itself so secrets never pass through
this process's output.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import click

from mux.errors import ConfigError, ProxyError
from mux.proxy import control
from mux.proxy.settings import ProxySettings, check_bind_address, default_settings


def load_settings(ctx: click.Context) -> tuple[ProxySettings, Path | None]:
    state = ctx.find_root().obj
    if state is not None:
        config: Any = state.config()
    else:  # the group invoked on its own (tests)
        from mux import config as config_module

        config = config_module.load()
    return config.proxy or default_settings(), config.source


@click.group(name="proxy")
def proxy() -> None:
    """Run the credential proxy sessions reach the network through."""


@proxy.command()
@click.option("--port", type=click.IntRange(1, 65535),
              help="Port to listen on (default: [proxy] port, 8080).")
@click.option("--bind", "binds", metavar="ADDR", multiple=True,
              help="Address to listen on, repeatable (default: 127.0.0.1 and the Docker bridge gateway).")
@click.option("-f", "--foreground", is_flag=True, help="Run in this terminal instead of in the background.")
@click.pass_context
def start(ctx: click.Context, port: int | None, binds: tuple[str, ...], foreground: bool) -> None:
    """Start the proxy (in the background; returns once it accepts connections)."""
    settings, config_path = load_settings(ctx)
    for addr in binds:
        check_bind_address(addr, lambda v: _bad_bind(v))
    settings = dataclasses.replace(
        settings, port=port or settings.port, bind=tuple(binds) or settings.bind
    )
    already = control.status().running
    st = control.start(settings, config_path=config_path, foreground=foreground)
    verb = "already running" if already else "started"
    click.echo(f"mux proxy {verb}: pid {st.pid}, listening on {_where(st)}")
    click.echo(f"CA certificate: {st.ca}")


def _bad_bind(value: object) -> None:
    raise ConfigError(f"--bind {value!r}: use one specific IP address such as 127.0.0.1, never 0.0.0.0")


@proxy.command()
def stop() -> None:
    """Stop the proxy (also cleans up after one that crashed)."""
    if control.stop():
        click.echo("mux proxy stopped")
    else:
        click.echo("mux proxy was not running")


@proxy.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
def status(as_json: bool) -> None:
    """Whether the proxy runs (exit 0) or not (exit 5), where, and its CA."""
    st = control.status()
    if as_json:
        click.echo(json.dumps(st.to_json(), indent=2))
    elif st.running:
        click.echo(f"running: pid {st.pid}, listening on {_where(st)}")
        click.echo(f"CA certificate: {st.ca}")
        click.echo(f"audit log: {st.audit_log}")
        click.echo(f"sessions seen: {', '.join(st.sessions) or '(none yet)'}")
    else:
        click.echo("not running (`mux proxy start` starts it)")
    if not st.running:
        raise SystemExit(ProxyError.exit_code)


@proxy.command(name="regenerate-ca")
@click.option("--force", is_flag=True, help="Also when the proxy runs: replace the CA and restart it.")
def regenerate_ca(force: bool) -> None:
    """Make a new CA (sessions must restart programs that loaded the old one)."""
    restarted = control.regenerate_ca(force=force)
    click.echo(f"new CA certificate: {control.status().ca}")
    if restarted:
        click.echo("the proxy was restarted with it")


def _where(st: control.ProxyStatus) -> str:
    return ", ".join(f"{a}:{st.port}" for a in st.addresses)
