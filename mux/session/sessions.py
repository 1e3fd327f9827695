"""Sessions as Docker knows them: read back from container labels, one call.

Labels are input: a container whose ``mux.session`` label is not a valid NAME
is *foreign* (shown, never acted on by name, never a path), and a container of
another instance is not seen at all. Commands act on a session's container ID,
never on the name ``mux-NAME``, which any container may hold.
"""

from __future__ import annotations

import json
import os
import re
from datetime import datetime, timezone
from typing import TYPE_CHECKING, NamedTuple

from mux import paths
from mux.engine import argv as A
from mux.errors import MuxError, SessionNotFound
from mux.names import CREATED_FORMAT, SESSION_NAME, container_name, session_name

if TYPE_CHECKING:
    from mux.engine.runner import Runner


LABELS = ("session", "backend", "workdir", "image", "created", "version", "repo", "branch", "agent", "egress",
          "instance")
# One JSON object per container, labels read one by one so that no value (a
# path with a comma, say) can be confused with the separator of .Labels.
PS_FORMAT = (
    '{"id":{{json .ID}},"container":{{json .Names}},"state":{{json .State}},'
    '"docker_image":{{json .Image}},"docker_status":{{json .Status}},'
    + ",".join(f'"{k}":{{{{json (.Label "mux.{k}")}}}}' for k in LABELS)
    + "}"
)
EXITED = r"Exited \((-?\d+)\)"  # compiled on first use (re caches it): most lists show none


class Session(NamedTuple):
    name: str
    backend: str
    status: str  # running, stopped, missing, or docker's own word (paused, restarting, dead)
    created: str
    workdir: str
    image: str
    container: str
    repo: str = ""
    branch: str = ""
    agent: str = ""
    egress: str = ""  # proxied sessions: open or proxy-only (mux.egress.relay); others ""
    state: str = ""
    id: str = ""
    exit_code: int | None = None  # the command's exit status, once it has exited

    @property
    def running(self) -> bool:
        return self.state in ("running", "restarting", "paused")

    @property
    def ref(self) -> str:
        """How docker commands name this session's container: its ID."""
        return self.id or self.container

    def public(self) -> dict[str, object]:
        data = self._asdict()
        del data["state"], data["id"]
        return data


class Foreign(NamedTuple):
    """A container labelled mux.session that mux cannot take as a session."""

    container: str
    id: str
    label: str
    state: str

    def public(self) -> dict[str, object]:
        return {"name": self.label, "backend": "", "status": "foreign", "created": "", "workdir": "",
                "image": "", "container": self.container, "repo": "", "branch": "", "agent": "",
                "egress": "", "exit_code": None}


class Scan(NamedTuple):
    sessions: list[Session]
    foreign: list[Foreign]


def status_of(state: str) -> str:
    if state == "running":
        return "running"
    if state in ("exited", "created"):
        return "stopped"
    return state


def exit_code_of(state: str, status_text: str) -> int | None:
    found = re.match(EXITED, status_text) if state == "exited" else None
    return int(found.group(1)) if found else None


def parse_ps(output: str, instance: str | None = None) -> Scan:
    """Rows of ``docker ps`` in PS_FORMAT: sessions of ``instance`` (None: those
    without an instance label), and containers whose session label is not a NAME."""
    sessions, foreign = [], []
    for line in output.splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        if (row.get("instance") or None) != instance:
            continue  # another instance's: not ours to show or touch
        name = row["session"]
        if not isinstance(name, str) or not SESSION_NAME.fullmatch(name):
            foreign.append(Foreign(container=row["container"], id=row["id"], label=str(name),
                                   state=row["state"]))
            continue
        sessions.append(Session(
            name=name, backend=row["backend"] or "docker",
            status=status_of(row["state"]), created=row["created"],
            workdir=row["workdir"], image=row["image"] or row["docker_image"],
            container=row["container"], repo=row["repo"], branch=row["branch"], agent=row.get("agent") or "",
            egress=row.get("egress") or "",
            state=row["state"], id=row["id"],
            exit_code=exit_code_of(row["state"], row.get("docker_status", "")),
        ))
    return Scan(sorted(sessions, key=lambda s: (s.name, s.container)),
                sorted(foreign, key=lambda f: f.container))


def scan(runner: Runner, name: str | None = None) -> Scan:
    """This instance's sessions (and foreign-labelled containers): one `docker ps`."""
    inst = paths.instance()
    result = runner.query(A.ps_argv(PS_FORMAT, name=name, instance=inst))
    try:
        return parse_ps(result.stdout, inst)
    except (ValueError, KeyError, TypeError) as exc:
        raise MuxError(f"could not read `docker ps` output: {exc}") from None


def list_sessions(runner: Runner, name: str | None = None) -> list[Session]:
    return scan(runner, name).sessions


def find(runner: Runner, name: str) -> Session:
    """The session called ``name``, found by label (so a renamed container still
    counts); a container that merely holds the name mux-NAME is not it."""
    session_name(name)
    found = list_sessions(runner, name)
    if not found:
        raise not_found(runner, name)
    exact = [s for s in found if s.container == container_name(name)]
    return (exact or found)[0]


def not_found(runner: Runner, name: str) -> SessionNotFound:
    """Exit 3; says so when a container holds the name without being this session."""
    error = SessionNotFound(name)
    probe = runner.query(A.inspect_argv(container_name(name), "{{.Id}}"), check=False)
    if probe.returncode == 0 and probe.stdout.strip():
        error.hint = (f"container {container_name(name)} exists but is not a mux session "
                      f"{'of this instance ' if paths.instance() else ''}(no matching labels); "
                      "mux leaves it alone")
    return error


def leftovers(known: list[Session] | set[str]) -> list[Session]:
    """Session directories whose container is gone (removed by hand, or a `mux new`
    that died): shown by `mux list` as status "missing" so nothing hides.
    ``known``: the sessions (or their names) docker has containers for. Only
    directories named like a session count; anything else is not mux's."""
    root = paths.sessions_root()
    if not os.path.isdir(root):
        return []
    names = {s if isinstance(s, str) else s.name for s in known}
    found = []
    for name in sorted(os.listdir(root)):
        directory = os.path.join(root, name)
        if name in names or not is_session_dir(directory):
            continue
        from mux.session.layout import ENGINE_MARKER, being_created  # only for a directory docker does not know

        # A directory a running `mux new` holds is a session being born, not a leftover.
        if being_created(directory) or os.path.exists(os.path.join(directory, ENGINE_MARKER)):
            continue  # ENGINE_MARKER: on another engine (mux/session/volumes.py)
        stamp = datetime.fromtimestamp(os.lstat(directory).st_mtime, timezone.utc)
        found.append(Session(
            name=name, backend="docker", status="missing",
            created=stamp.strftime(CREATED_FORMAT), workdir="",
            image="", container="",
        ))
    return found


def is_session_dir(path: str | os.PathLike[str]) -> bool:
    """A real directory (not a symlink) named like a session."""
    return (bool(SESSION_NAME.fullmatch(os.path.basename(path))) and os.path.isdir(path)
            and not os.path.islink(path))


def strangers(root: str | None = None) -> list[str]:
    """Entries of the sessions directory that no session can own (for doctor)."""
    root = root if root is not None else paths.sessions_root()
    if not os.path.isdir(root):
        return []
    return [p for p in (os.path.join(root, n) for n in sorted(os.listdir(root))) if not is_session_dir(p)]
