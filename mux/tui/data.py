"""What the TUI's table shows, read by the same code as `mux list` (no Textual here).

One refresh is `mux list`'s own gather (one `docker ps` per engine, engines in
parallel, an unreachable one a warning) plus, at the same time, one more `docker
ps` per engine for the published ports, which `mux list` does not show. Rows keep
the Session and the Engine they came from, so every action goes to that engine.
"""

from __future__ import annotations

import os
import threading
import time
from typing import TYPE_CHECKING, NamedTuple

from mux import paths
from mux.engine import argv as A
from mux.engine.runner import Runner
from mux.errors import MuxError
from mux.proxy.files import ProxyFiles
from mux.session.listing import gather
from mux.session.sessions import leftovers
from mux.table import created_local
from mux.tui.text import field

if TYPE_CHECKING:
    from mux.engine.choice import Engine
    from mux.session.sessions import Session

COLUMNS = ("NAME", "STATE", "AGENT", "REPO", "EGRESS", "PORTS", "CONTEXT", "CREATED")
PORTS_FORMAT = "{{.ID}}\t{{.Ports}}"


class Row(NamedTuple):
    key: str  # stable across refreshes: the table keeps the cursor on it
    name: str  # the session NAME actions use; "" for a foreign container (never acted on)
    cells: tuple[str, ...]  # COLUMNS, escaped
    session: Session | None
    engine: Engine | None

    @property
    def state(self) -> str:
        return self.cells[1]


class Snapshot(NamedTuple):
    rows: list[Row]
    warnings: list[str]
    seconds: float  # how long the refresh took


def _ports(engine: Engine, found: dict[str, dict[str, str]]) -> None:
    """Container ID -> docker's PORTS text, for one engine; nothing when it fails
    (the listing says why, ports are an extra)."""
    runner = Runner(engine=engine, timeout=5.0)
    try:
        out = runner.query(A.ps_argv(PORTS_FORMAT, instance=paths.instance())).stdout
    except MuxError:
        return
    table = {}
    for text in out.splitlines():
        cid, _, ports = text.partition("\t")
        table[cid] = ports
    found[engine.name] = table


def snapshot(engines: list[Engine], fallback: Engine) -> Snapshot:
    """Every session of every engine, as `mux list` finds them, ready to show."""
    began = time.monotonic()
    ports: dict[str, dict[str, str]] = {}
    threads = [threading.Thread(target=_ports, args=(e, ports), daemon=True) for e in engines]
    for t in threads:
        t.start()
    try:
        pairs, foreign, warnings = gather(engines, verbose=False)
    except MuxError as exc:  # one engine, not answering: the screen stays, with the reason
        from mux.engine.clis import words

        pairs, foreign, warnings = [], [], [words(exc.message + (f" ({exc.hint})" if exc.hint else ""))]
    for t in threads:
        t.join()
    by_name = {e.name: e for e in engines}
    several = len(engines) > 1
    rows = []
    for context, s in pairs:
        present = not s.workdir or s.workdir.startswith("volume:") or os.path.exists(s.workdir)
        state = s.status + ("" if present else " (workdir missing)")
        if s.exit_code is not None and s.status == "stopped":
            state += f" (exit {s.exit_code})"
        cells = (s.name, state, s.agent or "-", s.repo or "-", s.egress or "-",
                 ports.get(context, {}).get(s.id, "") or "-", context, created_local(s.created))
        rows.append(Row(f"{context}/{s.name}/{s.id}", s.name, tuple(field(c) for c in cells), s,
                        by_name.get(context)))
    for s in leftovers([s for _, s in pairs]):
        cells = (s.name, s.status, "-", "-", "-", "-", "" if several else fallback.name, created_local(s.created))
        rows.append(Row(f"/{s.name}/", s.name, tuple(field(c) for c in cells), s, fallback))
    for context, f in foreign:  # shown, as `mux list` shows them, never acted on
        cells = (repr(f.label), f"foreign (container {f.container})", "", "", "", "", context, "")
        rows.append(Row(f"{context}/foreign/{f.id}", "", tuple(field(c) for c in cells), None, None))
    return Snapshot(rows, [field(w, 400) for w in warnings], time.monotonic() - began)


def matching(rows: list[Row], text: str) -> list[Row]:
    """The rows whose name holds ``text`` (the `/` filter), case-insensitively."""
    wanted = text.strip().lower()
    return [r for r in rows if wanted in r.cells[0].lower()] if wanted else rows


AUDIT_WINDOW = 1024 * 1024  # the tail of the audit log read: its last ~5000 requests


def audit_lines(name: str, limit: int = 2000) -> list[str]:
    """Session ``name``'s requests through the proxy, newest last, from the audit log
    the proxy writes (mux/proxy/addon.py), one line each, escaped."""
    import json


    path = ProxyFiles.default().audit
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            fh.seek(max(0, size - AUDIT_WINDOW))
            chunk = fh.read().decode(errors="replace")
    except FileNotFoundError:
        return [f"no audit log yet ({path}): no session has used the proxy"]
    except OSError as exc:
        return [f"cannot read the audit log {path}: {exc.strerror}"]
    shown = []
    for text in chunk.splitlines():
        try:
            entry = json.loads(text)
        except ValueError:
            continue  # the first, cut line of the window, or not the proxy's
        if not isinstance(entry, dict) or entry.get("session") != name:
            continue
        verdict = {403: "REFUSED", 407: "NO AUTH", 502: "FAILED"}.get(entry.get("status") or 0, "")
        shown.append(field(
            f"{entry.get('time', '')}  {entry.get('status', '')} {verdict:<7}  {entry.get('method', '')} "
            f"{entry.get('host', '')}{entry.get('path', '')}"
            f"{'  (credential injected)' if entry.get('injected') else ''}  {entry.get('duration_ms', '')} ms",
            1000))
    if not shown:
        return [f"no requests from session {name} in the audit log ({path})"]
    return shown[-limit:]
