"""``${VAR}`` and ``${VAR:-default}`` expansion in configuration strings."""

from __future__ import annotations

import re
from collections.abc import Mapping

from mux.errors import ConfigError

PATTERN = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


def expand(value: str, env: Mapping[str, str], where: str, *, hint: str | None = None) -> str:
    """Expand ``value``; ``where`` names it in errors (file, table, key)."""

    def replace(m: re.Match[str]) -> str:
        name, default = m["name"], m["default"]
        if name in env and (env[name] or default is None):
            return env[name]
        if default is not None:
            return default
        raise ConfigError(
            f"{where}: ${{{name}}} is not set in the environment "
            f"(set it, or give a default: ${{{name}:-value}})",
            hint=hint and hint.format(name=name),
        )

    return PATTERN.sub(replace, value)
