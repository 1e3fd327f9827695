"""`mux config show|init|edit|path`."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import click

from mux import paths
from mux.commands.parsing import state_of
from mux.configfile import find_config
from mux.errors import ConfigError

if TYPE_CHECKING:
    from pathlib import Path

SECRET_KEYS = {"value", "password", "token", "secret"}


def template_path() -> Path:
    """The commented default config (package data). A function: pathlib stays off
    the start-up path of every command (`mux --version` imports this module)."""
    from pathlib import Path

    return Path(__file__).resolve().parent.parent / "config_template.toml"


def target_path(explicit: str | None) -> Path:
    """The file `init` and `edit` write: --config, $MUX_CONFIG, else the user config."""
    from pathlib import Path


    return Path(paths.config_candidates(explicit)[0][0])


def _hide_secrets(table: Any) -> Any:
    """Credential values are shown only when they are ${VAR} references."""
    if isinstance(table, dict):
        return {k: ("(hidden)" if k in SECRET_KEYS and isinstance(v, str) and not v.startswith("${")
                    else _hide_secrets(v)) for k, v in table.items()}
    return table


def _plain(value: Any) -> Any:
    """Settings as JSON/TOML-ready values: a settings record (a NamedTuple) becomes a table."""
    if isinstance(value, tuple) and hasattr(value, "_asdict"):
        value = value._asdict()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


@click.group()
def config() -> None:
    """Show, create or edit the configuration file."""


@config.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def show(ctx: click.Context, as_json: bool) -> None:
    """Print the effective configuration (file values over built-in defaults)."""
    import json

    from mux.toml_text import dumps  # here: only `config show` writes TOML

    cfg = state_of(ctx).config()
    data = {"docker": _plain(cfg.docker), "git": _plain(cfg.git)}
    if cfg.raw_proxy:
        data["proxy"] = _plain(dict(cfg.raw_proxy))
    if cfg.raw_credentials:
        data["credentials"] = _hide_secrets(_plain(dict(cfg.raw_credentials)))
    if cfg.agents:
        data["agents"] = {name: {k: v for k, v in _plain(a).items() if v not in (None, [])}
                          for name, a in cfg.agents.items()}
    if as_json:
        click.echo(json.dumps({"source": str(cfg.source) if cfg.source else None, **data}, indent=2))
        return
    origin = f"# from {cfg.source}" if cfg.source else "# no config file: built-in defaults"
    click.echo(origin + "\n\n" + dumps(data))


@config.command()
@click.option("--force", is_flag=True, help="Replace an existing file (kept as config.toml.bak).")
@click.option("--agent", "agents", multiple=True, metavar="AGENT",
              help="Also write the [credentials.*] rule `mux new --agent AGENT` needs "
              "(added to an existing file if it lacks one). Repeatable.")
@click.option("--dry-run", is_flag=True, help="Print the equivalent commands and write nothing.")
@click.pass_context
def init(ctx: click.Context, force: bool, agents: tuple[str, ...], dry_run: bool) -> None:
    """Write a commented default config file."""
    state = state_of(ctx)
    path = target_path(state.config_path)
    from mux.engine.runner import Runner  # here: `config path` and `show` start no process

    runner = Runner(dry_run=dry_run, verbose=state.verbose)  # host steps only: no engine needed
    if agents and path.exists() and not force:
        from mux.session.agents import missing_rules  # here: the config parser and agent presets: --agents only

        rules = missing_rules(agents, state.config())
        if not rules:
            state.say(f"{path} already has a credential rule for every agent named")
            return
        _write(path, runner, rules, append=True)
        if not dry_run:
            state.say(f"Added the credential rule(s) to {path}")
        return
    if path.exists() and not force:
        raise ConfigError(f"{path} already exists", hint="use --force to replace it (the old file is kept as .bak)")
    text = None
    if agents:
        from mux.config import Config  # here: the config parser and agent presets: --agents only
        from mux.session.agents import missing_rules

        text = template_path().read_text() + missing_rules(agents, Config())
    backup = _write(path, runner, text)
    if not dry_run:
        state.say(f"Wrote {path}" + (f" (the old one is {backup})" if backup else ""))


def _write(path: Path, runner: Any = None, text: str | None = None, append: bool = False) -> Path | None:
    """Write ``text`` (default: the template) to ``path``, each step shown as the
    command that does the same; a file replaced is kept beside it as ``.bak``.
    Returns the backup."""
    import shutil

    from mux.engine.runner import Runner, host_step, write_argv  # here: `config path` and `show` start no process

    runner = runner or Runner()
    backup = path.with_name(path.name + ".bak") if path.exists() and not append else None
    try:
        host_step(runner, ["mkdir", "-p", path.parent], lambda: path.parent.mkdir(parents=True, exist_ok=True))
        if backup is not None:
            host_step(runner, ["cp", "-p", path, backup], lambda: shutil.copy2(path, backup))
        if text is None:
            template = template_path()
            host_step(runner, ["cp", template, path], lambda: path.write_text(template.read_text()))
        else:
            argv, content = write_argv(path, text, append=append)
            host_step(runner, argv, lambda: _put(path, content, append))
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from None
    return backup


def _put(path: Path, content: str, append: bool) -> None:
    with open(path, "a" if append else "w") as fh:
        fh.write(content)


@config.command()
@click.pass_context
def edit(ctx: click.Context) -> None:
    """Open the config file in $VISUAL or $EDITOR (creating it if missing)."""
    state = state_of(ctx)
    path = target_path(state.config_path)
    if not path.exists():
        _write(path, state.runner())
    import shlex

    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    # $EDITOR may carry arguments ("code --wait"), as git and others allow.
    state.runner().exec([*shlex.split(editor), str(path)])


@config.command()
@click.pass_context
def path(ctx: click.Context) -> None:
    """Print the config file mux reads (or would create)."""
    state = state_of(ctx)
    target = target_path(state.config_path)
    explicit = bool(state.config_path or os.environ.get("MUX_CONFIG"))
    found = str(target) if explicit else find_config(None)
    click.echo(found or str(target))
    if not os.path.exists(found or target) and not state.quiet:
        click.echo("(does not exist; mux uses built-in defaults until `mux config init` writes it)", err=True)
