"""``mux proxy``: start, stop, status, audit, regenerate-ca. Thin: parse, call ``control``, print.

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

from mux import config as config_module
from mux.commands.parsing import dry_run_option
from mux.egress import tunnel
from mux.egress.tunnel import end_all
from mux.engine.runner import Runner
from mux.errors import ConfigError, ProxyError
from mux.proxy import audit as audit_log
from mux.proxy import control, registry
from mux.proxy.files import ProxyFiles
from mux.proxy.settings import ProxySettings, check_bind_address, default_settings, push_prefixes


def load_settings(ctx: click.Context) -> tuple[ProxySettings, Path | None]:
    state = ctx.find_root().obj
    if state is not None:
        config: Any = state.config()
    else:  # the group invoked on its own (tests)
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
@dry_run_option
@click.pass_context
def start(ctx: click.Context, port: int | None, binds: tuple[str, ...], foreground: bool, dry_run: bool) -> None:
    """Start the proxy (in the background; returns once it accepts connections)."""
    settings, config_path = load_settings(ctx)
    for addr in binds:
        check_bind_address(addr, lambda v: _bad_bind(v))
    settings = dataclasses.replace(
        settings, port=port or settings.port, bind=tuple(binds) or settings.bind
    )
    before = control.status()
    if dry_run:  # what start would do: nothing, a restart (stale settings), or a start
        commands = control.ensure_commands(settings, config_path)
        for argv in commands:
            _dry_show(argv)
        if not commands:
            click.echo(f"mux proxy already running: pid {before.pid}; nothing to do", err=True)
        return
    if foreground:
        st = control.start(settings, config_path=config_path, foreground=True)
    else:  # the same as `mux new` does: start it, or restart it if it runs other settings
        st = control.ensure(settings, config_path=config_path, say=lambda m: click.echo(m, err=True))
    verb = "already running" if before.running and before.pid == st.pid else "started"
    click.echo(f"mux proxy {verb}: pid {st.pid}, listening on {_where(st)}")
    click.echo(f"CA certificate: {st.ca}")


def _bad_bind(value: object) -> None:
    raise ConfigError(f"--bind {value!r}: use one specific IP address such as 127.0.0.1, never 0.0.0.0")


def _dry_show(argv: list[str]) -> None:
    import shlex

    click.echo(shlex.join(argv))


def _dry_stop(st: control.ProxyStatus) -> None:
    """What stop does, as the command: SIGTERM to the proxy (SIGKILL after a grace period)."""
    if st.running:
        _dry_show(["kill", "-TERM", str(st.pid)])


@proxy.command()
@dry_run_option
def stop(dry_run: bool) -> None:
    """Stop the proxy (also cleans up after one that crashed), and end the ssh
    tunnels remote engines reach it through."""
    if dry_run:
        st = control.status()
        _dry_stop(st)
        end_all(Runner(dry_run=True))
        if not st.running:
            click.echo("mux proxy is not running; nothing to do", err=True)
        return
    stopped = control.stop()
    end_all(Runner())  # remote engines' tunnels to its port go with it
    click.echo("mux proxy stopped" if stopped else "mux proxy was not running")


@proxy.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Whether the proxy runs (exit 0) or not (exit 5), where, its CA, the sessions
    registered with it, whether it runs the config as it is now (stale), and the ssh
    tunnels remote engines' sessions reach it through."""
    st = control.status()
    settings, config_path = load_settings(ctx)
    stale = control.stale(settings, config_path) if st.running else None
    sessions = registry.names(ProxyFiles.default())
    state = ctx.find_root().obj
    tunnels = tunnel.tunnels(Runner(verbose=bool(state and state.verbose)))
    if as_json:
        if state is not None:
            config: Any = state.config()
        else:  # the group invoked on its own (tests)
            config = config_module.load()
        # Each session's refs per rule: the registry key is INSTANCE+NAME, the prefix is by NAME.
        pushes = {key: push_prefixes(config.raw_credentials, key.rsplit("+", 1)[-1], str(config_path))
                  for key in sessions}
        click.echo(json.dumps({**st.to_json(), "stale": stale, "sessions": sessions, "push_prefix": pushes,
                               "tunnels": [t.to_json() for t in tunnels]}, indent=2))
    elif st.running:
        click.echo(f"running: pid {st.pid}, listening on {_where(st)}")
        click.echo(f"config digest: {st.config_digest}" + (
            " (stale: the config changed since it started; the next mux new/start/attach/exec "
            "restarts it)" if stale else ""))
        click.echo(f"CA certificate: {st.ca}")
        click.echo(f"audit log: {st.audit_log}")
        click.echo(f"sessions: {', '.join(sessions) or '(none registered)'}")
    else:
        click.echo("not running (`mux proxy start` starts it)")
    if not as_json:
        for each in tunnels:
            click.echo(f"tunnel: {each.describe()}")
    if not st.running:
        raise SystemExit(ProxyError.exit_code)


@proxy.command(name="regenerate-ca")
@click.option("--force", is_flag=True, help="Also when the proxy runs: replace the CA and restart it.")
@dry_run_option
def regenerate_ca(force: bool, dry_run: bool) -> None:
    """Make a new CA (sessions must restart programs that loaded the old one)."""
    if dry_run:
        st = control.status()
        if st.running and not force:
            raise ProxyError("the proxy is running with the current CA",
                             hint="`mux proxy regenerate-ca --force` replaces it and restarts the proxy")
        _dry_stop(st)
        click.echo(f"mux: would write a new CA to {st.ca} (made in Python: no command to show)"
                   + ("; then start the proxy again with its settings" if st.running else ""), err=True)
        return
    restarted = control.regenerate_ca(force=force)
    click.echo(f"new CA certificate: {control.status().ca}")
    if restarted:
        click.echo("the proxy was restarted with it")


@proxy.command()
@click.option("--session", metavar="NAME", help="Only this session's requests.")
@click.option("--since", metavar="WHEN", help="Only entries since then: 30m, 2h, 1d, or a time (2026-01-31T14:00).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of the entries.")
def audit(session: str | None, since: str | None, as_json: bool) -> None:
    """What sessions did through the proxy: the audit log, its rotated files included."""
    try:
        after = audit_log.parse_since(since) if since else None
    except ValueError as exc:
        raise ConfigError(f"--since: {exc}") from None
    from mux.egress.wiring import registry_key  # here: the wiring loads the relay: only `proxy audit` needs it

    path = ProxyFiles.default().audit
    # The log names a session as the registry does (INSTANCE+NAME under $MUX_INSTANCE).
    names = {session, registry_key(session)} if session else None
    found = audit_log.select(audit_log.entries(path), session=names, since=after)
    if as_json:
        click.echo(json.dumps(list(found), indent=1))
        return
    for entry in found:
        click.echo(audit_log.line(entry))


def _where(st: control.ProxyStatus) -> str:
    return ", ".join(f"{a}:{p}" for a in st.addresses for p in st.ports)
