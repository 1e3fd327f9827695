"""Just enough TOML writing for `mux config show`: tables of str, bool, numbers, lists."""

from __future__ import annotations

import json
import re
from typing import Any

BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _string(s: str) -> str:
    # A JSON string is a TOML basic string, except that JSON escapes characters
    # beyond U+FFFF as surrogate pairs (TOML rejects those) and leaves DEL as is.
    return json.dumps(s, ensure_ascii=False).replace("\x7f", "\\u007f")


def _key(k: str) -> str:
    """A bare key when TOML allows one; ``github.com`` unquoted would be a dotted key."""
    return k if BARE_KEY.fullmatch(k) else _string(k)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    return _string(str(v))


def dumps(data: dict[str, Any], prefix: str = "") -> str:
    chunks = []
    scalars = [f"{_key(k)} = {_value(v)}" for k, v in data.items() if not isinstance(v, dict) and v is not None]
    if scalars:
        chunks.append("\n".join(scalars))
    for key, table in data.items():
        if isinstance(table, dict):
            name = f"{prefix}.{_key(key)}" if prefix else _key(key)
            inner = dumps(table, name)
            chunks.append(f"[{name}]" + ("\n" + inner if inner else ""))
    return "\n\n".join(chunks)
