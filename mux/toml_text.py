"""Just enough TOML writing for `mux config show`: tables of str, bool, numbers, lists."""

from __future__ import annotations

import json
from typing import Any


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    return json.dumps(str(v))  # a JSON string is a valid TOML basic string


def dumps(data: dict[str, Any], prefix: str = "") -> str:
    chunks = []
    scalars = [f"{k} = {_value(v)}" for k, v in data.items() if not isinstance(v, dict) and v is not None]
    if scalars:
        chunks.append("\n".join(scalars))
    for key, table in data.items():
        if isinstance(table, dict):
            name = f"{prefix}.{key}" if prefix else key
            inner = dumps(table, name)
            chunks.append(f"[{name}]" + ("\n" + inner if inner else ""))
    return "\n\n".join(chunks)
