"""The forward helper: the binaries in mux/session/forward_bin are what helper/forward.c
builds, and its frame protocol (described there) on a real engine, in an image
with nothing but busybox."""

from __future__ import annotations

import hashlib
import os
import select
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mux.session import forward as F
from mux.session.forward import HELPERS
from tests.conftest import BUSYBOX, ROOT, docker

HEADER = struct.Struct(">IBI")


def test_committed_helpers_are_the_build_of_the_source(tmp_path: Path) -> None:
    # The suite's own interpreter (the set-up's venv, with the dev extra's ziglang), not PATH's python3.
    subprocess.run(["bash", str(ROOT / "helper" / "build.sh"), str(tmp_path)], check=True, timeout=900,
                   env={**os.environ, "PYTHON": sys.executable})
    for arch in ("amd64", "arm64"):
        assert (tmp_path / f"mux-forward-{arch}").read_bytes() == (HELPERS / f"mux-forward-{arch}").read_bytes(), (
            f"mux/session/forward_bin/mux-forward-{arch} is stale: run `make helper` and commit the result")
        assert (HELPERS / f"mux-forward-{arch}").stat().st_mode & 0o755 == 0o755


def test_window_is_the_same_on_both_ends() -> None:
    source = (ROOT / "helper" / "forward.c").read_text()
    assert "#define WINDOW (4 * 1024 * 1024)" in source and F.WINDOW == 4 * 1024 * 1024
    # mux refuses a frame longer than the helper's chunk as a broken tunnel
    assert "#define CHUNK (256 * 1024)" in source and F.MAX_FRAME == 256 * 1024


class Helper:
    """`docker exec -i CONTAINER /fwd -m`, spoken to frame by frame."""

    def __init__(self, container: str) -> None:
        self.proc = subprocess.Popen(["docker", "exec", "-i", container, "/fwd", "-m"], bufsize=0,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.pending = b""  # read from the pipe, not yet taken as frames

    def send(self, conn: int, kind: int, payload: bytes = b"") -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(HEADER.pack(conn, kind, len(payload)) + payload)
        self.proc.stdin.flush()

    def _fill(self, size: int, wait: float) -> bool:
        out = self.proc.stdout
        assert out is not None
        while len(self.pending) < size:
            if not select.select([out], [], [], wait)[0]:
                return False
            chunk = out.read(1 << 20)
            assert chunk, "the helper ended"
            self.pending += chunk
        return True

    def frame(self, wait: float = 60) -> tuple[int, int, bytes] | None:
        """The next frame, or None when none starts within ``wait`` seconds."""
        if not self._fill(HEADER.size, wait):
            return None
        conn, kind, length = HEADER.unpack(self.pending[:HEADER.size])
        assert self._fill(HEADER.size + length, 60)
        payload = self.pending[HEADER.size:HEADER.size + length]
        self.pending = self.pending[HEADER.size + length:]
        return conn, kind, payload

    def close(self) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        return self.proc.wait(timeout=60)


@pytest.fixture
def box(images, cleanup_containers, unique_name, own_instance) -> str:
    """busybox with the helper at /fwd and httpd on its loopback only, serving 10 MiB."""
    name = f"ports-helper-{unique_name}"
    cleanup_containers.append(name)
    docker("run", "-d", "--name", name, "--label", f"mux.instance={own_instance}", BUSYBOX, "sleep", "300")
    docker("cp", str(HELPERS / "mux-forward-amd64"), f"{name}:/fwd")
    blob = os.urandom(10 * 1024 * 1024)
    subprocess.run(["docker", "exec", "-i", name, "sh", "-c", "mkdir /www && cat > /www/blob"], input=blob, check=True)
    docker("exec", "-d", name, "httpd", "-f", "-p", "127.0.0.1:8123", "-h", "/www")
    probe = ["exec", name, "sh", "-c", "for i in $(seq 50); do /fwd -z 8123 && exit 0; sleep 0.2; done; exit 1"]
    assert docker(*probe, check=False).returncode == 0
    return name


def test_usage_and_probe(box: str) -> None:
    usage = docker("exec", box, "/fwd", check=False)
    assert (usage.returncode, usage.stderr) == (2, "usage: mux-forward -m | -z PORT\n")
    bad = docker("exec", box, "/fwd", "-z", "0", check=False)
    assert (bad.returncode, bad.stderr) == (2, "mux-forward: invalid port 0\n")
    assert docker("exec", box, "/fwd", "-z", "8123").returncode == 0
    closed = docker("exec", box, "/fwd", "-z", "8124", check=False)
    assert (closed.returncode, closed.stderr) == (
        1, "mux-forward: nothing listens on port 8124 in the container (Connection refused)\n")


def test_frames_flow_control_and_refusal(box: str) -> None:
    """No more than WINDOW unacknowledged bytes per connection; the rest comes as
    acknowledged; a refused connection is a CLOSE saying why; others go on meanwhile."""
    expected = hashlib.sha256(subprocess.run(["docker", "exec", box, "cat", "/www/blob"],
                                             capture_output=True, check=True).stdout).hexdigest()
    helper = Helper(box)
    helper.send(1, F.OPEN, struct.pack(">H", 8123))
    request = b"GET /blob HTTP/1.0\r\n\r\n"
    helper.send(1, F.DATA, request)
    helper.send(1, F.EOF)
    body, held, acked = b"", 0, 0
    deadline = time.monotonic() + 120
    while held < F.WINDOW and time.monotonic() < deadline:  # read without acknowledging
        frame = helper.frame(wait=5)
        if frame is None:
            break
        if frame[:2] == (1, F.ACK):  # the request reached the server
            acked += struct.unpack(">I", frame[2])[0]
            continue
        assert frame[:2] == (1, F.DATA)
        held += len(frame[2])
        body += frame[2]
    assert acked == len(request)
    assert held == F.WINDOW  # the helper stopped at the window, not before, not after
    assert helper.frame(wait=1) is None

    helper.send(2, F.OPEN, struct.pack(">H", 8124))  # nothing listens there
    assert helper.frame() == (2, F.CLOSE, b"nothing listens on port 8124 in the container (Connection refused)")

    helper.send(1, F.ACK, struct.pack(">I", held))
    while True:
        frame = helper.frame()
        assert frame is not None and frame[0] == 1
        if frame[1] == F.EOF:
            break
        assert frame[1] == F.DATA
        body += frame[2]
        helper.send(1, F.ACK, struct.pack(">I", len(frame[2])))
    head, _, payload = body.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert hashlib.sha256(payload).hexdigest() == expected
    assert helper.close() == 0  # mux gone (stdin closed): the helper ends


def test_a_server_on_ipv6_loopback_only_is_reached(images, cleanup_containers, unique_name, own_instance) -> None:
    """Node's `localhost` may mean ::1 alone: after 127.0.0.1 refuses, ::1 is tried."""
    name = f"ports-v6-{unique_name}"
    cleanup_containers.append(name)
    docker("run", "-d", "--name", name, "--label", f"mux.instance={own_instance}",
           "--sysctl", "net.ipv6.conf.all.disable_ipv6=0", "--sysctl", "net.ipv6.conf.lo.disable_ipv6=0",
           BUSYBOX, "sleep", "300")
    docker("cp", str(HELPERS / "mux-forward-amd64"), f"{name}:/fwd")
    docker("exec", "-d", name, "httpd", "-f", "-p", "[::1]:8123", "-h", "/etc")
    probe = ["exec", name, "sh", "-c", "for i in $(seq 50); do /fwd -z 8123 && exit 0; sleep 0.2; done; exit 1"]
    assert docker(*probe, check=False).returncode == 0
    helper = Helper(name)
    helper.send(7, F.OPEN, struct.pack(">H", 8123))
    helper.send(7, F.DATA, b"GET /passwd HTTP/1.0\r\n\r\n")
    helper.send(7, F.EOF)
    body = b""
    while (frame := helper.frame()) is not None and frame[1] != F.EOF:
        if frame[1] == F.DATA:
            body += frame[2]
    assert body.startswith(b"HTTP/1.1 200 OK") and body.endswith(b"root:x:0:0:root:/root:/bin/sh\n")
    assert helper.close() == 0
