"""`mux cp`: docker cp's syntax, through the session's engine, found by its labels.

``NAME:PATH`` names a path in session NAME (relative paths are relative to
/workspace); anything else is a path on this machine (write ``./a:b`` for a
local name with a colon, as with docker cp). This is how results come back from
a session whose /workspace is a volume on another machine (mux/volumes.py).
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from mux import argv as A
from mux.errors import ConfigError
from mux.names import SESSION_NAME, WORKSPACE
from mux.runner import Runner
from mux.sessions import find

SESSION_PATH = re.compile(rf"(?P<name>{SESSION_NAME.pattern}):(?P<path>.*)", re.DOTALL)


def split(arg: str) -> tuple[str | None, str]:
    """(session, path in it) for NAME:PATH, else (None, local path)."""
    m = SESSION_PATH.fullmatch(arg)
    if m and "/" not in m["name"]:
        return m["name"], m["path"]
    return None, arg


def copy(runner: Runner, source: str, dest: str) -> None:
    (src_session, src_path), (dst_session, dst_path) = split(source), split(dest)
    if (src_session is None) == (dst_session is None):
        raise ConfigError("give exactly one side as NAME:PATH (a path in session NAME) and the other "
                          "as a path here", hint="mux cp NAME:/workspace/out.txt . | mux cp ./in.txt NAME:")
    local = src_path if src_session is None else dst_path
    if local in ("", "-") or local.startswith("-"):
        raise ConfigError(f"invalid local path {local!r}: a file or directory here (tar streams "
                          "are not supported)", hint="prefix a name starting with '-' with ./")
    name = src_session or dst_session
    assert name is not None
    session = find(runner, name)
    path = src_path if src_session else dst_path
    inside = str(PurePosixPath(WORKSPACE) / path)
    if path.endswith(("/", "/.")) and not inside.endswith(("/", "/.")):  # docker cp: "must be a directory"
        inside += path[path.rindex("/"):]
    ref = f"{session.id or session.container}:{inside}"
    argv = A.cp_argv(ref, local) if src_session else A.cp_argv(local, ref)
    runner.run(argv)
