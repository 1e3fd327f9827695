"""Where mux keeps things on the host: config search path and the data dir.

Session files live per instance: ``<data>/sessions/NAME`` for sessions without
an instance, ``<data>/instances/INSTANCE/sessions/NAME`` under $MUX_INSTANCE, so
one instance can never see (or delete) another's files.

Paths here are plain strings (os.path), not pathlib: `mux list` reads them, and
importing pathlib costs ~3.5 ms of every start-up. Callers that work with the
files wrap them in ``Path``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from mux.errors import ConfigError
from mux.names import SESSION_NAME, session_name

SYSTEM_CONFIG = "/etc/mux/config.toml"


def _clean(path: str) -> str:
    """``path`` with ~ expanded and spelled as pathlib spells it: no ``.`` parts or
    doubled slashes, ``..`` kept (through a symlink, folding it would change where
    it points)."""
    path = os.path.expanduser(path)
    parts = [p for p in path.split("/") if p not in ("", ".")]
    return ("/" if path.startswith("/") else "") + "/".join(parts) or "."


def _absolute(path: str) -> str:
    """``path`` cleaned and made absolute, as pathlib's ``expanduser().absolute()``."""
    path = _clean(path)
    return path if path.startswith("/") else _clean(os.path.join(os.getcwd(), path))


def user_config() -> str:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(_clean(base), "mux", "config.toml")


def config_candidates(explicit: str | os.PathLike[str] | None = None) -> list[tuple[str, str]]:
    """The config files mux looks at, first match wins, with where each came from."""
    if explicit:
        return [(_clean(os.fspath(explicit)), "--config")]
    if os.environ.get("MUX_CONFIG"):
        return [(_clean(os.environ["MUX_CONFIG"]), "$MUX_CONFIG")]
    return [(user_config(), "user config"), (SYSTEM_CONFIG, "system config")]


def data_dir() -> str:
    if os.environ.get("MUX_DATA_DIR"):
        return _absolute(os.environ["MUX_DATA_DIR"])
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(_absolute(base), "mux")


def instance(env: Mapping[str, str] | None = None) -> str | None:
    """$MUX_INSTANCE: a separate set of sessions (containers and files) on a shared
    engine (the test suite uses one, so it can never see, or delete, a user's real
    sessions). It becomes a path and a label filter, so it is checked like a NAME."""
    value = (os.environ if env is None else env).get("MUX_INSTANCE") or None
    if value is not None:
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


def sessions_root(data: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> str:
    """The directory holding this instance's session directories (and nothing else)."""
    inst = instance(env)
    base = os.fspath(data) if data is not None else data_dir()
    return os.path.join(base, "sessions") if inst is None else os.path.join(base, "instances", inst, "sessions")


def all_sessions_roots(data: str | os.PathLike[str] | None = None) -> list[tuple[str | None, str]]:
    """(instance, its sessions directory) for every instance with files under the data
    dir, the one without an instance first. Directory names are input: only those
    that are valid instance names (and no symlinks) count."""
    base = os.fspath(data) if data is not None else data_dir()
    roots: list[tuple[str | None, str]] = [(None, sessions_root(base, {}))]
    instances = os.path.join(base, "instances")
    if os.path.isdir(instances) and not os.path.islink(instances):
        roots += [(name, sessions_root(base, {"MUX_INSTANCE": name})) for name in sorted(os.listdir(instances))
                  if SESSION_NAME.fullmatch(name) and not os.path.islink(os.path.join(instances, name))]
    return roots


def session_dir(name: str, root: str | os.PathLike[str] | None = None) -> str:
    """Host-side files of one session (its HOME, a repo clone); removed with it.
    ``name`` must be a valid session name: a label read back from docker is input."""
    return os.path.join(os.fspath(root) if root is not None else sessions_root(), session_name(name))
