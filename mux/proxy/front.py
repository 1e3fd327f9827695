"""Before mitmproxy reads a connection: the egress relay's line naming the real client.

Every ``proxy-only`` session reaches the proxy through the egress relay, so at the
proxy they would all have the relay's one address, and share the per-address limit
on unauthenticated connections (``limits.max_unauthenticated``): one session's idle
flood would hold the others off until ``auth_timeout``. So the relay (helper/relay.c)
starts each connection with one line, in the manner of the PROXY protocol (v1)::

    MUX-RELAY <key> <client IPv4> <client port>\\r\\n

and the proxy counts, limits, logs and audits the connection under that address.
The key (``ProxyFiles.relay_env``, made once, mode 0600; the relay gets it through
``docker create --env-file``) is what makes the line believed: a line with another
key, or a malformed one, is stripped and the connection stays the socket's own
peer's (so a stale relay still works, with the shared limit, and a session that
writes such a line itself gains nothing; through the relay, the relay's own line
comes first and a session's is then just a bad request). The key only ever claims
an address for the limits: authentication is the session's secret, as before.

The first bytes are read here, then put back for mitmproxy (``StreamReader``'s
buffer: Python 3.11's, checked by :func:`install`). While they are awaited, the
connection counts as unauthenticated for its socket peer and waits at most
``auth_timeout``, as it would in mitmproxy.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import itertools
import logging
import time
from typing import Any

from mux.errors import ProxyError
from mux.proxy.files import RELAY_KEY_VAR, ProxyFiles
from mux.proxy.limits import Limits

log = logging.getLogger("mux.proxy")
MARKER = b"MUX-RELAY "
LONGEST = 128  # the longest line a relay writes, with room
Address = tuple[str, int]


class Front:
    def __init__(self, files: ProxyFiles, limits: Limits) -> None:
        self.files, self.limits = files, limits
        self.key = self._read_key()
        self._key_read = time.monotonic()
        # the socket's peer (the relay's address and port) -> the client it named,
        # until mitmproxy's client_connected takes it (MuxPolicy.client_connected)
        self.claimed: dict[Address, Address] = {}
        self._ids = itertools.count()
        self._said = -1e9

    def _read_key(self) -> str:
        try:
            text = self.files.relay_env.read_text()
        except OSError:
            return ""
        name, _, value = text.strip().partition("=")
        return value if name == RELAY_KEY_VAR and len(value) == 32 else ""

    def believed(self, key: str) -> bool:
        if self.key and hmac.compare_digest(key, self.key):
            return True
        # mux may have made the key since this proxy started (the first proxy-only session)
        if time.monotonic() - self._key_read > 1.0:
            self.key, self._key_read = self._read_key(), time.monotonic()
            return bool(self.key) and hmac.compare_digest(key, self.key)
        return False

    async def take_line(self, reader: asyncio.StreamReader, peer: Address) -> bool:
        """Read the connection's first bytes; note the client a relay line names; put
        back everything else. False: close the connection (nothing came in time, or a
        limit is reached)."""
        conn = f"front-{next(self._ids)}"
        why = self.limits.connected(conn, peer[0])
        if why is not None:
            return False
        try:
            data = await asyncio.wait_for(_first(reader), self.limits.auth_timeout)
        except (asyncio.TimeoutError, OSError):
            return False
        finally:
            self.limits.disconnected(conn)
        if data.startswith(MARKER):
            line, _, data = data.partition(b"\n")
            client = self.parse(line)
            if client is not None:
                self.claimed[peer] = client
        reader._buffer[0:0] = data  # type: ignore[attr-defined]  # mitmproxy reads them as the connection's first bytes
        return True

    def parse(self, line: bytes) -> Address | None:
        parts = line.rstrip(b"\r").decode("ascii", "replace").split(" ")
        try:
            _, key, host, port = parts
            address = ipaddress.IPv4Address(host)
            number = int(port)
        except ValueError:
            key, address, number = "", None, 0
        if address is None or not 0 < number < 65536 or not self.believed(key):
            now = time.monotonic()
            if now - self._said >= 60:
                self._said = now
                log.warning("a relay line that is not the relay's (bad key or form): ignored")
            return None
        return str(address), number

    def client(self, peer: Address | None) -> Address | None:
        """The client a relay named for this socket peer (once), or None."""
        return self.claimed.pop(peer, None) if peer is not None else None


async def _first(reader: asyncio.StreamReader) -> bytes:
    data = await reader.read(65536)
    while data and MARKER.startswith(data[:len(MARKER)]) and b"\n" not in data and len(data) < LONGEST:
        more = await reader.read(65536)  # a relay line cut short: the rest follows at once
        if not more:
            break
        data += more
    return data


_front: Front | None = None
_original: Any = None


def install(front: Front) -> None:
    """Read the relay line of every connection before mitmproxy's handler sees it."""
    global _front, _original
    from mitmproxy.proxy import mode_servers

    if not hasattr(asyncio.StreamReader(), "_buffer"):
        raise ProxyError("this Python's asyncio.StreamReader has no _buffer: mux's proxy front cannot run",
                         hint="run mux's proxy with Python 3.11 (mux's venv)")
    _front = front
    if _original is None:
        _original = mode_servers.ServerInstance.handle_stream
        mode_servers.ServerInstance.handle_stream = _handle_stream  # type: ignore[method-assign]


async def _handle_stream(self: Any, reader: Any, writer: Any = None) -> None:
    if _front is not None and isinstance(reader, asyncio.StreamReader) and writer is not None:
        peer = writer.get_extra_info("peername")
        if not await _front.take_line(reader, (str(peer[0]), int(peer[1])) if peer else ("?", 0)):
            writer.close()
            return
    await _original(self, reader, writer)


def front() -> Front | None:
    return _front
