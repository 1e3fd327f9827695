"""`mux forward`: local ports to ports of a running session, through docker itself.

Each connection accepted on a local port becomes one `docker exec -i CONTAINER
HELPER PORT`, whose stdin and stdout *are* the accepted socket: docker carries
the bytes, so no copy loop runs in Python. HELPER is mux-forward, a static
binary (helper/forward.c) that mux copies into the container once with `docker
cp`; it connects to the port on the container's own loopback. So a forward
needs nothing from the image (busybox, distroless and scratch images alike),
reaches servers that listen on 127.0.0.1 only, needs no route between host and
container (sessions on --internal networks), and goes wherever docker commands
go (DOCKER_HOST=ssh://..., contexts).
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import selectors
import signal
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from subprocess import Popen

from mux import argv as A
from mux import ports as P
from mux.errors import ConfigError, DockerError, MuxError
from mux.runner import Runner
from mux.sessions import Session, find

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
        result = runner.query(A.forward_argv(container, target, port, probe=True), check=False)
        if result.returncode in MISSING:
            runner.run(A.copy_in_argv(binary, container, target))
            result = runner.query(A.forward_argv(container, target, port, probe=True), check=False)
        if result.returncode in MISSING or result.returncode > 1:
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


class Forwarder:
    """Accept on the bound sockets until interrupted; one `docker exec` per connection."""

    def __init__(self, runner: Runner, container: str, helper: str,
                 listeners: list[tuple[socket.socket, Mapping]]) -> None:
        self.runner = runner
        self.container = container
        self.helper = helper
        self.listeners = listeners
        self.live: set[Popen[bytes]] = set()
        self.lock = threading.Lock()

    def serve(self) -> None:
        selector = selectors.DefaultSelector()
        for sock, mapping in self.listeners:
            selector.register(sock, selectors.EVENT_READ, mapping)
        try:
            while True:
                for key, _ in selector.select():
                    self._accept(key.fileobj, key.data)  # type: ignore[arg-type]
        finally:
            selector.close()
            self.close()

    def _accept(self, sock: socket.socket, mapping: Mapping) -> None:
        try:
            conn, _ = sock.accept()
        except OSError:  # the client gave up before we got to it
            return
        try:
            proc = self.runner.spawn(A.forward_argv(self.container, self.helper, mapping.remote),
                                     stdin=conn.fileno(), stdout=conn.fileno())
        finally:
            conn.close()  # docker holds it now; the connection ends when docker exits
        with self.lock:
            self.live.add(proc)
        threading.Thread(target=self._reap, args=(proc, mapping), daemon=True).start()

    def _reap(self, proc: Popen[bytes], mapping: Mapping) -> None:
        assert proc.stderr is not None
        err = proc.stderr.read().decode(errors="replace").strip()
        code = proc.wait()
        with self.lock:
            self.live.discard(proc)
        if code and err:
            line = err.splitlines()[-1].removeprefix("mux-forward: ")
            print(f"mux: port {mapping.remote}: {line}", file=sys.stderr, flush=True)

    def close(self) -> None:
        for sock, _ in self.listeners:
            sock.close()
        with self.lock:
            procs = list(self.live)
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait()


def forward(runner: Runner, name: str, specs: list[str], *, address: str = "127.0.0.1",
            say: Callable[[str], None] = print) -> None:
    """Forward until Ctrl-C (or SIGTERM); returns normally then."""
    mappings = [parse_mapping(s) for s in specs]
    address = parse_address(address)
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
            for m in mappings:
                runner.show(A.forward_argv(session.id, helper, m.remote))
            return
        ports = [P.Port("forward", m.remote, "tcp", address, sock.getsockname()[1])
                 for sock, m in listeners]
        record = P.record_forwards(name, ports)
    except BaseException:
        for sock, _ in listeners:
            sock.close()
        raise
    try:
        if ipaddress.ip_address(address).is_unspecified:
            print(f"mux: warning: forwarding on {address}: other machines can reach these ports",
                  file=sys.stderr, flush=True)
        for port in ports:
            say(f"Forwarding {P.host_address(port)} -> port {port.container_port} in session {name}")
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
