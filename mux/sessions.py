"""Sessions as Docker knows them: read back from container labels, one call."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

from mux import argv as A
from mux import paths
from mux.errors import MuxError, SessionNotFound
from mux.hostfiles import being_created
from mux.runner import Runner
from mux.spec import CREATED_FORMAT

LABELS = ("session", "backend", "workdir", "image", "created", "version", "repo", "branch", "agent", "egress")
# One JSON object per container, labels read one by one so that no value (a
# path with a comma, say) can be confused with the separator of .Labels.
PS_FORMAT = (
    '{"id":{{json .ID}},"container":{{json .Names}},"state":{{json .State}},'
    '"docker_image":{{json .Image}},'
    + ",".join(f'"{k}":{{{{json (.Label "mux.{k}")}}}}' for k in LABELS)
    + "}"
)


@dataclass(frozen=True)
class Session:
    name: str
    backend: str
    status: str  # running, stopped, or docker's own word (paused, restarting, dead)
    created: str
    workdir: str
    image: str
    container: str
    repo: str = ""
    branch: str = ""
    agent: str = ""
    egress: str = ""  # proxied sessions: open or proxy-only (mux.proxy.egress); others ""
    state: str = ""
    id: str = ""

    @property
    def running(self) -> bool:
        return self.state in ("running", "restarting", "paused")

    def public(self) -> dict[str, str]:
        data = asdict(self)
        del data["state"], data["id"]
        return data


def status_of(state: str) -> str:
    if state == "running":
        return "running"
    if state in ("exited", "created"):
        return "stopped"
    return state


def parse_ps(output: str) -> list[Session]:
    sessions = []
    for line in output.splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        sessions.append(Session(
            name=row["session"], backend=row["backend"] or "docker",
            status=status_of(row["state"]), created=row["created"],
            workdir=row["workdir"], image=row["image"] or row["docker_image"],
            container=row["container"], repo=row["repo"], branch=row["branch"], agent=row.get("agent") or "",
            egress=row.get("egress") or "",
            state=row["state"], id=row["id"],
        ))
    return sorted(sessions, key=lambda s: (s.name, s.container))


def list_sessions(runner: Runner, name: str | None = None) -> list[Session]:
    result = runner.query(A.ps_argv(PS_FORMAT, name=name, instance=paths.instance()))
    try:
        return parse_ps(result.stdout)
    except (ValueError, KeyError) as exc:
        raise MuxError(f"could not read `docker ps` output: {exc}") from None


def find(runner: Runner, name: str) -> Session:
    """The session called ``name``, found by label (so a renamed container still counts)."""
    found = list_sessions(runner, name)
    if not found:
        raise SessionNotFound(name)
    exact = [s for s in found if s.container == A.container_name(name)]
    return (exact or found)[0]


def leftovers(known: list[Session] | set[str]) -> list[Session]:
    """Session directories whose container is gone (removed by hand, or a `mux new`
    that died): shown by `mux list` as status "missing" so nothing hides.
    ``known``: the sessions (or their names) docker has containers for."""
    root = paths.data_dir() / "sessions"
    if not root.is_dir():
        return []
    names = {s if isinstance(s, str) else s.name for s in known}
    found = []
    for directory in sorted(root.iterdir()):
        # A directory a running `mux new` holds is a session being born, not a leftover.
        if directory.is_dir() and directory.name not in names and not being_created(directory):
            stamp = datetime.fromtimestamp(directory.stat().st_mtime, timezone.utc)
            found.append(Session(
                name=directory.name, backend="docker", status="missing",
                created=stamp.strftime(CREATED_FORMAT), workdir="",
                image="", container="",
            ))
    return found
