"""How many connections the proxy holds, so that no one session (or anyone else who can
reach its port) can use up its file descriptors and stop it for every session.

- ``max_connections``: client connections in all, never more than the process's file
  limit allows (each proxied connection holds two descriptors: the client's, the upstream's);
- ``max_unauthenticated``: connections per client address that have not yet sent a
  request with a session's secret; such a connection is also closed ``auth_timeout``
  seconds after it opened (a ``proxy-only`` session's address is the one the egress
  relay names for it, mux.proxy.front, not the relay's own);
- ``max_session_connections``: connections per session, once authenticated;
- ``idle_timeout``: seconds a connection may pass no byte either way (mitmproxy's own
  watchdog, 10 minutes by default).

A connection over a limit is closed at once (before any byte is read) or, when its
session is over its share, answered 503. Each refusal is logged in ``proxy.log`` at most
once per client or session per minute. Pure bookkeeping: the addon does the closing.
"""

from __future__ import annotations

import logging
import resource
import time
from dataclasses import dataclass, field

log = logging.getLogger("mux.proxy")

DEFAULT_MAX_CONNECTIONS = 4096
DEFAULT_MAX_UNAUTHENTICATED = 64
DEFAULT_MAX_SESSION_CONNECTIONS = 1024
DEFAULT_AUTH_TIMEOUT = 10.0
DEFAULT_IDLE_TIMEOUT = 600.0
# Descriptors kept for everything that is not a client connection: listeners, the
# registry, logs, the CA, DNS lookups.
RESERVED_FDS = 128


def from_policy(raw: object) -> Limits:
    """The limits ``policy.json`` carries (``control.plan``); defaults for what it lacks."""
    got = raw if isinstance(raw, dict) else {}

    def num(key: str, default: float) -> float:
        value = got.get(key, default)
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 else default

    return Limits(int(num("max_connections", DEFAULT_MAX_CONNECTIONS)),
                  int(num("max_unauthenticated", DEFAULT_MAX_UNAUTHENTICATED)),
                  int(num("max_session_connections", DEFAULT_MAX_SESSION_CONNECTIONS)),
                  float(num("auth_timeout", DEFAULT_AUTH_TIMEOUT)),
                  float(num("idle_timeout", DEFAULT_IDLE_TIMEOUT)))


def fd_capacity(reserved: int = RESERVED_FDS) -> int:
    """Client connections this process's descriptor limit can carry (two descriptors each)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1 << 30
    return max(16, (soft - reserved) // 2)


@dataclass
class Limits:
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    max_unauthenticated: int = DEFAULT_MAX_UNAUTHENTICATED
    max_session_connections: int = DEFAULT_MAX_SESSION_CONNECTIONS
    auth_timeout: float = DEFAULT_AUTH_TIMEOUT
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    # connection id -> client address while unauthenticated, or the session once it is
    _unauthenticated: dict[str, str] = field(default_factory=dict, init=False)
    _sessions: dict[str, str] = field(default_factory=dict, init=False)
    _per_client: dict[str, int] = field(default_factory=dict, init=False)
    _per_session: dict[str, int] = field(default_factory=dict, init=False)
    _said: dict[str, float] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        capacity = fd_capacity()
        if self.max_connections > capacity:
            log.warning("max_connections %d is more than the file limit allows; using %d",
                        self.max_connections, capacity)
            self.max_connections = capacity

    @property
    def open(self) -> int:
        return len(self._unauthenticated) + len(self._sessions)

    def connected(self, conn: str, client: str) -> str | None:
        """Count a new connection; why it must be closed instead, or None."""
        if self.open >= self.max_connections:
            return self._refuse("*", f"{self.open} connections open (max_connections {self.max_connections})")
        if self._per_client.get(client, 0) >= self.max_unauthenticated:
            return self._refuse(client, f"{client} has {self.max_unauthenticated} connections that have not "
                                        f"authenticated (max_unauthenticated_connections)")
        self._unauthenticated[conn] = client
        self._per_client[client] = self._per_client.get(client, 0) + 1
        return None

    def authenticated(self, conn: str, session: str) -> str | None:
        """The connection's first authenticated request (later ones: nothing to do);
        why the session may not have one more connection, or None."""
        client = self._unauthenticated.get(conn)
        if client is None:
            return None
        if self._per_session.get(session, 0) >= self.max_session_connections:
            return self._refuse(session, f"session {session} has {self.max_session_connections} connections "
                                         f"open (max_session_connections)")
        self._drop(self._per_client, client)
        del self._unauthenticated[conn]
        self._sessions[conn] = session
        self._per_session[session] = self._per_session.get(session, 0) + 1
        return None

    def is_unauthenticated(self, conn: str) -> bool:
        return conn in self._unauthenticated

    def disconnected(self, conn: str) -> None:
        if conn in self._unauthenticated:
            self._drop(self._per_client, self._unauthenticated.pop(conn))
        elif conn in self._sessions:
            self._drop(self._per_session, self._sessions.pop(conn))

    @staticmethod
    def _drop(counts: dict[str, int], key: str) -> None:
        counts[key] -= 1
        if counts[key] <= 0:
            del counts[key]

    def _refuse(self, who: str, why: str) -> str:
        now = time.monotonic()
        if now - self._said.get(who, -1e9) >= 60:
            self._said[who] = now
            log.warning("refusing connections: %s", why)
        return why
