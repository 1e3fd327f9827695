"""The rule for a session NAME: it becomes a container name, a label, a path.

Its own module, so reading sessions back from docker (every `mux list`) checks
names without loading every other validator.
"""

from __future__ import annotations

import re

from mux.errors import ConfigError

SESSION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")


def session_name(name: str) -> str:
    if not SESSION_NAME.fullmatch(name):
        raise ConfigError(
            f"invalid session name {name!r}: use 1-63 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return name
