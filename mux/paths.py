"""Where mux keeps things on the host: config search path and the data dir."""

from __future__ import annotations

import os
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


def session_dir(name: str) -> Path:
    """Host-side files of one session (its HOME, a repo clone); removed with it."""
    return data_dir() / "sessions" / name


def instance() -> str | None:
    """$MUX_INSTANCE: a separate set of sessions on a shared engine (the test
    suite uses one, so it can never see, or delete, a user's real sessions)."""
    return os.environ.get("MUX_INSTANCE") or None
