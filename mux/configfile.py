"""The config file: which one, its TOML, typed reading of a table, and the one
setting every command needs (which docker engine), without the rest of mux.config.

`mux list` and the other commands that only need to know which engine to ask
read `[docker] context`/`contexts` through ``engine_settings``; everything else
goes through mux.config.load, which uses the same finder, reader and Table.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

from mux import paths
from mux.errors import ConfigError

MAX_CONFIG_BYTES = 1024 * 1024


def _tomllib() -> Any:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    return tomllib


def loads(text: str) -> dict[str, Any]:
    """TOML text as data: the one TOML parser mux uses (tomli on Python 3.10)."""
    data: dict[str, Any] = _tomllib().loads(text)
    return data


class Table:
    """One TOML table being read: typed getters, then ``finish`` rejects leftovers."""

    def __init__(self, data: object, name: str, source: str, env: Mapping[str, str]) -> None:
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: [{name}] must be a table, got {data!r}")
        self.data = dict(data)
        self.name = name
        self.source = source
        self.env = env

    def where(self, key: str) -> str:
        return f"{self.source}: [{self.name}] {key}" if self.name else f"{self.source}: {key}"

    def _expand(self, value: str, key: str) -> str:
        from mux.expand import expand  # here: `mux list` reads no table, most of the time

        return expand(value, self.env, self.where(key))

    def _take(self, key: str, kinds: tuple[type, ...], label: str) -> Any:
        value = self.data.pop(key)
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            raise ConfigError(f"{self.where(key)}: expected {label}, got {value!r}")
        return value

    def string(self, key: str, default: Any = None) -> Any:
        if key not in self.data:
            return default
        return self._expand(self._take(key, (str,), "a string"), key)

    def scalar(self, key: str, default: Any = None) -> Any:
        """A string or a number (sizes and CPU counts may be written either way)."""
        if key not in self.data:
            return default
        value = self._take(key, (str, int, float), "a string or a number")
        return self._expand(value, key) if isinstance(value, str) else value

    def boolean(self, key: str, default: bool) -> bool:
        if key not in self.data:
            return default
        return bool(self._take(key, (bool,), "true or false"))

    def integer(self, key: str, default: int, minimum: int = 0) -> int:
        if key not in self.data:
            return default
        value = self._take(key, (int,), "a whole number")
        if value < minimum:
            raise ConfigError(f"{self.where(key)}: must be at least {minimum}, got {value}")
        return int(value)

    def strings(self, key: str) -> tuple[str, ...]:
        if key not in self.data:
            return ()
        value = self._take(key, (list,), "a list of strings")
        bad = [v for v in value if not isinstance(v, str)]
        if bad:
            raise ConfigError(f"{self.where(key)}: expected a list of strings, got item {bad[0]!r}")
        return tuple(self._expand(v, key) for v in value)

    def path(self, key: str, default: Any = None) -> Any:
        value = self.string(key)
        if value is None:
            return default
        from pathlib import Path  # only mux.config reads paths: `mux list` does without pathlib

        return Path(value).expanduser()

    def table(self, key: str) -> Table:
        name = f"{self.name}.{key}" if self.name else key
        return Table(self.data.pop(key, {}), name, self.source, self.env)

    def raw(self, key: str) -> Any:
        return self.data.pop(key, None)

    def finish(self, allowed: str) -> None:
        if self.data:
            key = sorted(self.data)[0]
            raise ConfigError(f"{self.where(key)}: unknown key {key!r} (allowed: {allowed})")


def find_config(explicit: str | os.PathLike[str] | None = None) -> str | None:
    for candidate, origin in paths.config_candidates(explicit):
        if origin in ("--config", "$MUX_CONFIG") or os.path.exists(candidate):
            if not os.path.exists(candidate):
                raise ConfigError(f"config file {candidate!r} (from {origin}) does not exist")
            return candidate
    return None


def read_toml(path: str | os.PathLike[str], text: str | None = None) -> dict[str, Any]:
    """The config file's data (``text``: its text, when already read)."""
    text = read_text(path) if text is None else text
    tomllib = _tomllib()
    try:
        return loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def read_text(path: str | os.PathLike[str]) -> str:
    """The config file's text: readable, at most 1 MiB, not empty, UTF-8."""
    where = os.fspath(path)
    if os.path.isdir(path):
        raise ConfigError(f"{where}: is a directory, not a config file")
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read the config file: {exc.strerror}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{where}: config file is larger than 1 MiB; is it the right file?")
    if not data.strip():
        raise ConfigError(
            f"{where}: config file is empty",
            hint="delete it to use the defaults, or `mux config init --force` for a commented one",
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: not UTF-8 text; a config file is TOML") from None


def engine_settings(explicit: str | os.PathLike[str] | None = None,
                    env: Mapping[str, str] | None = None) -> tuple[str | None, tuple[str, ...]]:
    """Only `[docker] context` and `contexts`, for commands that need nothing else
    from the config: choosing the engine must not fail on a setting that command
    never uses (an env entry naming a variable this shell lacks, say)."""
    path = find_config(explicit)
    if path is None:
        return None, ()
    text = read_text(path)
    # Without the word, and without an escape to spell it ("\\u0063ontext"), no key
    # can be context(s): skip the TOML parser, ~2.5 ms of every `mux list`.
    if "context" not in text and "\\" not in text:
        return None, ()
    docker = read_toml(path, text).get("docker")
    if not isinstance(docker, dict):
        return None, ()
    wanted = {k: docker[k] for k in ("context", "contexts") if k in docker}
    table = Table(wanted, "docker", path, os.environ if env is None else env)
    context, contexts = table.string("context"), table.strings("contexts")
    from mux.engine.choice import context_name  # here: breaks the map (test_layers.py)

    for name, key in [(context, "context"), *((n, "contexts") for n in contexts)]:
        if name is not None:
            context_name(name, table.where(key))
    return context, contexts


def cli_setting(explicit: str | os.PathLike[str] | None = None,
                env: Mapping[str, str] | None = None) -> str | None:
    """Only `[docker] cli` (docker or podman), for the same reason as engine_settings."""
    path = find_config(explicit)
    if path is None:
        return None
    text = read_text(path)
    if "cli" not in text and "\\" not in text:  # no key can be cli: skip the TOML parser
        return None
    docker = read_toml(path, text).get("docker")
    if not isinstance(docker, dict) or "cli" not in docker:
        return None
    table = Table({"cli": docker["cli"]}, "docker", path, os.environ if env is None else env)
    value = table.string("cli")
    if value is not None:
        from mux.engine.clis import check  # here: breaks the map (test_layers.py)

        check(value, table.where("cli"))
    return value
