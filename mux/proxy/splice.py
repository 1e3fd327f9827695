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
4. one thread (for all spliced tunnels) moves the bytes with non-blocking
   ``os.splice`` through a pipe per direction (in the kernel, without the GIL),
   passes half-closes on, and closes both sockets at the end.

The connection stays counted in the limits until the threads end (``Limits``), and
an idle one (no byte either way for ``idle_timeout``) is closed, as mitmproxy's
watchdog would. If the sockets cannot be taken over cleanly (a TLS layer still
wants to talk, data is still queued after a while), the tunnel stays mitmproxy's.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import select
import socket
import sys
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
        self.pump = Pump(idle_timeout, self._done)
        # The pump thread wants the GIL for a moment per chunk; by default a busy event
        # loop keeps it up to 5 ms before it must hand it over.
        sys.setswitchinterval(0.0005)

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
            if tries < 40 and handler is not None:  # the TCP layer may not be there yet
                asyncio.get_running_loop().call_later(0 if tries < 8 else 0.002, self._attempt, context, tries + 1)
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
        self.pump.add(Tunnel(client.id, fds, pending))
        # mitmproxy's clean-up (hooks through every addon) is Python work that would hold
        # the GIL while the pump carries the rest of the TLS handshake: a little later.
        handler_task = ios[0].handler
        if handler_task is not None:
            asyncio.get_running_loop().call_later(0.05, handler_task.cancel, "mux proxy: tunnel spliced")

    def _done(self, client_id: str) -> None:
        self.spliced.discard(client_id)
        self.finished(client_id)


class Tunnel:
    """One spliced tunnel: its two sockets, and per direction a pipe and what is in it."""

    def __init__(self, conn: str, fds: list[int], pending: list[bytes]) -> None:
        self.conn = conn
        self.fds = fds
        self.pending = pending  # read from side d by mitmproxy, not yet sent to the other
        self.pipes = [os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC) for _ in (0, 1)]
        for _, w in self.pipes:
            try:
                fcntl.fcntl(w, _F_SETPIPE_SZ, PIPE_SIZE)
            except OSError:
                pass  # the default 64 KiB pipe: slower, still right
        self.in_pipe = [0, 0]  # bytes of direction d in its pipe
        self.eof = [False, False]  # side d sent its last byte (and the other side was told)
        self.last = time.monotonic()
        self.closed = False

    def wants(self, side: int) -> int:
        """The epoll events socket ``side`` waits for."""
        events = 0
        if not self.eof[side] and not self.in_pipe[side] and not self.pending[side]:
            events |= select.EPOLLIN  # direction side: read from it
        other = 1 - side
        if self.in_pipe[other] or self.pending[other]:
            events |= select.EPOLLOUT  # direction other: write to it
        return events

    def move(self, d: int) -> None:
        """Move what can move in direction d (side d to side 1-d) without blocking.
        OSError (reset, broken pipe): the tunnel is over."""
        src, dst = self.fds[d], self.fds[1 - d]
        r, w = self.pipes[d]
        while True:
            if self.pending[d]:
                try:
                    sent = os.write(dst, self.pending[d])
                except BlockingIOError:
                    return
                self.pending[d] = self.pending[d][sent:]
                continue
            if self.in_pipe[d]:
                try:
                    self.in_pipe[d] -= os.splice(r, dst, self.in_pipe[d], flags=os.SPLICE_F_NONBLOCK)
                except BlockingIOError:
                    return
                self.last = time.monotonic()
                continue
            if self.eof[d]:
                return
            try:
                got = os.splice(src, w, CHUNK, flags=os.SPLICE_F_NONBLOCK)
            except BlockingIOError:
                return
            if got == 0:
                self.eof[d] = True
                _shutdown(dst, socket.SHUT_WR)  # a half-close passes on
                return
            self.in_pipe[d] = got

    @property
    def finished(self) -> bool:
        return all(self.eof) and not any(self.in_pipe) and not any(self.pending)

    def close(self) -> None:
        self.closed = True
        for fd in self.fds:
            os.close(fd)
        for r, w in self.pipes:
            os.close(r)
            os.close(w)


def _shutdown(fd: int, how: int) -> None:
    s = socket.socket(fileno=fd)
    try:
        s.shutdown(how)
    except OSError:
        pass
    finally:
        s.detach()  # the descriptor stays the tunnel's


class Pump:
    """One thread for every spliced tunnel: epoll, then non-blocking splices (the GIL
    is released in both), so a new tunnel starts no thread and a flood of them costs
    descriptors, which the limits bound, not threads."""

    def __init__(self, idle_timeout: float, done: Callable[[str], None]) -> None:
        self.idle = idle_timeout
        self.done = done
        self.epoll = select.epoll()
        self.by_fd: dict[int, tuple[Tunnel, int]] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None
        # add() (the event loop) and the pump thread both change a tunnel's registration:
        # without the lock, the pump could service a tunnel whose second socket is not
        # registered yet (its epoll.modify fails) or the loop register it with stale events.
        self.lock = threading.Lock()

    def add(self, tunnel: Tunnel) -> None:
        """From the event loop: the tunnel's sockets join the pump's epoll, which wakes
        the pump thread when they are ready (no wake-up of our own, no queue: each costs
        a switch of the GIL on the connection's way)."""
        with self.lock:
            for side, fd in enumerate(tunnel.fds):
                self.by_fd[fd] = (tunnel, side)
            for side, fd in enumerate(tunnel.fds):
                self.epoll.register(fd, tunnel.wants(side))
        if self.thread is None:
            self.loop = asyncio.get_running_loop()
            self.thread = threading.Thread(target=self._run, name="mux-splice", daemon=True)
            self.thread.start()

    def _run(self) -> None:
        swept = time.monotonic()
        while True:
            for fd, _ in self.epoll.poll(1.0):
                with self.lock:
                    found = self.by_fd.get(fd)
                    if found is not None and not found[0].closed:
                        self._service(found[0])
            if time.monotonic() - swept >= 1.0:
                swept = time.monotonic()
                with self.lock:
                    for tunnel in {t for t, _ in self.by_fd.values()}:
                        if swept - tunnel.last >= self.idle:
                            log.info("closing a spliced tunnel: idle for %.0f s (idle_timeout)", self.idle)
                            self._end(tunnel)

    def _service(self, tunnel: Tunnel) -> None:
        """One tunnel's moves (with the lock held). Any OSError ends that tunnel only:
        the pump thread carries every other tunnel and must not die with one."""
        try:
            for d in (0, 1):
                tunnel.move(d)
            if tunnel.finished:
                self._end(tunnel)
                return
            for side, fd in enumerate(tunnel.fds):
                self.epoll.modify(fd, tunnel.wants(side))
        except OSError:
            self._end(tunnel)

    def _end(self, tunnel: Tunnel) -> None:
        for fd in tunnel.fds:
            self.by_fd.pop(fd, None)
            try:
                self.epoll.unregister(fd)
            except OSError:
                pass
        tunnel.close()
        if self.loop is not None:
            try:
                self.loop.call_soon_threadsafe(self.done, tunnel.conn)
            except RuntimeError:
                pass  # the proxy is stopping
