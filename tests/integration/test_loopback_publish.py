"""A port published on 127.0.0.1 reaches only this machine (mux/egress/loopback.py).

A real neighbour: a network namespace joined to this host by a veth pair, with
127.0.0.1 routed to the host (as a LAN machine could route it). On Docker before
28, docker's nat PREROUTING DNAT lets it into a loopback publish; mux's raw-table
guard stops it, and a `mux forward` port was never reachable. The traffic stays
in this machine. The neighbour is removed afterwards, and so is the guard when
this test's mux run installed it (so the next run sees the hole again).
"""

from __future__ import annotations

import ipaddress
import json
import random
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mux.egress import loopback
from mux.engine.runner import quote
from tests.conftest import mux
from tests.integration.test_ports import Forward, forwards, get, new_session, serve_on_loopback, site  # noqa: F401

pytestmark = pytest.mark.docker

PROBE = ("import socket,sys\n"
         "try:\n"
         "    s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), 3)\n"
         "    s.sendall(b'GET /index.html HTTP/1.0\\r\\n\\r\\n'); s.settimeout(10); data = b''\n"
         "    while len(data) < 4096 and (chunk := s.recv(4096)): data += chunk\n"
         "    print(data.decode(errors='replace'))\n"
         "except OSError as e:\n"
         "    print('unreachable', e)\n")


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def free_slash30() -> ipaddress.IPv4Network:
    """A /30 in 10.231.0.0/16 that no address or route of this machine overlaps."""
    used = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True, check=True).stdout
    used += subprocess.run(["ip", "-4", "route"], capture_output=True, text=True, check=True).stdout
    nets = [ipaddress.ip_network(w, strict=False) for w in used.split() if "/" in w and w[0].isdigit()]
    for _ in range(100):
        net = ipaddress.ip_network(f"10.231.{random.randrange(256)}.{4 * random.randrange(64)}/30")
        if not any(net.overlaps(n) for n in nets if n.prefixlen > 0):
            return net
    raise AssertionError("no free /30 in 10.231.0.0/16")


class Neighbour:
    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:8]
        self.ns, host_end, far_end = f"mux-nb-{tag}", f"nbh{tag}", f"nbn{tag}"
        net = free_slash30()
        self.host_ip, self.ip = (str(a) for a in list(net.hosts()))
        ip("netns", "add", self.ns)
        ip("link", "add", host_end, "type", "veth", "peer", "name", far_end)
        ip("link", "set", far_end, "netns", self.ns)
        ip("addr", "add", f"{self.host_ip}/30", "dev", host_end)
        ip("link", "set", host_end, "up")
        ip("-n", self.ns, "addr", "add", f"{self.ip}/30", "dev", far_end)
        ip("-n", self.ns, "link", "set", far_end, "up")
        # The neighbour's own kernel sends 127.0.0.1 out of its interface: its lo stays
        # down (no local route) and route_localnet lets a loopback destination leave.
        subprocess.run(["ip", "netns", "exec", self.ns, "sysctl", "-qw", f"net.ipv4.conf.{far_end}.route_localnet=1"],
                       check=True)
        ip("-n", self.ns, "route", "add", "127.0.0.1/32", "via", self.host_ip, "dev", far_end)

    def fetch(self, port: int) -> str:
        return subprocess.run(["ip", "netns", "exec", self.ns, sys.executable, "-c", PROBE, str(port)],
                              capture_output=True, text=True, check=True, timeout=30).stdout

    def remove(self) -> None:
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)  # takes the veth pair with it


def guard_present() -> bool:
    return subprocess.run(list(loopback.CHECK), capture_output=True).returncode == 0


@pytest.fixture
def neighbour() -> Iterator[Neighbour]:
    had_guard = guard_present()
    nb = Neighbour()
    try:
        yield nb
    finally:
        nb.remove()
        if not had_guard:  # this test's mux installed it: leave the machine as found
            subprocess.run(list(loopback.INSTALL[:3]) + ["-D", *loopback.RULE], capture_output=True)


def workdir(files: dict[str, object], name: str) -> Path:
    """A workdir of its own per session, serving the same page."""
    work = Path(str(files["work"])).parent / name
    work.mkdir()
    (work / "index.html").write_text("hello from the session\n")
    return work


def published_port(name: str) -> int:
    listed = json.loads(mux("port", name, "--json", check=True).stdout)
    return int(listed[0]["host_port"])


def test_a_neighbour_reaches_no_loopback_publish(images, mux_home: Path, unique_name, site, forwards,  # noqa: F811
                                                 neighbour: Neighbour) -> None:
    version = subprocess.run(["docker", *loopback.VERSION], capture_output=True, text=True, check=True).stdout.strip()
    old = loopback.before_fix(version)
    serve = ("httpd", "-f", "-p", "8000", "-h", "/workspace")
    config = mux_home / "config.toml"
    plain = config.read_text()
    if old and not guard_present():
        # The hole, as mux published before the guard (loopback_guarded skips it):
        # docker's DNAT lets the neighbour in. This is what the guard must stop.
        config.write_text(plain.replace("[docker]\n", "[docker]\nloopback_guarded = true\n"))
        new_session(f"{unique_name}-open", workdir(site, "open"), "-p", "8000", command=serve)
        config.write_text(plain)
        exposed = published_port(f"{unique_name}-open")
        assert get(f"http://127.0.0.1:{exposed}/index.html") == b"hello from the session\n"
        assert "hello from the session" in neighbour.fetch(exposed)

        # `mux forward` listens on a real loopback socket: no DNAT, the kernel drops it.
        new_session(f"{unique_name}-fwd", workdir(site, "fwd"))
        serve_on_loopback(f"{unique_name}-fwd")
        fwd = Forward(f"{unique_name}-fwd", ":8000")
        forwards.append(fwd)
        local = fwd.local_port(8000)
        assert get(f"http://127.0.0.1:{local}/index.html") == b"hello from the session\n"
        assert neighbour.fetch(local).startswith("unreachable")
    else:
        exposed = None

    made = mux("-v", "new", "-p", "8000", unique_name, "--", *serve, cwd=site["work"])  # type: ignore[arg-type]
    assert made.returncode == 0, made.stderr
    port = published_port(unique_name)
    assert get(f"http://127.0.0.1:{port}/index.html") == b"hello from the session\n"
    assert neighbour.fetch(port).startswith("unreachable")
    if old:
        assert guard_present()
    if exposed is not None:  # the guard covers every loopback publish, the earlier one too
        assert "+ " + quote(loopback.CHECK) in made.stderr.splitlines()
        assert "+ " + quote(loopback.INSTALL) in made.stderr.splitlines()
        assert neighbour.fetch(exposed).startswith("unreachable")
        assert get(f"http://127.0.0.1:{exposed}/index.html") == b"hello from the session\n"
        # Installed once: the next `mux new -p` checks and finds it.
        again = mux("-v", "new", "-p", "8001", f"{unique_name}-2", cwd=workdir(site, "again"))
        assert again.returncode == 0, again.stderr
        assert "+ " + quote(loopback.CHECK) in again.stderr.splitlines()
        assert "+ " + quote(loopback.INSTALL) not in again.stderr.splitlines()
