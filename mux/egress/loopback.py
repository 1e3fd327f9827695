"""Ports published on 127.0.0.1 reach only this machine, on every Docker engine.

Docker before 28 publishes a port with a nat PREROUTING DNAT (any packet whose
destination is a local address, 127.0.0.1 included, is rewritten to the
container) as well as docker-proxy's loopback socket. The DNAT runs before the
kernel's martian check, so a neighbour on the network that routes 127.0.0.1 to
this host reaches the "loopback-only" port (reproduced with a neighbour network
namespace: tests/integration/test_loopback_publish.py). Docker 28 adds, per
port, a raw-table rule dropping such packets unless they came in on ``lo``.

mux does the same for every engine older than 28: one raw-table rule for all of
127.0.0.0/8 (the kernel would drop these packets as martians anyway, had the
DNAT not rescued them), installed once (``iptables -C`` first) and left in place
(it lasts until reboot; the next `mux new -p` puts it back). Where mux cannot
install it (not root, no iptables, a remote engine's host), a loopback publish
is refused, exit 2, naming the engine version and the ways out, unless
``[docker] loopback_guarded = true`` says the engine's host has the rule.

Only a spec with a 127.0.0.0/8 address costs anything: one ``docker version``
(once per mux command, and for a local engine once per dockerd: measured here
30-130 ms on the shared machine) and, on an old engine, one ``iptables -C`` (~3 ms).
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import weakref
from collections.abc import Iterable

from mux import paths
from mux.engine import clis as engine_cli
from mux.engine.argv import EngineArgv
from mux.engine.runner import Runner, quote
from mux.errors import ConfigError

FIXED_IN = (28, 0)  # the first Docker release that drops non-lo packets to published 127.0.0.1 ports
RULE = ("PREROUTING", "-d", "127.0.0.0/8", "!", "-i", "lo", "-j", "DROP")
CHECK = ("iptables", "-t", "raw", "-C", *RULE)
INSTALL = ("iptables", "-t", "raw", "-I", *RULE)
VERSION = ("version", "--format", "{{.Server.Version}}")  # an engine command (EngineArgv), verb first
_versions: weakref.WeakKeyDictionary[Runner, str] = weakref.WeakKeyDictionary()  # per mux command


def address(spec: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The host address of a publish spec as mux/validate.py normalises it, as docker
    reads it: an IPv4-mapped IPv6 address is the IPv4 one (Go's To4)."""
    text = spec[1:spec.index("]")] if spec.startswith("[") else spec.split(":", 1)[0]
    ip = ipaddress.ip_address(text)
    return ip.ipv4_mapped or ip if isinstance(ip, ipaddress.IPv6Address) else ip


def loopback_v4(specs: Iterable[str]) -> list[str]:
    """The specs docker publishes with a DNAT to a 127.0.0.0/8 address (::1 it leaves to
    docker-proxy alone, and the kernel never accepts ::1 from another interface)."""
    return [s for s in specs if address(s).version == 4 and address(s).is_loopback]


def engine_version(runner: Runner) -> str:
    """The engine's version (docker's Server.Version), asked once per mux command; a
    local engine's is kept under DATA/engines/ for as long as its socket is the same
    file (a new dockerd, after an upgrade or downgrade, makes a new socket)."""
    if runner not in _versions:
        socket = _socket_id(runner)
        version = _cached(runner.engine.host, socket) if socket else None
        if version is None:
            out = runner.query(EngineArgv(VERSION)).stdout.strip()
            version = "".join(c if c.isprintable() else "?" for c in out[:64])
            if socket:
                _keep(runner.engine.host, socket, version)
        _versions[runner] = version
    return _versions[runner]


def _socket_id(runner: Runner) -> str | None:
    if runner.engine.socket is None or runner.dry_run:
        return None
    try:
        st = os.stat(runner.engine.socket)
    except OSError:
        return None
    return f"{st.st_dev}:{st.st_ino}:{st.st_mtime_ns}"


def _cache_path(host: str) -> str:
    import hashlib


    return os.path.join(paths.data_dir(), "engines", f"version-{hashlib.sha256(host.encode()).hexdigest()[:16]}.json")


def _cached(host: str, socket: str) -> str | None:
    import json

    try:
        with open(_cache_path(host)) as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    if isinstance(data, dict) and data.get("host") == host and data.get("socket") == socket:
        version = data.get("version")
        return version if isinstance(version, str) and version.isprintable() and len(version) <= 64 else None
    return None


def _keep(host: str, socket: str, version: str) -> None:
    import json

    path = _cache_path(host)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as fh:
            json.dump({"host": host, "socket": socket, "version": version}, fh)
    except OSError:
        pass  # a cache only: next time asks again


def before_fix(version: str) -> bool:
    """Whether an engine of ``version`` lacks Docker 28's guard. An unreadable version
    counts as old: the guard is harmless where it is not needed."""
    m = re.match(r"(\d+)\.(\d+)", version)
    return m is None or (int(m[1]), int(m[2])) < FIXED_IN


def ensure_guard(runner: Runner, specs: Iterable[str], *, guarded: bool, session: str) -> None:
    """Make loopback publishes of ``specs`` local-only, or refuse them (ConfigError)."""
    loop = loopback_v4(specs)
    if not loop or guarded:
        return

    if runner.engine.kind == engine_cli.PODMAN and engine_cli.rootless():
        return  # rootlessport listens on this machine's 127.0.0.1 itself: no DNAT to guard
    version = engine_version(runner)
    if not before_fix(version):
        return
    why = _cannot_install(runner)
    if why is None:
        if runner.query(CHECK, check=False).returncode == 0:
            return  # installed already, by mux or by you
        done = runner.run(INSTALL, check=False)
        if done.returncode == 0:
            return
        last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1][:200]
        why = f"{quote(INSTALL[:3])} failed: {last.encode('unicode_escape').decode()}"
    port = loop[0].rsplit(":", 1)[-1].split("/")[0]
    raise ConfigError(
        f"-p {loop[0]}: Docker {version} (before 28) lets other machines on the network reach ports "
        f"published on 127.0.0.1, and mux cannot block that ({why}): run once as root on the engine's "
        f"host `{quote(INSTALL)}` (then set [docker] loopback_guarded = true), or use "
        f"`mux forward {session} {port}`, or publish on an address you choose (-p ADDRESS:HOST:CONTAINER)")


def _cannot_install(runner: Runner) -> str | None:
    if runner.engine.remote:
        return "the engine is on another machine"
    if os.geteuid() != 0:
        return "not root"
    if shutil.which(INSTALL[0]) is None:
        return "no iptables here"
    return None
