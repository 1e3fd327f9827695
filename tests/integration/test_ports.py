"""Previews on a real engine: ports published with `mux new -p`, `mux port`,
and `mux forward` to servers that listen only on a session's own loopback."""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import docker, mux, remove_own, session_dir

pytestmark = pytest.mark.docker


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 (loopback test server)
        return response.read()


def port_is_free(port: int) -> bool:
    """Nothing listens there, and a server may bind it again (with SO_REUSEADDR, as
    servers do: the closed connections may still be in TIME_WAIT)."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=30).close()
        return False
    except ConnectionRefusedError:
        pass
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture
def site(tmp_path: Path) -> dict[str, object]:
    """A workdir with a page and a 2 MiB file of random bytes (served from /workspace)."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "index.html").write_text("hello from the session\n")
    blob = os.urandom(2 * 1024 * 1024)
    (work / "blob.bin").write_bytes(blob)
    return {"work": work, "blob_sha": hashlib.sha256(blob).hexdigest()}


def new_session(name: str, work: Path, *options: str, command: tuple[str, ...] = ()) -> None:
    result = mux("new", *options, name, *(("--", *command) if command else ()), cwd=work)
    assert result.returncode == 0, result.stderr


def serve_on_loopback(name: str, port: int = 8000) -> None:
    """busybox httpd on the container's 127.0.0.1 only: no -p can reach it."""
    started = mux("exec", name, "--", "httpd", "-p", f"127.0.0.1:{port}", "-h", "/workspace")
    assert started.returncode == 0, started.stderr


class Forward:
    """A `mux forward` in the foreground of its own process group, like a terminal's."""

    def __init__(self, *args: str, options: tuple[str, ...] = ()) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "mux", *options, "forward", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     start_new_session=True)
        assert self.proc.stdout is not None
        self.lines: list[str] = []
        while not (self.lines and self.lines[-1].startswith("Press Ctrl-C")):
            line = self.proc.stdout.readline()
            assert line, f"mux forward ended early: {self.proc.wait()} {self.proc.stderr.read()}"  # type: ignore[union-attr]
            self.lines.append(line.rstrip("\n"))

    def local_port(self, remote: int) -> int:
        for line in self.lines:  # Forwarding 127.0.0.1:LOCAL -> port REMOTE in session NAME
            words = line.split()
            if words[0] == "Forwarding" and words[4] == str(remote):
                return int(words[1].rsplit(":", 1)[1])
        raise AssertionError(f"no forward to {remote} in {self.lines}")

    def ctrl_c(self) -> tuple[int, str, str]:
        os.killpg(self.proc.pid, signal.SIGINT)  # what Ctrl-C sends: the whole foreground group
        out, err = self.proc.communicate(timeout=60)
        return self.proc.returncode, out, err

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@pytest.fixture
def forwards() -> Iterator[list[Forward]]:
    made: list[Forward] = []
    yield made
    for f in made:
        f.kill()


def test_publish_binds_loopback_and_mux_port_shows_it(images, mux_home, unique_name, site) -> None:
    new_session(unique_name, site["work"], "-p", "8000",  # type: ignore[arg-type]
                command=("httpd", "-f", "-p", "8000", "-h", "/workspace"))
    listed = json.loads(mux("port", unique_name, "--json", check=True).stdout)
    assert [(p["kind"], p["container_port"], p["protocol"], p["host_ip"]) for p in listed] == [
        ("published", 8000, "tcp", "127.0.0.1")]
    host_port = listed[0]["host_port"]
    bindings = json.loads(docker("container", "inspect", "--format", "{{json .HostConfig.PortBindings}}",
                                 f"mux-{unique_name}").stdout)
    assert bindings == {"8000/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}
    assert get(f"http://127.0.0.1:{host_port}/index.html") == b"hello from the session\n"
    table = mux("port", unique_name, check=True).stdout.splitlines()
    assert table[1].split() == ["8000/tcp", f"127.0.0.1:{host_port}", "published"]


def test_forward_reaches_a_loopback_only_server_with_no_tools_in_the_image(
        images, mux_home, unique_name, site, forwards) -> None:
    new_session(unique_name, site["work"])  # type: ignore[arg-type]
    serve_on_loopback(unique_name)
    # No nc, no socat, no shell tool does the forwarding: take busybox's nc away.
    docker("exec", "-u", "0", f"mux-{unique_name}", "rm", "/bin/nc")
    fwd = Forward(unique_name, ":8000")
    forwards.append(fwd)
    local = fwd.local_port(8000)
    base = f"http://127.0.0.1:{local}"

    listed = json.loads(mux("port", unique_name, "--json", check=True).stdout)
    assert listed == [{"kind": "forward", "container_port": 8000, "protocol": "tcp", "host_ip": "127.0.0.1",
                       "host_port": local, "pid": fwd.proc.pid}]

    paths = ["/index.html", "/blob.bin"] * 30
    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
        bodies = list(pool.map(lambda p: get(base + p), paths))
    assert bodies[0::2] == [b"hello from the session\n"] * 30
    assert {hashlib.sha256(b).hexdigest() for b in bodies[1::2]} == {site["blob_sha"]}

    code, out, err = fwd.ctrl_c()
    assert (code, out.splitlines()[-1]) == (0, "Stopped forwarding."), err
    assert port_is_free(local)
    assert json.loads(mux("port", unique_name, "--json", check=True).stdout) == []


def test_forward_to_a_session_on_an_internal_network(images, mux_home, unique_name, site, forwards,
                                                     own_instance) -> None:
    """No route from the host into the network is needed: docker carries the bytes."""
    network = f"mux-{unique_name}-internal"
    docker("network", "create", "--internal", "--label", f"mux.instance={own_instance}", network)
    try:
        new_session(unique_name, site["work"], "--no-proxy", "--network", network)  # type: ignore[arg-type]
        serve_on_loopback(unique_name, 8001)
        fwd = Forward(unique_name, "0:8001")
        forwards.append(fwd)
        assert get(f"http://127.0.0.1:{fwd.local_port(8001)}/index.html") == b"hello from the session\n"
        assert fwd.ctrl_c()[0] == 0
    finally:
        remove_own([f"mux-{unique_name}"], own_instance)  # only if it carries this test's label
        docker("network", "rm", network, check=False)


def test_a_connection_to_a_port_nothing_listens_on_says_so(images, mux_home, unique_name, site,
                                                          forwards) -> None:
    new_session(unique_name, site["work"])  # type: ignore[arg-type]
    fwd = Forward(unique_name, ":8002")
    forwards.append(fwd)
    assert any("nothing listens on port 8002" in line for line in fwd.proc.stderr.readline().splitlines())  # type: ignore[union-attr]
    with socket.create_connection(("127.0.0.1", fwd.local_port(8002)), timeout=30) as conn:
        assert conn.recv(1) == b""  # closed, nothing served
    code, _, err = fwd.ctrl_c()
    assert code == 0
    assert "mux: port 8002: nothing listens on port 8002 in the container (Connection refused)" in err


@pytest.mark.parametrize(("args", "code", "message"), [
    pytest.param(["{name}", "http"], 2, "invalid port 'http'", id="not-a-port"),
    pytest.param(["{name}", "70000"], 2, "ports are 1-65535", id="remote-out-of-range"),
    pytest.param(["{name}", "99999:80"], 2, "ports are 1-65535", id="local-out-of-range"),
    pytest.param(["{name}", "1:2:3"], 2, "invalid port '1:2:3'", id="three-parts"),
    pytest.param(["--address", "localhost", "{name}", "80"], 2, "--address: invalid address", id="address"),
    pytest.param(["no-such-session-here", "80"], 3, "no session named", id="no-session"),
    pytest.param(["{name}", "{busy}:80"], 1, "cannot listen on 127.0.0.1:{busy}", id="local-port-taken"),
    pytest.param(["{stopped}", "80"], 1, "is stopped", id="stopped-session"),
])
def test_forward_refusals(images, mux_home, unique_name, site, args: list[str], code: int, message: str) -> None:
    new_session(unique_name, site["work"])  # type: ignore[arg-type]
    stopped = f"{unique_name}-stopped"
    new_session(stopped, site["work"])  # type: ignore[arg-type]
    assert mux("stop", stopped).returncode == 0
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        values = {"name": unique_name, "stopped": stopped, "busy": busy.getsockname()[1]}
        result = mux("forward", *[a.format(**values) for a in args], timeout=60)
    assert result.returncode == code, result.stderr
    assert result.stderr.startswith("mux: error: ")
    assert message.format(**values) in result.stderr
    # Refused before anything reached the container: no helper was copied in.
    listing = docker("exec", f"mux-{unique_name}", "ls", "-a", "/").stdout.split()
    assert not [f for f in listing if f.startswith(".mux-forward")]


@pytest.mark.parametrize("spec", [
    pytest.param("70000", id="out-of-range"),
    pytest.param("8080:80/http", id="bad-protocol"),
    pytest.param("localhost:8080:80", id="host-name-address"),
    pytest.param("::1:8080:80", id="ipv6-without-brackets"),
])
def test_bad_publish_specs_are_refused_before_anything_runs(images, mux_home, unique_name, site, spec: str) -> None:
    result = mux("new", "-p", spec, unique_name, cwd=site["work"])  # type: ignore[arg-type]
    assert result.returncode == 2
    assert result.stderr.startswith("mux: error: --publish: ")
    assert docker("container", "inspect", f"mux-{unique_name}", check=False).returncode != 0
    assert not session_dir(unique_name).exists()


def test_a_published_port_in_use_leaves_nothing_behind(images, mux_home, unique_name, site) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        result = mux("new", "-p", f"{taken}:80", unique_name, cwd=site["work"])  # type: ignore[arg-type]
    assert result.returncode == 4
    assert f"already in use on this host: 127.0.0.1:{taken}" in result.stderr
    # docker run created the container before its start failed: mux removed it.
    assert docker("container", "inspect", f"mux-{unique_name}", check=False).returncode != 0
    assert not session_dir(unique_name).exists()


def test_a_stalled_client_holds_back_only_its_own_connection(images, mux_home, unique_name, site,
                                                             forwards) -> None:
    """Every connection shares one stream to the container; a client that stops
    reading must not stop the others (per-connection flow control)."""
    big = os.urandom(24 * 1024 * 1024)
    (site["work"] / "big.bin").write_bytes(big)  # type: ignore[operator]
    new_session(unique_name, site["work"])  # type: ignore[arg-type]
    serve_on_loopback(unique_name)
    fwd = Forward(unique_name, ":8000")
    forwards.append(fwd)
    local = fwd.local_port(8000)
    with socket.create_connection(("127.0.0.1", local), timeout=60) as stalled:
        stalled.sendall(b"GET /big.bin HTTP/1.0\r\n\r\n")
        assert stalled.recv(16) == b"HTTP/1.1 200 OK\r"  # the download has started; now it is not read
        for _ in range(10):
            assert get(f"http://127.0.0.1:{local}/index.html") == b"hello from the session\n"
        received = bytearray(b"HTTP/1.1 200 OK\r")
        while chunk := stalled.recv(1 << 20):
            received += chunk
    assert hashlib.sha256(bytes(received).partition(b"\r\n\r\n")[2]).digest() == hashlib.sha256(big).digest()
    assert fwd.ctrl_c()[0] == 0


def test_a_forward_outlives_a_session_restart(images, mux_home, unique_name, site, forwards) -> None:
    config = Path(os.environ["MUX_CONFIG"])
    config.write_text(config.read_text() + "stop_timeout = 1\n")  # httpd takes SIGHUP as "reload"
    new_session(unique_name, site["work"], command=("httpd", "-f", "-p", "127.0.0.1:8000", "-h", "/workspace"))
    fwd = Forward(unique_name, ":8000")
    forwards.append(fwd)
    url = f"http://127.0.0.1:{fwd.local_port(8000)}/index.html"
    assert get(url) == b"hello from the session\n"
    assert mux("stop", unique_name).returncode == 0
    assert mux("start", unique_name).returncode == 0
    for _ in range(50):  # until httpd listens again
        if docker("exec", f"mux-{unique_name}", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8000/",
                  check=False).returncode == 0:
            break
        time.sleep(0.1)
    assert get(url) == b"hello from the session\n"  # a new stream to the container, by itself
    code, _, err = fwd.ctrl_c()
    assert code == 0, err
