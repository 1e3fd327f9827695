"""The proxy's audit log: bounded in size, summarised for unauthenticated clients, readable.

``audit.jsonl`` holds one JSON object per request (session, host, method, path without
query, whether a credential was injected, status, duration). It rotates when it would
pass ``[proxy] audit_max_bytes`` (``audit.jsonl.1`` is the newest old file, up to
``audit.jsonl.<audit_keep>``), so the log never holds more than about
``max_bytes * (keep + 1)``. Unauthenticated refusals (407) are where anyone who can reach
the proxy decides how much is written: the first from a client address in a minute is
logged as usual (with ``client``), the rest of that minute are counted and written as one
``{"summary": "unauthenticated", "client": ..., "count": N}`` entry when the minute ends.

Pure standard library (``mux proxy audit`` reads it without the proxy engine).
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Collection, Iterable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

log = logging.getLogger("mux.proxy")
DEFAULT_MAX_BYTES = 4 * 1024 * 1024
DEFAULT_KEEP = 3
WINDOW = 60.0  # seconds: unauthenticated refusals are summarised per client per window
_TIME = "%Y-%m-%dT%H:%M:%S%z"


def stamp(when: float | None = None) -> str:
    return time.strftime(_TIME, time.localtime(when))


class AuditLog:
    """Appends entries to ``path``, rotating it at ``max_bytes``, keeping ``keep`` old files."""

    def __init__(self, path: Path, max_bytes: int = DEFAULT_MAX_BYTES, keep: int = DEFAULT_KEEP) -> None:
        self.path, self.max_bytes, self.keep = path, max_bytes, keep
        # client address -> (window start, refusals not yet written)
        self._unauthenticated: dict[str, tuple[float, int]] = {}
        self._failed_at = -1e9

    def write(self, entry: dict[str, Any]) -> None:
        self.flush_summaries()
        self._append(entry)

    def unauthenticated(self, client: str, entry: dict[str, Any]) -> None:
        """A 407: written if it is this client's first in the current window, else counted."""
        now = time.time()
        self.flush_summaries(now)
        if client in self._unauthenticated:
            start, count = self._unauthenticated[client]
            self._unauthenticated[client] = (start, count + 1)
            return
        self._unauthenticated[client] = (now, 0)
        self._append({**entry, "client": client})

    def flush_summaries(self, now: float | None = None, everything: bool = False) -> None:
        """Write the summary of every window that has ended (all of them at shutdown)."""
        now = time.time() if now is None else now
        for client, (start, count) in list(self._unauthenticated.items()):
            if everything or now - start >= WINDOW:
                del self._unauthenticated[client]
                if count:
                    self._append({"time": stamp(now), "session": None, "summary": "unauthenticated",
                                  "client": client, "status": 407, "count": count, "since": stamp(start)})

    def _append(self, entry: dict[str, Any]) -> None:
        line = (json.dumps(entry) + "\n").encode()
        try:
            size = self.path.stat().st_size
        except OSError:
            size = 0
        try:
            if size and size + len(line) > self.max_bytes:
                self._rotate()
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
        except OSError as exc:  # out of descriptors or disk: the request still gets its answer
            now = time.monotonic()
            if now - self._failed_at >= WINDOW:
                self._failed_at = now
                log.warning("cannot write the audit log %s: %s", self.path, exc.strerror or exc)

    def _rotate(self) -> None:
        for n in range(self.keep, 0, -1):
            older = rotated(self.path, n)
            if n == self.keep:
                older.unlink(missing_ok=True)
            else:
                _rename(older, rotated(self.path, n + 1))
        if self.keep:
            _rename(self.path, rotated(self.path, 1))
        else:
            self.path.unlink(missing_ok=True)


def rotated(path: Path, n: int) -> Path:
    return path.with_name(f"{path.name}.{n}")


def _rename(src: Path, dst: Path) -> None:
    try:
        os.replace(src, dst)
    except FileNotFoundError:
        pass


# -- reading -----------------------------------------------------------------------------


def files_oldest_first(path: Path) -> list[Path]:
    """The log and its rotated files, oldest first (``.N`` ... ``.1``, then the log)."""
    found = []
    for entry in path.parent.glob(f"{path.name}.*"):
        suffix = entry.name[len(path.name) + 1:]
        if suffix.isdigit():
            found.append((int(suffix), entry))
    return [p for _, p in sorted(found, reverse=True)] + ([path] if path.exists() else [])


def entries(path: Path, max_line: int = 64 * 1024) -> Iterator[dict[str, Any]]:
    """Every entry, oldest first; lines that are not JSON objects (or absurdly long) are skipped."""
    for each in files_oldest_first(path):
        try:
            fh = open(each, "rb")
        except OSError:
            continue
        with fh:
            for raw in fh:
                if len(raw) > max_line:
                    continue
                try:
                    entry = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(entry, dict):
                    yield entry


def parse_time(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, _TIME)
    except (TypeError, ValueError):
        return None


_AGO = re.compile(r"(\d+)([smhd])")


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``30m``, ``2h``, ``1d``, ``90s`` ago, or an ISO date/time (local time if no offset).
    ValueError with what is allowed."""
    now = now or datetime.now(timezone.utc).astimezone()
    match = _AGO.fullmatch(text.strip())
    if match:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
        return now - timedelta(**{unit: int(match.group(1))})
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a time; use a duration like 30m, 2h, 1d or a time like "
                         "2026-01-31T14:00") from None
    return when if when.tzinfo else when.astimezone()


def select(found: Iterable[dict[str, Any]], session: str | Collection[str] | None = None,
           since: datetime | None = None) -> Iterator[dict[str, Any]]:
    """The entries of ``session`` (a name, or any of several) since ``since``."""
    names = {session} if isinstance(session, str) else set(session) if session is not None else None
    for entry in found:
        if names is not None and entry.get("session") not in names:
            continue
        if since is not None:
            when = parse_time(entry.get("time", ""))
            if when is None or when < since:
                continue
        yield entry


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def visible(value: object, limit: int = 300) -> str:
    """A value from the log (a session wrote much of it) safe for a terminal: control
    characters escaped, bounded."""
    text = str(value)
    text = text if len(text) <= limit else text[:limit] + "..."
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def line(entry: dict[str, Any]) -> str:
    """One entry as a line of ``mux proxy audit``."""
    if entry.get("summary"):
        return (f"{visible(entry.get('time', '?'))}  -  {visible(entry.get('status', '?'))}  "
                f"{visible(entry.get('count', '?'))} more unauthenticated requests from "
                f"{visible(entry.get('client', '?'))} since {visible(entry.get('since', '?'))}")
    who = entry.get("session") or f"(unauthenticated {entry.get('client', '?')})"
    injected = "  +credential" if entry.get("injected") else ""
    return (f"{visible(entry.get('time', '?'))}  {visible(who)}  {visible(entry.get('status', '?'))}  "
            f"{visible(entry.get('method', '?'))} {visible(entry.get('host', '?'))}"
            f"{visible(entry.get('path', ''))}  {visible(entry.get('duration_ms', '?'))} ms{injected}")
