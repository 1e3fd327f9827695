"""Whether sessions on a remote engine reach the proxy through mux's ssh tunnel, or fail closed.

An sshd with its default settings (``GatewayPorts no``) accepts the tunnel's
remote forward ``-R GATEWAY:PORT:...`` and binds it to its own loopback instead:
`ssh -O forward` succeeds, yet no container there can reach it, and a session
made on it would have no proxy (and no credentials). So mux checks twice:

- right after adding the forward (``new``, and ``start``/``attach``/``exec`` when
  they revive the tunnel): where the remote host listens on that port, read
  from its ``/proc/net/tcp`` through the tunnel's own ssh master (one more
  session on a connection that is already up: ~30 ms, no new login). Bound to
  127.0.0.1 only: exit 5 naming ``GatewayPorts``; a refused forward: exit 5
  naming ``AllowTcpForwarding`` (or the port, when something holds it there).
- ``mux new`` also sends one HTTP request from inside the session it has just
  started (``docker exec``: its own network, hosts file and DNS) to the proxy
  address the session is given, and wants the proxy's answer back. It runs in
  the background while mux checks that the session's command started
  (bench/reach.py measures what it adds); a session whose network does not
  reach the proxy is removed with everything made for it (exit 5). A revived
  tunnel is checked the same way (a stopped session: from a short-lived
  container on its network).

Everything read back (``/proc/net/tcp``, the probe's output) is bounded and parsed,
never printed raw.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

from mux.engine.argv import EngineArgv
from mux.engine.choice import Engine
from mux.engine.runner import Background, Runner
from mux.errors import MuxError, ProxyError

GATEWAY_PORTS = ("set `GatewayPorts clientspecified` in its sshd_config and reload sshd "
                 "(mux binds only the bridge address, never every interface)")
FORWARDING = "set `AllowTcpForwarding yes` in its sshd_config and reload sshd"
MAX_LINES = 65536  # of /proc/net/tcp: more sockets than any host mux talks to shows
LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp's st column


def listening(runner: Runner, ssh: Sequence[str], port: int) -> set[str] | None:
    """The IPv4 addresses where something listens on TCP ``port`` on the remote host,
    read from its /proc/net/tcp with ``ssh`` (the tunnel's master socket and target);
    None when it cannot be read there (then the container check decides)."""
    try:
        out = runner.query([*ssh, "cat", "/proc/net/tcp"], check=False, error=ProxyError, timeout=10)
    except MuxError:  # ssh hung or is gone: no answer here
        return None
    if out.returncode != 0:
        return None
    return parse_listening(out.stdout, port)


def parse_listening(text: str, port: int) -> set[str] | None:
    """``/proc/net/tcp`` as text (from another machine: input) -> the listening
    addresses on ``port``; None if it does not look like that file at all."""
    lines = text.splitlines()[:MAX_LINES]
    if not lines or "local_address" not in lines[0]:
        return None
    found = set()
    for line in lines[1:]:
        fields = line.split()
        if len(fields) < 4 or fields[3] != LISTEN:
            continue
        m = re.fullmatch(r"([0-9A-Fa-f]{8}):([0-9A-Fa-f]{4})", fields[1])
        if m and int(m[2], 16) == port:
            found.add(str(ipaddress.IPv4Address(bytes.fromhex(m[1])[::-1])))
    return found


def reachable(bound: set[str], gateway: str) -> bool:
    """Whether a listener bound to ``bound`` answers containers at the bridge ``gateway``."""
    return gateway in bound or "0.0.0.0" in bound


def loopback_only(engine: Engine, gateway: str, port: int) -> ProxyError:
    return ProxyError(f"sessions on {engine.describe()} cannot reach the proxy: its sshd bound the tunnel's "
                      f"forward to its own loopback, not the bridge gateway {gateway}:{port} containers use; "
                      + GATEWAY_PORTS)


def refused(engine: Engine, gateway: str, port: int, in_use: bool) -> ProxyError:
    if in_use:
        return ProxyError(f"the proxy's tunnel cannot listen on {gateway}:{port} on {engine.describe()}: "
                          "something there holds that port already; free it, or set another [proxy] port")
    return ProxyError(f"the sshd of {engine.describe()} refused the proxy's tunnel forward to {gateway}:{port}: "
                      + FORWARDING + ", and `GatewayPorts clientspecified`")


# One HTTP request to the proxy, with whatever the image has (curl, bash, nc, wget);
# $0 and $1 are the host and port (arguments, never part of the script). Any HTTP
# status back is the proxy's (it refuses a request without credentials: 407); a
# connection refused or dropped prints nothing (nc's stdin stays open a second: it
# quits at its end, before the answer). No tool at all: "mux-probe: none".
PROBE_SCRIPT = (
    'req="GET http://mux-probe.invalid/ HTTP/1.0\\r\\nHost: mux-probe.invalid\\r\\n\\r\\n"; '
    'if command -v curl >/dev/null 2>&1; then '
    'exec curl -s -o /dev/null -w "HTTP/1.1 %{http_code}" --max-time 5 -x "http://$0:$1" http://mux-probe.invalid/; '
    'elif command -v bash >/dev/null 2>&1; then '
    'exec timeout 5 bash -c \'exec 3<>"/dev/tcp/$0/$1" && printf "$2" >&3 && head -c 12 <&3\' "$0" "$1" "$req"; '
    'elif command -v nc >/dev/null 2>&1; then (printf "$req"; sleep 1) | timeout 5 nc "$0" "$1" | head -c 12; '
    'elif command -v wget >/dev/null 2>&1; then '
    'http_proxy="http://$0:$1" exec wget -T 5 -O /dev/null http://mux-probe.invalid/ 2>&1; '
    'else echo "mux-probe: none"; fi')
ANSWERED = re.compile(r"HTTP/1\.[01] [1-5][0-9][0-9]|response\.\.\. [1-5][0-9][0-9]")  # GNU wget says the latter


def probe_argv(image: str, network: str | None, extra_hosts: Sequence[str], address: str,
               labels: Sequence[tuple[str, str]], pull: str | None = None) -> EngineArgv:
    """A short-lived container on the session's network asking the proxy at ``address``."""
    host, _, port = address.rpartition(":")
    return EngineArgv(["run", "--rm", *[a for k, v in labels for a in ("--label", f"{k}={v}")],
            *(["--network", network] if network else []), *[a for h in extra_hosts for a in ("--add-host", h)],
            "--pull", "never" if pull == "never" else "missing", "--entrypoint", "sh", image,
            "-c", PROBE_SCRIPT, host, port])


def exec_argv(container: str, address: str) -> EngineArgv:
    """The same request from inside a running session (its own network namespace,
    /etc/hosts and DNS): no container to make."""
    host, _, port = address.rpartition(":")
    return EngineArgv(["exec", container, "sh", "-c", PROBE_SCRIPT, host, port])


CANNOT_ASK = (126, 127)  # no sh in the image: the listen check alone decides


class Probe:
    """The container check, running in the background until :meth:`verdict`."""

    def __init__(self, runner: Runner, argv: EngineArgv, engine: Engine, address: str) -> None:
        self.engine, self.address, self.inside = engine, address, argv[0] == "exec"
        self.job: Background | None = None if runner.dry_run else runner.background(argv)
        if runner.dry_run:
            runner.show(argv)

    def verdict(self, timeout: float = 60) -> None:
        """ProxyError (exit 5) unless the proxy answered (or the image has no tool to ask with)."""
        if self.job is None:
            return
        out = self.job.wait(timeout)
        said = (out.stdout + out.stderr)[-4096:]
        if ANSWERED.search(said) or said.strip() == "mux-probe: none" or out.returncode in CANNOT_ASK:
            return
        if self.inside and "is not running" in out.stderr:
            return  # its command has ended already: nothing in it to reach the proxy now
        raise ProxyError(f"a container on the session's network on {self.engine.describe()} cannot reach the "
                         f"proxy at {self.address} through the tunnel; check that host's sshd_config "
                         "(`GatewayPorts clientspecified`, `AllowTcpForwarding yes`) and its firewall")

    def cancel(self) -> None:
        if self.job is not None:
            self.job.kill()
