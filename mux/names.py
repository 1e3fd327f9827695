"""The names mux gives things: the rule for a session NAME (it becomes a
container name, a label, a path), its container's name, the created label's
format, and the two paths every session has inside.

Its own small module, so reading sessions back from docker (every `mux list`)
needs neither the validators nor the session spec.
"""

from __future__ import annotations

import re

from mux.errors import ConfigError

SESSION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
WORKSPACE = "/workspace"
CONTAINER_HOME = "/home/mux"
CREATED_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # the mux.created label: UTC, to the second


def container_name(session: str) -> str:
    return f"mux-{session}"


def session_name(name: str) -> str:
    if not SESSION_NAME.fullmatch(name):
        raise ConfigError(
            f"invalid session name {name!r}: use 1-63 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return name
