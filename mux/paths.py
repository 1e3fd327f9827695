"""Where mux keeps things on the host: config search path and the data dir.

Session files live per instance: ``<data>/sessions/NAME`` for sessions without
an instance, ``<data>/instances/INSTANCE/sessions/NAME`` under $MUX_INSTANCE, so
one instance can never see (or delete) another's files.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

SYSTEM_CONFIG = Path("/etc/mux/config.toml")


def user_config() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "mux" / "config.toml"


def config_candidates(explicit: str | os.PathLike[str] | None = None) -> list[tuple[Path, str]]:
    """The config files mux looks at, first match wins, with where each came from."""
    if explicit:
        return [(Path(explicit).expanduser(), "--config")]
    if os.environ.get("MUX_CONFIG"):
        return [(Path(os.environ["MUX_CONFIG"]).expanduser(), "$MUX_CONFIG")]
    return [(user_config(), "user config"), (SYSTEM_CONFIG, "system config")]


def data_dir() -> Path:
    if os.environ.get("MUX_DATA_DIR"):
        return Path(os.environ["MUX_DATA_DIR"]).expanduser().absolute()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base).expanduser().absolute() / "mux"


def instance(env: Mapping[str, str] | None = None) -> str | None:
    """$MUX_INSTANCE: a separate set of sessions (containers and files) on a shared
    engine (the test suite uses one, so it can never see, or delete, a user's real
    sessions). It becomes a path and a label filter, so it is checked like a NAME."""
    value = (os.environ if env is None else env).get("MUX_INSTANCE") or None
    if value is not None:
        from mux.errors import ConfigError
        from mux.names import SESSION_NAME

        if not SESSION_NAME.fullmatch(value):
            raise ConfigError(f"invalid MUX_INSTANCE {value!r}: use 1-63 letters, digits, '_', '.' "
                              "or '-', starting with a letter or digit")
    return value


def helper_labels(kind: str) -> list[tuple[str, str]]:
    """Labels of a short-lived helper container mux runs (cleanup, git guard, doctor's
    reach check): it says what it is, and carries the instance, so the test suite
    (and doctor) know whose it is."""
    inst = instance()
    return [("mux.helper", kind)] + ([("mux.instance", inst)] if inst else [])


def sessions_root(data: Path | None = None, env: Mapping[str, str] | None = None) -> Path:
    """The directory holding this instance's session directories (and nothing else)."""
    inst = instance(env)
    base = data if data is not None else data_dir()
    return base / "sessions" if inst is None else base / "instances" / inst / "sessions"


def all_sessions_roots(data: Path | None = None) -> list[tuple[str | None, Path]]:
    """(instance, its sessions directory) for every instance with files under the data
    dir, the one without an instance first. Directory names are input: only those
    that are valid instance names (and no symlinks) count."""
    from mux.names import SESSION_NAME

    base = data if data is not None else data_dir()
    roots: list[tuple[str | None, Path]] = [(None, sessions_root(base, {}))]
    instances = base / "instances"
    if instances.is_dir() and not instances.is_symlink():
        roots += [(d.name, sessions_root(base, {"MUX_INSTANCE": d.name})) for d in sorted(instances.iterdir())
                  if SESSION_NAME.fullmatch(d.name) and not d.is_symlink()]
    return roots


def session_dir(name: str, root: Path | None = None) -> Path:
    """Host-side files of one session (its HOME, a repo clone); removed with it.
    ``name`` must be a valid session name: a label read back from docker is input."""
    from mux.names import session_name

    return (root if root is not None else sessions_root()) / session_name(name)
