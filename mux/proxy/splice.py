"""Tunnelled (not intercepted) connections at wire speed: their bytes leave Python.

Once a CONNECT was authenticated, filtered and its destination checked and pinned
(``MuxPolicy.http_connect``, ``server_connect``), and mitmproxy has read the
ClientHello and mux told it not to intercept (``tls_clienthello``), nothing more is
decided about the tunnel: every later byte only goes across. mitmproxy would still
read each chunk into Python, pass it through its layers and write it out again
(0.41x a direct download here). So mux takes the two sockets over:

1. both transports stop reading (nothing more reaches Python), and mux waits until
   what mitmproxy already queued (the ClientHello to the server) is written;
2. in one step of the event loop: the tunnel's TCP layer is told to ignore whatever
   it may still get, anything already read but not yet handled is taken, and both
   sockets are duplicated;
3. mitmproxy's connection is cancelled: it closes its descriptors (close, never
   shutdown: the sockets stay open through the duplicates) and forgets the tunnel;
4. two threads move the bytes with ``os.splice`` through a pipe each (in the kernel,
   without the GIL), pass half-closes on, and close both sockets at the end.

The connection stays counted in the limits until the threads end (``Limits``), and
an idle one (no byte either way for ``idle_timeout``) is closed, as mitmproxy's
watchdog would. If the sockets cannot be taken over cleanly (a TLS layer still
wants to talk, data is still queued after a while), the tunnel stays mitmproxy's.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("mux.proxy")
CHUNK = 1 << 20
PIPE_SIZE = 1 << 20
TRIES = 200  # x 5 ms: how long to wait for mitmproxy's queued bytes to be written
_F_SETPIPE_SZ = 1031


class Splicer:
    def __init__(self, idle_timeout: float, finished: Callable[[str], None]) -> None:
        self.idle_timeout = idle_timeout
        self.finished = finished  # called in the event loop with the client id, once both sockets are closed
        self.spliced: set[str] = set()  # client ids whose sockets mux holds

    def take(self, context: Any) -> None:
        """Take the tunnel of this (ignored) TLS context over, as soon as mitmproxy lets go."""
        loop = asyncio.get_running_loop()
        loop.call_soon(self._attempt, context, 0)

    def _attempt(self, context: Any, tries: int) -> None:
        from mitmproxy import ctx
        from mitmproxy.connection import ConnectionState
        from mitmproxy.proxy.layers.tcp import TCPLayer

        client, server = context.client, context.server
        handler = ctx.master.addons.get("proxyserver").connections.get(client.id)
        layer = context.layers[-1] if context.layers else None
        ios: list[Any] = [handler.transports.get(c) for c in (client, server)] if handler is not None else [None, None]
        if (handler is None or not isinstance(layer, TCPLayer) or layer.flow is not None
                or client.state is not ConnectionState.OPEN or server.state is not ConnectionState.OPEN
                or any(io is None or io.writer is None or io.reader is None for io in ios)):
            if tries < 20 and handler is not None:  # the TCP layer may not be there yet
                asyncio.get_running_loop().call_later(0.005, self._attempt, context, tries + 1)
            return
        if layer._handle_event != layer.relay_messages:
            return
        transports = [io.writer.transport for io in ios]
        for t in transports:
            t.pause_reading()
        if any(t.get_write_buffer_size() for t in transports):
            if tries < TRIES:
                asyncio.get_running_loop().call_later(0.005, self._attempt, context, tries + 1)
                for t in transports:  # let mitmproxy move what it holds, then look again
                    t.resume_reading()
                return
            for t in transports:
                t.resume_reading()
            return  # stays mitmproxy's
        # One step, no await: from here on mitmproxy neither reads nor writes these sockets.
        layer._handle_event = layer.done
        pending = [bytes(io.reader._buffer) for io in ios]
        for io in ios:
            io.reader._buffer.clear()
        fds = [os.dup(io.writer.get_extra_info("socket").fileno()) for io in ios]
        self.spliced.add(client.id)
        io_client = ios[0]
        if io_client.handler is not None:
            io_client.handler.cancel("mux proxy: tunnel spliced")
        Tunnel(client.id, fds[0], fds[1], pending, self.idle_timeout, self._done).start(asyncio.get_running_loop())

    def _done(self, client_id: str) -> None:
        self.spliced.discard(client_id)
        self.finished(client_id)


class Tunnel:
    """The two sockets of one spliced tunnel and the two threads that move its bytes."""

    def __init__(self, conn: str, client: int, server: int, pending: list[bytes], idle_timeout: float,
                 done: Callable[[str], None]) -> None:
        self.conn = conn
        self.socks = [socket.socket(fileno=client), socket.socket(fileno=server)]
        self.pending = pending  # read from side d by mitmproxy, not yet sent to the other
        self.idle = idle_timeout
        self.last = time.monotonic()
        self.done = done
        self.lock = threading.Lock()
        self.running = 2

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        for s in self.socks:
            s.setblocking(True)
            # Wake up now and then to see whether the tunnel is idle both ways.
            s.settimeout(None)
            tick = max(1.0, min(self.idle, 30.0))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO,
                         int(tick).to_bytes(8, "little") + (0).to_bytes(8, "little"))
        for d in (0, 1):
            threading.Thread(target=self._pump, args=(d,), name=f"mux-splice-{d}", daemon=True).start()

    def _pump(self, d: int) -> None:
        src, dst = self.socks[d], self.socks[1 - d]
        r, w = os.pipe()
        try:
            try:
                import fcntl

                fcntl.fcntl(w, _F_SETPIPE_SZ, PIPE_SIZE)
            except OSError:
                pass  # the default 64 KiB pipe: slower, still right
            if self.pending[d]:
                dst.sendall(self.pending[d])
            while True:
                try:
                    n = os.splice(src.fileno(), w, CHUNK)
                except BlockingIOError:  # SO_RCVTIMEO: nothing came for a while
                    if time.monotonic() - self.last >= self.idle:
                        log.info("closing a spliced tunnel: idle for %.0f s (idle_timeout)", self.idle)
                        self._break()
                        return
                    continue
                if n == 0:
                    dst.shutdown(socket.SHUT_WR)  # a half-close passes on
                    return
                self.last = time.monotonic()
                while n:
                    n -= os.splice(r, dst.fileno(), n)
        except OSError:
            self._break()
        finally:
            os.close(r)
            os.close(w)
            self._ended()

    def _break(self) -> None:
        for s in self.socks:  # the other thread wakes up too
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _ended(self) -> None:
        with self.lock:
            self.running -= 1
            last = self.running == 0
        if last:
            for s in self.socks:
                s.close()
            try:
                self.loop.call_soon_threadsafe(self.done, self.conn)
            except RuntimeError:
                pass  # the proxy is stopping
