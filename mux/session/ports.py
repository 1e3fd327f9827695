"""A session's ports as `mux port` shows them: published ones, read back from
Docker, and the forwards `mux forward` processes on this machine have open.

A forward lives as long as its `mux forward` process, so it is recorded in a
file named for that process (data dir/forwards/SESSION/PID.json), removed when
the process ends; a file whose process is gone (killed with SIGKILL) is stale
and dropped on read.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from mux import paths
from mux.engine import argv as A
from mux.engine.runner import Runner
from mux.errors import MuxError

PORT_KEY = re.compile(r"(\d{1,5})/(tcp|udp|sctp)", re.ASCII)
# Running: the ports docker bound; stopped: what was asked for (a free port is picked at start).
INSPECT_FORMAT = '{"bound":{{json .NetworkSettings.Ports}},"asked":{{json .HostConfig.PortBindings}}}'


@dataclass(frozen=True)
class Port:
    kind: str  # "published" or "forward"
    container_port: int
    protocol: str
    host_ip: str
    host_port: int | None  # None: docker picks one when the session starts
    pid: int | None = None  # the `mux forward` process

    def public(self) -> dict[str, object]:
        return asdict(self)


def published(runner: Runner, container: str) -> list[Port]:
    out = runner.query(A.inspect_argv(container, INSPECT_FORMAT)).stdout
    try:
        data = json.loads(out)
        table = data["bound"] or data["asked"] or {}
        ports = []
        for key, bindings in table.items():
            m = PORT_KEY.fullmatch(key)
            if m is None:
                raise ValueError(f"unexpected port {key!r}")
            for b in bindings or []:  # None: exposed by the image, not published
                host_port = str(b["HostPort"])
                ports.append(Port("published", int(m[1]), m[2], str(b["HostIp"]) or "0.0.0.0",
                                  int(host_port) if host_port.isdigit() else None))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise MuxError(f"could not read the ports of {container} from `docker inspect`: {exc}") from None
    return sorted(ports, key=lambda p: (p.container_port, p.protocol, p.host_ip))


def forwards_dir(session: str) -> Path:
    return Path(paths.data_dir(), "forwards", session)


def record_forwards(session: str, container: str, ports: list[Port]) -> Path:
    """Write this process's forwards where `mux port` finds them; the caller removes it.
    The container ID tells them apart from a same-named session on another engine."""
    directory = forwards_dir(session)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / f"{os.getpid()}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"container": container, "ports": [p.public() for p in ports]}))
    tmp.replace(path)
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def active_forwards(session: str, container: str) -> list[Port]:
    directory = forwards_dir(session)
    if not directory.is_dir():
        return []
    found: list[Port] = []
    for path in sorted(directory.glob("*.json")):
        pid = int(path.stem) if path.stem.isdigit() else 0
        if not pid or not _alive(pid):
            path.unlink(missing_ok=True)
            continue
        try:
            record = json.loads(path.read_text())
            if record["container"] == container:
                found += [Port(**{**row, "kind": "forward", "pid": pid}) for row in record["ports"]]
        except (OSError, ValueError, TypeError, KeyError):
            continue  # not ours, or from another mux version: what it says cannot be trusted
    return found


def host_address(port: Port) -> str:
    ip = f"[{port.host_ip}]" if ":" in port.host_ip else port.host_ip
    return f"{ip}:{port.host_port if port.host_port is not None else '(picked at start)'}"
