"""Per-session proxy secrets: the registry the proxy checks ``Proxy-Authorization`` against.

A session's proxy URL is ``http://mux-<session>:<secret>@host:port``. The secret
itself is written only to the session's env-file (mode 0600); the registry
``<data dir>/proxy/sessions.json`` (mode 0600) holds its SHA-256, so reading the
registry does not let anyone use the proxy. ``mux new`` registers a session
before its container starts; ``forget`` (for ``mux delete``) removes the entry.
The running proxy looks at the file (one ``stat``) on every check and re-reads it
when it changed, so a new session works and a deleted or re-made session's secret
is refused at once, with no restart or signal.

Every change is a read-modify-write under an exclusive lock, written to a
temporary file and renamed over the registry, so parallel ``mux new`` all get
registered and no reader ever sees half a file. A registry that exists but
cannot be read is an error naming the file (exit 5): resetting it would cut
every other session off the network.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import logging
import os
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mux.errors import ProxyError
from mux.ownfiles import write_private
from mux.proxy.files import ProxyFiles

USER_PREFIX = "mux-"
# File times are as coarse as the kernel's clock tick: a file read within this many
# seconds of its last change may change again with the same mtime, so it is re-read.
SETTLE = 1.0
log = logging.getLogger("mux.proxy")


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    # URL-safe so it can sit in a proxy URL's userinfo without escaping.
    return secrets.token_urlsafe(24)


@contextmanager
def _locked(files: ProxyFiles) -> Iterator[None]:
    """Serialize read-modify-write of the registry between concurrent `mux new`s."""
    files.ensure()
    with open(files.lock, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def load(path: Path) -> dict[str, str]:
    """Session name -> secret digest; {} when there is no registry yet.
    ProxyError when the file exists but is unreadable or not a registry."""
    return _read(path)[0]


def _read(path: Path) -> tuple[dict[str, str], dict[str, int]]:
    """(name -> secret digest, name -> the proxy port the session was given)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}, {}
    except OSError as exc:
        raise _broken(path, exc.strerror or str(exc)) from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise _broken(path, f"not valid JSON ({exc})") from None
    sessions = data.get("sessions") if isinstance(data, dict) else None
    ports = data.get("ports", {}) if isinstance(data, dict) else None
    if not isinstance(sessions, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in sessions.items()
    ) or not isinstance(ports, dict) or not all(
        isinstance(v, int) and not isinstance(v, bool) and 0 < v < 65536 for v in ports.values()
    ):
        raise _broken(path, 'not a session registry ({"sessions": {NAME: DIGEST}, "ports": {NAME: PORT}})')
    return dict(sessions), {k: v for k, v in ports.items() if k in sessions}


def _write(files: ProxyFiles, sessions: dict[str, str], ports: dict[str, int]) -> None:
    write_private(files.sessions, json.dumps({"sessions": sessions, "ports": ports}, indent=1, sort_keys=True))


def _broken(path: Path, why: str) -> ProxyError:
    return ProxyError(
        f"cannot read the proxy's session registry {path}: {why}",
        hint="mux will not reset it (that would cut every proxied session off); fix or restore "
        "the file, or remove it and re-create the proxied sessions",
    )


def names(files: ProxyFiles) -> list[str]:
    """The registered sessions (read under the lock)."""
    with _locked(files):
        return sorted(load(files.sessions))


def ports(files: ProxyFiles) -> dict[str, int]:
    """Session -> the proxy port in its environment: the proxy keeps listening on each."""
    with _locked(files):
        return _read(files.sessions)[1]


def register(files: ProxyFiles, session: str, secret: str, port: int | None = None) -> None:
    with _locked(files):
        sessions, known = _read(files.sessions)
        sessions[session] = digest(secret)
        if port is not None:
            known[session] = port
        _write(files, sessions, known)


def forget(files: ProxyFiles, session: str) -> int:
    """Remove the session's entry; how many sessions remain registered."""
    with _locked(files):
        sessions, known = _read(files.sessions)
        if sessions.pop(session, None) is not None:
            known.pop(session, None)
            _write(files, sessions, known)
        return len(sessions)


class Registry:
    """The proxy's view of the registry: the file as it is at each check."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._path_str = str(path)
        self._key: tuple[int, ...] | None = None
        self._settled = False
        self._sessions: dict[str, str] = {}
        self._reload()

    def _reload(self) -> None:
        try:
            st = os.stat(self._path_str)  # every check pays this syscall (~5 µs here): keep it bare
            key: tuple[int, ...] | None = (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)
        except OSError:
            st, key = None, None
        if key == self._key and self._settled:
            return
        try:
            # A registry removed outright (the data dir deleted) holds no session.
            self._sessions = load(self.path)
        except ProxyError as exc:  # keep the sessions known so far; say why once per change
            if key != self._key:
                log.error("%s", exc.message)
        self._key = key
        self._settled = st is None or time.time() - st.st_mtime > SETTLE

    def check(self, user: str, secret: str) -> str | None:
        """The session name when ``user``/``secret`` are a registered pair, else None."""
        return self.check_digest(user, digest(secret))

    def check_digest(self, user: str, got: str) -> str | None:
        """:meth:`check` for a secret already hashed (a tunnel re-checks its CONNECT's)."""
        if not user.startswith(USER_PREFIX):
            return None
        session = user[len(USER_PREFIX):]
        self._reload()
        want = self._sessions.get(session)
        if want is not None and hmac.compare_digest(want, got):
            return session
        return None
