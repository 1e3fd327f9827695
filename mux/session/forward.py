"""`mux forward`: local ports to ports of a running session, through docker itself.

Every connection accepted on a local port travels, as frames, through one
`docker exec -i CONTAINER HELPER -m` that runs as long as the forward. HELPER
is mux-forward, a static binary (helper/forward.c) that mux copies into the
container once with `docker cp`; it opens each connection to the port on the
container's own loopback. So a connection costs a frame, not a process; a
forward needs nothing from the image (busybox, distroless and scratch alike),
reaches servers that listen on 127.0.0.1 only, needs no route between host and
container (sessions on --internal networks), and goes wherever docker commands
go (DOCKER_HOST=ssh://..., contexts).
"""

from __future__ import annotations

import hashlib
import ipaddress
import itertools
import queue
import re
import selectors
import signal
import socket
import struct
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from subprocess import PIPE, TimeoutExpired

from mux.engine import argv as A
from mux.engine.runner import Runner
from mux.errors import ConfigError, DockerError, MuxError
from mux.safetext import line
from mux.session import ports as P
from mux.session.sessions import Session, find

HELPERS = Path(__file__).parent / "forward_bin"
ARCHES = {"amd64": "amd64", "x86_64": "amd64", "arm64": "arm64", "aarch64": "arm64"}
MAPPING = re.compile(r"(?:(\d{0,5}):)?(\d{1,5})", re.ASCII)
MISSING = (126, 127)  # docker exec: the helper is not in the container (yet)


@dataclass(frozen=True)
class Mapping:
    local: int  # 0: any free port
    remote: int


def parse_mapping(text: str) -> Mapping:
    """``[LOCAL:]REMOTE`` as kubectl port-forward takes it; ``:REMOTE`` picks a free local port."""
    m = MAPPING.fullmatch(text)
    if m is None:
        raise ConfigError(f"invalid port {text!r}: use [LOCAL:]REMOTE, like 5173, 8080:80 or :80")
    local, remote = int(m[1] or 0) if m[1] is not None else int(m[2]), int(m[2])
    if not 1 <= remote <= 65535 or not 0 <= local <= 65535:
        raise ConfigError(f"invalid port {text!r}: ports are 1-65535 (LOCAL 0 or empty: any free port)")
    return Mapping(local, remote)


def parse_address(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise ConfigError(f"--address: invalid address {text!r}: use an IP address of this host, "
                          "like 127.0.0.1 (the default) or ::1") from None


def helper_binary(arch: str) -> Path:
    name = ARCHES.get(arch.strip())
    if name is None:
        raise MuxError(f"mux forward has no helper for this engine's architecture {arch.strip()!r}",
                       hint="it has helpers for amd64 and arm64; publish the port with `mux new -p` instead")
    return HELPERS / f"mux-forward-{name}"


def helper_target(binary: Path) -> str:
    """Where the helper lives in the container: named for its content, so a
    newer mux never runs an older copy (nor overwrites one in use)."""
    return f"/.mux-forward-{hashlib.sha256(binary.read_bytes()).hexdigest()[:12]}"


def running_session(runner: Runner, name: str) -> Session:
    session = find(runner, name)
    if not session.running:
        raise MuxError(f"session {name!r} is {session.status}", hint=f"`mux start {name}` first")
    return session


def install_helper(runner: Runner, container: str, ports: list[int]) -> tuple[str, list[int]]:
    """Make sure the helper is in the container; return its path and the ports
    nothing listens on yet. One `docker exec` per port, plus a `docker cp` the
    first time."""
    binary = helper_binary(runner.query(A.server_arch_argv()).stdout)
    target = helper_target(binary)
    if runner.dry_run:
        runner.run(A.copy_in_argv(binary, container, target))
        return target, []
    idle = []
    for port in ports:
        result = runner.query(A.probe_argv(container, target, port), check=False)
        if result.returncode in MISSING:
            runner.run(A.copy_in_argv(binary, container, target))
            result = runner.query(A.probe_argv(container, target, port), check=False)
        # 1 is the helper's "nothing listens" only when it says so: docker exits 1 too
        # (a session that stopped meanwhile).
        helper_said = result.stderr.startswith("mux-forward: nothing listens")
        if result.returncode in MISSING or result.returncode > 1 or (result.returncode == 1 and not helper_said):
            raise DockerError(f"the forward helper does not run in container {container[:12]}: "
                              f"{result.stderr.strip() or f'exit status {result.returncode}'}",
                              argv=result.argv, returncode=result.returncode, stderr=result.stderr)
        if result.returncode == 1:
            idle.append(port)
    return target, idle


def bind(address: str, mapping: Mapping) -> socket.socket:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((address, mapping.local))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        shown = f"[{address}]" if family == socket.AF_INET6 else address
        raise MuxError(f"cannot listen on {shown}:{mapping.local}: {exc.strerror}",
                       hint=f"pick another local port, like {mapping.local + 1 if mapping.local else 8080}:"
                       f"{mapping.remote}, or :{mapping.remote} for any free one") from None
    return sock


WINDOW = 4 * 1024 * 1024  # as helper/forward.c: unacknowledged bytes per connection and direction
CHUNK = 65536
OPEN, DATA, EOF, CLOSE, ACK = 1, 2, 3, 4, 5
HEADER = struct.Struct(">IBI")  # connection id, frame type, payload length
# The helper sends at most its CHUNK (256 KiB, helper/forward.c) a frame: a longer one,
# an unknown type or an ACK that is not 4 bytes is a broken (or hostile) tunnel.
MAX_FRAME = 256 * 1024
FROM_HELPER = {DATA, EOF, CLOSE, ACK}


class Tunnel:
    """One `docker exec -i CONTAINER HELPER -m` carrying every connection as frames
    (the protocol is described in helper/forward.c). A connection costs a frame,
    not a process; each has two threads here, one per direction."""

    def __init__(self, runner: Runner, container: str, helper: str) -> None:
        self.proc = runner.spawn(A.tunnel_argv(container, helper), stdin=PIPE, stdout=PIPE)
        self.conns: dict[int, Connection] = {}
        self.ended = False
        self.lock = threading.Lock()  # frames are written whole, one at a time
        self.ids = itertools.count(1)
        threading.Thread(target=self._demux, daemon=True).start()

    @property
    def alive(self) -> bool:
        return not self.ended and self.proc.poll() is None

    def send(self, conn_id: int, kind: int, payload: bytes = b"") -> None:
        assert self.proc.stdin is not None
        try:
            with self.lock:
                self.proc.stdin.write(HEADER.pack(conn_id, kind, len(payload)) + payload)
                self.proc.stdin.flush()
        except (OSError, ValueError):  # the tunnel is gone; _demux ends every connection
            pass

    def open(self, sock: socket.socket, remote: int) -> None:
        conn = Connection(self, next(self.ids), sock, remote)
        with self.lock:
            ended = self.ended
            if not ended:
                self.conns[conn.id] = conn
        if ended:  # gone between the caller's check and now: the client sees a close
            sock.close()
            return
        self.send(conn.id, OPEN, struct.pack(">H", remote))
        conn.start()

    def forget(self, conn: Connection) -> None:
        with self.lock:
            self.conns.pop(conn.id, None)

    def _demux(self) -> None:
        out = self.proc.stdout
        assert out is not None
        while True:
            head = out.read(HEADER.size)
            if len(head) < HEADER.size:
                break
            conn_id, kind, length = HEADER.unpack(head)
            if length > MAX_FRAME or kind not in FROM_HELPER or (kind == ACK and length != 4):
                print(f"mux: the forward tunnel sent a bad frame (type {kind}, {length} bytes); "
                      "closing it", file=sys.stderr, flush=True)
                self.proc.kill()
                break
            payload = out.read(length) if length else b""
            if len(payload) < length:
                break
            with self.lock:
                conn = self.conns.get(conn_id)
            if conn is not None:
                conn.receive(kind, payload)
        with self.lock:
            self.ended = True
            conns = list(self.conns.values())
        for conn in conns:
            conn.receive(CLOSE, b"")
        assert self.proc.stderr is not None
        err = self.proc.stderr.read().decode(errors="replace").strip()
        if self.proc.wait() and err:
            print(f"mux: the forward tunnel ended: {line(err.splitlines()[-1])}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.proc.stdin is not None:
            try:
                self.proc.stdin.close()  # the helper ends, and with it every connection
            except OSError:
                pass
        try:
            self.proc.wait(timeout=5)
        except TimeoutExpired:
            self.proc.terminate()
            self.proc.wait()


class Connection:
    """One forwarded connection: socket -> DATA frames (within the window), and
    frames -> socket (acknowledged once written)."""

    def __init__(self, tunnel: Tunnel, conn_id: int, sock: socket.socket, remote: int) -> None:
        self.tunnel = tunnel
        self.id = conn_id
        self.sock = sock
        self.remote = remote
        self.inbox: queue.SimpleQueue[tuple[int, bytes]] = queue.SimpleQueue()
        self.credit = threading.Condition()
        self.unacked = 0
        self.pending = 0  # bytes from the helper not yet acknowledged (at most WINDOW)
        self.closed = False
        self.ends = 2  # the two directions still running

    def start(self) -> None:
        threading.Thread(target=self._upstream, daemon=True).start()
        threading.Thread(target=self._downstream, daemon=True).start()

    def receive(self, kind: int, payload: bytes) -> None:
        if kind == ACK:
            with self.credit:
                self.unacked -= struct.unpack(">I", payload)[0]
                self.credit.notify()
        elif kind == CLOSE:
            with self.credit:
                self.closed = True
                self.credit.notify()
            if payload:
                print(f"mux: port {self.remote}: {line(payload)}", file=sys.stderr, flush=True)
            self.inbox.put((CLOSE, b""))
            try:
                self.sock.shutdown(socket.SHUT_RDWR)  # wakes _upstream's recv
            except OSError:
                pass
        else:
            if kind == DATA:
                with self.credit:
                    self.pending += len(payload)
                    over = self.pending > WINDOW  # the helper ignored the window: not ours to buffer
                if over:
                    self._abort()
                    return
            self.inbox.put((kind, payload))

    def _upstream(self) -> None:
        """From the local client to the container."""
        try:
            while True:
                with self.credit:
                    while self.unacked >= WINDOW and not self.closed:
                        self.credit.wait()
                    if self.closed:
                        return
                    room = min(CHUNK, WINDOW - self.unacked)
                data = self.sock.recv(room)
                if not data:
                    self.tunnel.send(self.id, EOF)
                    return
                with self.credit:
                    self.unacked += len(data)
                self.tunnel.send(self.id, DATA, data)
        except OSError:
            self._abort()
        finally:
            self._end()

    def _downstream(self) -> None:
        """From the container to the local client."""
        delivered = 0
        try:
            while True:
                kind, payload = self.inbox.get()
                if kind == DATA:
                    self.sock.sendall(payload)
                    delivered += len(payload)
                    # Acknowledged in batches: each frame up the stream is work for docker.
                    if delivered >= WINDOW // 4 or self.inbox.empty():
                        with self.credit:
                            self.pending -= delivered
                        self.tunnel.send(self.id, ACK, struct.pack(">I", delivered))
                        delivered = 0
                elif kind == EOF:
                    self.sock.shutdown(socket.SHUT_WR)
                    return
                elif kind == CLOSE:
                    return
        except OSError:
            self._abort()
        finally:
            self._end()

    def _abort(self) -> None:
        with self.credit:
            if self.closed:
                return
            self.closed = True
            self.credit.notify()
        self.tunnel.send(self.id, CLOSE)
        self.inbox.put((CLOSE, b""))
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _end(self) -> None:
        with self.credit:
            self.ends -= 1
            done = self.ends == 0
        if done:
            self.sock.close()
            self.tunnel.forget(self)


class Forwarder:
    """Accept on the bound sockets until interrupted; every connection goes
    through one tunnel (started again if it ended, say the session restarted)."""

    def __init__(self, runner: Runner, container: str, helper: str,
                 listeners: list[tuple[socket.socket, Mapping]]) -> None:
        self.runner = runner
        self.container = container
        self.helper = helper
        self.listeners = listeners
        self.tunnel = Tunnel(runner, container, helper)

    def serve(self) -> None:
        selector = selectors.DefaultSelector()
        for sock, mapping in self.listeners:
            selector.register(sock, selectors.EVENT_READ, mapping)
        try:
            while True:
                for key, _ in selector.select():
                    try:
                        conn, _ = key.fileobj.accept()  # type: ignore[union-attr]
                    except OSError:  # the client gave up before we got to it
                        continue
                    if not self.tunnel.alive:
                        self.tunnel = Tunnel(self.runner, self.container, self.helper)
                    self.tunnel.open(conn, key.data.remote)
        finally:
            selector.close()
            self.close()

    def close(self) -> None:
        for sock, _ in self.listeners:
            sock.close()
        self.tunnel.close()


def forward(runner: Runner, name: str, specs: list[str], *, address: str = "127.0.0.1",
            say: Callable[[str], None] = print) -> None:
    """Forward until Ctrl-C (or SIGTERM); returns normally then."""
    mappings = [parse_mapping(s) for s in specs]
    address = parse_address(address)
    if ipaddress.ip_address(address).is_unspecified:
        print(f"mux: warning: forwarding on {address}: other machines can reach these ports",
              file=sys.stderr, flush=True)
    session = running_session(runner, name)
    listeners: list[tuple[socket.socket, Mapping]] = []
    if not runner.dry_run:
        try:
            for m in mappings:
                listeners.append((bind(address, m), m))
        except BaseException:
            for sock, _ in listeners:
                sock.close()
            raise
    try:
        helper, idle = install_helper(runner, session.id, sorted({m.remote for m in mappings}))
        if runner.dry_run:
            runner.show(A.tunnel_argv(session.id, helper))
            return
        ports = [P.Port("forward", m.remote, "tcp", address, sock.getsockname()[1])
                 for sock, m in listeners]
        record = P.record_forwards(name, session.id, ports)
    except BaseException:
        for sock, _ in listeners:
            sock.close()
        raise
    try:
        for port in ports:  # a result, even with -q: the local port may have been picked here
            print(f"Forwarding {P.host_address(port)} -> port {port.container_port} in session {name}",
                  flush=True)
        for remote in idle:
            print(f"mux: warning: nothing listens on port {remote} in session {name} yet; "
                  "connections fail until something does", file=sys.stderr, flush=True)
        say("Press Ctrl-C to stop.")
        Forwarder(runner, session.id, helper, listeners).serve()
    except KeyboardInterrupt:
        # A second Ctrl-C (or the SIGINT a process group gets) must not cut the clean-up short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        say("Stopped forwarding.")
    finally:
        for sock, _ in listeners:
            sock.close()
        record.unlink(missing_ok=True)
