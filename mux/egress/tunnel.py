"""The credential proxy from afar: an ssh tunnel from a remote engine's host to this machine.

A session on a remote engine reaches the proxy as today, at
``host.docker.internal:PORT``, which there is that engine's bridge gateway. mux
runs one ssh connection per engine, in the background, over the same ssh the
docker CLI uses (``ssh://[user@]host[:port]``; the user's ssh config applies):
an ssh master (``-M -S SOCKET``) and on it a remote forward
``-R GATEWAY:PORT:127.0.0.1:PORT`` to the proxy on this machine's loopback.
Only the session's own proxy URL (its secret) goes to the remote, inside the
session; credentials and the CA key stay here (the session gets the public CA
bundle with `docker cp`). A proxy-only session there reaches the same forward
through its egress relay on that engine (mux/egress/relay.py).

The remote sshd must allow a forward bound to the bridge address rather than its
own loopback: ``GatewayPorts clientspecified`` in its sshd_config (``yes`` would
bind every interface; mux always names the bridge address). sshd's default
binds the forward to its loopback without a word, so every forward added is
checked (mux/egress/reach.py) and undone, exit 5, when no container could reach it.

The tunnel stays up while mux has remote sessions (new, start, attach and exec
bring it up; the last `mux delete` of one ends it) and the proxy runs (`mux
proxy stop` ends every tunnel: each forwards to the proxy's loopback port, where
anything could listen once it is gone); its state and log live under
DATA/tunnels/, its control socket in /tmp/mux-UID/.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from mux import paths, validate
from mux.egress import reach
from mux.egress import relay as egress
from mux.engine.argv import EngineArgv
from mux.engine.choice import CONTEXT_NAME, Engine
from mux.engine.runner import Runner, spawn_detached
from mux.errors import ConfigError, DockerError, MuxError, ProxyError
from mux.names import session_name
from mux.proxy import control
from mux.session.layout import ENGINE_MARKER, ENV_FILE_NAME, HOST_ALIAS, proxy_address

LOOPBACK = "127.0.0.1"
SSH_HOST = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]*|\[[0-9A-Fa-f:.]+\]")
SSH_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
UP_WITHIN = 20.0  # seconds for ssh to connect and authenticate


@dataclass(frozen=True)
class SshTarget:
    host: str
    user: str | None = None
    port: int | None = None

    def args(self) -> list[str]:
        """ssh options and destination, last: ``[-l USER] [-p PORT] -- HOST``."""
        return [*(["-l", self.user] if self.user else []), *(["-p", str(self.port)] if self.port else []),
                "--", self.host.strip("[]")]


def ssh_target(engine: Engine) -> SshTarget:
    """Where the tunnel goes: the engine's ssh:// endpoint, checked (it becomes argv)."""
    url = engine.host
    if not url.startswith("ssh://"):
        raise ConfigError(
            f"the credential proxy reaches a remote engine only over ssh, and {engine.describe()} is not ssh://",
            hint="use a docker context with host=ssh://USER@HOST, or --no-proxy")
    rest = url[len("ssh://"):].split("/", 1)[0]
    user, _, hostport = rest.rpartition("@")
    host, port = hostport, None
    m = re.fullmatch(r"(.+?):(\d{1,5})", hostport)
    if m and not hostport.endswith("]"):
        host, port = m[1], int(m[2])
    if not SSH_HOST.fullmatch(host) or (user and not SSH_USER.fullmatch(user)) or (port is not None and
                                                                                   not 0 < port < 65536):
        raise ConfigError(f"cannot use {url!r} for the proxy's ssh tunnel: expected ssh://[USER@]HOST[:PORT]")
    return SshTarget(host=host, user=user or None, port=port)


def remote_gateway(runner: Runner) -> str:
    """The remote engine's default bridge gateway (what host-gateway resolves to there)."""
    out = runner.query(EngineArgv(["network", "inspect", "--format", "{{json .IPAM.Config}}", "bridge"]))
    try:
        configs = json.loads(out.stdout)
    except ValueError:
        configs = []
    import ipaddress

    for cfg in configs or []:
        gateway, subnet = str(cfg.get("Gateway") or ""), str(cfg.get("Subnet") or "")
        try:
            if gateway:
                return str(ipaddress.IPv4Address(gateway.split("/")[0]))
            network = ipaddress.ip_network(subnet)
        except ValueError:
            continue
        if network.version == 4:
            return str(next(network.hosts()))  # where docker puts the gateway
    raise DockerError("cannot find the remote engine's bridge gateway (`docker network inspect bridge`)")


def _files(engine: Engine) -> tuple[Path, Path, Path]:
    """Control socket, state and log of ``engine``'s tunnel (per data dir). The socket
    lives in a short private directory: ssh's socket path (plus a 17-character
    temporary suffix) must fit in about 100 bytes, which a data dir may not."""
    data = Path(paths.data_dir())
    key = hashlib.sha256(f"{data}\0{engine.host}".encode()).hexdigest()[:16]
    directory = data / "tunnels"
    return _socket_dir() / f"{key}.sock", directory / f"{key}.json", directory / f"{key}.log"


def _socket_dir() -> Path:
    """/tmp/mux-UID, ours alone (mode 700, owned by us, not a symlink), or an error."""
    directory = Path(tempfile.gettempdir()) / f"mux-{os.getuid()}"
    try:
        directory.mkdir(mode=0o700)
    except FileExistsError:
        pass
    info = directory.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) & 0o077:
        raise ProxyError(f"{directory} is not a private directory of this user; mux will not put its ssh "
                         "control socket there", hint=f"remove {directory}, or set TMPDIR elsewhere")
    return directory


def _master_up(runner: Runner, sock: Path, target: SshTarget) -> bool:
    check = runner.query(["ssh", "-S", sock, "-O", "check", *target.args()], check=False, error=ProxyError)
    return check.returncode == 0


def ensure(runner: Runner, engine: Engine, port: int) -> str:
    """The tunnel for ``engine`` up, forwarding its bridge gateway's ``port`` to the
    proxy here; returns that ``GATEWAY:PORT``. ProxyError (exit 5) if it cannot be."""
    target = ssh_target(engine)
    gateway = remote_gateway(runner)
    forward = f"{gateway}:{port}:{LOOPBACK}:{port}"
    sock, state, log = _files(engine)
    master = ["ssh", "-N", "-M", "-S", str(sock), "-o", "ControlPersist=no", "-o", "ExitOnForwardFailure=yes",
              "-o", "ServerAliveInterval=15", "-o", "BatchMode=yes", *target.args()]
    add = ["ssh", "-S", str(sock), "-O", "forward", "-R", forward, *target.args()]
    if runner.dry_run:  # what the run below would do: the master if it is down, the forward if missing
        up = _master_up(runner, sock, target)
        if not up:
            runner.show(master)
        if not up or forward not in _forwards(state):
            runner.show(add)
        return f"{gateway}:{port}"
    _refuse_without_proxy(port)
    state.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    made_master = False
    if not _master_up(runner, sock, target):
        made_master = True
        sock.unlink(missing_ok=True)
        state.unlink(missing_ok=True)
        if runner.verbose:
            runner.show(master)
        spawn_detached(master, log)
        deadline = time.monotonic() + UP_WITHIN
        while not _master_up(runner, sock, target):
            if time.monotonic() > deadline:
                raise ProxyError(f"the ssh tunnel to {engine.describe()} did not come up: {_log_tail(log)}",
                                 hint="`ssh` to that host by hand should work without a password prompt")
            time.sleep(0.2)
    forwards = _forwards(state)
    if forward not in forwards:
        ssh = ["ssh", "-S", str(sock), "-o", "BatchMode=yes", *target.args()]
        done = runner.query(add, check=False, error=ProxyError)
        if done.returncode != 0:
            bound = reach.listening(runner, ssh, port)
            if made_master:
                _undo(runner, sock, target, state, None)
            raise reach.refused(engine, gateway, port, bound is not None and reach.reachable(bound, gateway))
        # An sshd with `GatewayPorts no` accepts the forward but binds its own loopback,
        # which no container there reaches: fail closed (mux/egress/reach.py).
        bound = reach.listening(runner, ssh, port)
        if bound is not None and not reach.reachable(bound, gateway):
            _undo(runner, sock, target, state, add if not made_master else None)
            raise reach.loopback_only(engine, gateway, port)
        context = "" if engine.source == "DOCKER_HOST" else engine.name  # `mux proxy status` names it
        state.write_text(json.dumps({"host": engine.host, "context": context, "forwards": [*forwards, forward]}))
    return f"{gateway}:{port}"


def _refuse_without_proxy(port: int) -> None:
    """A tunnel forwards only to a running proxy of this data dir: on a port where it
    does not listen, anything on this host's loopback could answer the sessions there."""
    current = control.status()
    if not current.running or port not in (current.ports or (current.port,)):
        raise ProxyError(f"the proxy is not running on port {port}: mux makes no tunnel to that port",
                         hint="`mux proxy start`, or the session's next `mux exec` starts it")


def _undo(runner: Runner, sock: Path, target: SshTarget, state: Path, forward: list[str] | None) -> None:
    """A failed tunnel step undone: the forward cancelled (``forward``: the `-O forward`
    command that added it, on a master that was already up), else the master this
    call started ended."""
    if forward is not None:
        runner.run([*forward[:4], "cancel", *forward[5:]], check=False, error=ProxyError)
        return
    runner.run(["ssh", "-S", sock, "-O", "exit", *target.args()], check=False, error=ProxyError)
    state.unlink(missing_ok=True)


def end_all(runner: Runner) -> None:
    """After `mux proxy stop`: every tunnel of this data dir ended, with its forwards
    (each forwards to the proxy's loopback port, where anything could listen next)."""
    for engine, _, sock, state in _states():
        if sock.exists():
            runner.run(["ssh", "-S", sock, "-O", "exit", *ssh_target(engine).args()], check=False, error=ProxyError)
        if not runner.dry_run:
            state.unlink(missing_ok=True)


def _forwards(state: Path) -> list[str]:
    """The remote forwards the tunnel's state file records (what `-O forward` added)."""
    try:
        found = json.loads(state.read_text()).get("forwards", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [f for f in found if isinstance(f, str)] if isinstance(found, list) else []


def _log_tail(log: Path) -> str:
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "ssh said nothing"
    return lines[-1] if lines else "ssh said nothing"


def ensure_for_session(runner: Runner, name: str) -> None:
    """start/attach/exec of a proxied session on a remote engine: its tunnel up."""
    try:
        session_name(name)
    except MuxError:
        return  # the command itself says what is wrong with the name
    if not runner.engine.remote or not os.path.exists(os.path.join(paths.session_dir(name), ENV_FILE_NAME)):
        return
    port = control.status().port
    if port is not None:
        revived = not runner.dry_run and not _forwarding(runner, runner.engine, port)
        ensure(runner, runner.engine, port)
        if revived:  # a tunnel made again: the session's network checked as `mux new` does
            _probe_session(runner, name)


def _forwarding(runner: Runner, engine: Engine, port: int) -> bool:
    """Whether ``engine``'s tunnel is up with a forward to ``port`` (nothing to revive)."""
    sock, state, _ = _files(engine)
    if not sock.exists() or not _master_up(runner, sock, ssh_target(engine)):
        return False
    return any((m := FORWARD.fullmatch(f)) and int(m[2]) == port for f in _forwards(state))


def _probe_session(runner: Runner, name: str) -> None:
    """mux/egress/reach.py's check for an existing session: from inside it while it runs,
    else from a short-lived container on the network its egress puts it on."""
    from mux.session.sessions import find  # here: breaks the map (test_layers.py)

    address = proxy_address(name)
    if address is None:
        return
    session = find(runner, name)
    if session.running:
        argv = reach.exec_argv(session.ref, address)
    else:
        proxy_only = session.egress == "proxy-only"
        argv = reach.probe_argv(validate.image(session.image, "the session's image label"),
                                egress.network_name() if proxy_only else None,
                                () if proxy_only else (f"{HOST_ALIAS}:host-gateway",), address,
                                paths.helper_labels("reach"))
    reach.Probe(runner, argv, runner.engine, address).verdict()


def sessions_using(host: str) -> list[str]:
    """This instance's proxied sessions on the engine at ``host``: the tunnel's users
    `mux proxy status` shows."""
    inst = paths.instance()
    return sorted(name for instance, name in users(host) if instance == inst)


def users(host: str) -> set[tuple[str | None, str]]:
    """(instance, session) of every proxied session on the engine at ``host`` whose
    files are in this data dir, every instance's: they share its tunnels. Found by
    the marker mux/session/volumes.py leaves in a remote session's directory."""
    from mux.session.sessions import is_session_dir  # here: breaks the map (test_layers.py)

    found = set()
    for instance, where in paths.all_sessions_roots():
        root = Path(where)
        for directory in sorted(root.iterdir()) if root.is_dir() and not root.is_symlink() else ():
            if not is_session_dir(directory) or not (directory / ENV_FILE_NAME).exists():
                continue
            try:
                if (directory / ENGINE_MARKER).read_text().strip() == host:
                    found.add((instance, directory.name))
            except OSError:
                continue
    return found


def stop_if_unused(runner: Runner, leaving: set[str]) -> None:
    """After `mux delete`: the engine's tunnel ends with its last proxied session, of
    any instance (those in ``leaving``, this instance's, are going now)."""
    engine = runner.engine
    if not engine.remote:
        return
    inst = paths.instance()
    if users(engine.host) - {(inst, name) for name in leaving}:
        return
    sock, state, _ = _files(engine)
    if sock.exists():
        try:
            target = ssh_target(engine)
        except ConfigError:
            return
        runner.run(["ssh", "-S", sock, "-O", "exit", *target.args()], check=False, error=ProxyError)
        if not runner.dry_run:
            state.unlink(missing_ok=True)


def is_up(runner: Runner, engine: Engine) -> bool:
    """Whether ``engine``'s tunnel (its ssh master) runs; read-only, for doctor."""
    sock, _, _ = _files(engine)
    return sock.exists() and _master_up(runner, sock, ssh_target(engine))


FORWARD = re.compile(r"([0-9.]+):(\d{1,5}):127\.0\.0\.1:\d{1,5}")


def _listen(forwards: object) -> tuple[str, ...]:
    """GATEWAY:PORT of each remote forward in a state file (input: only well-formed ones)."""
    if not isinstance(forwards, list):
        return ()
    return tuple(f"{m[1]}:{m[2]}" for f in forwards if isinstance(f, str) and (m := FORWARD.fullmatch(f)))


def live_ends(runner: Runner, engine: Engine) -> tuple[str, ...]:
    """Where ``engine``'s tunnel listens there (GATEWAY:PORT), if it is up; () if it is
    down or was never made. Read-only, for doctor."""
    if not is_up(runner, engine):
        return ()
    _, state, _ = _files(engine)
    return _listen(_forwards(state))


def misbound(runner: Runner, engine: Engine) -> list[str]:
    """The ends (GATEWAY:PORT) of ``engine``'s tunnel, if it is up, that its sshd bound
    to its own loopback instead (`GatewayPorts no`): no container there reaches
    them. Read-only, for doctor (the same check `ensure` makes, mux/egress/reach.py)."""
    sock, _, _ = _files(engine)
    ssh = ["ssh", "-S", str(sock), "-o", "BatchMode=yes", *ssh_target(engine).args()]
    bad = []
    for end in live_ends(runner, engine):
        gateway, _, port = end.rpartition(":")
        bound = reach.listening(runner, ssh, int(port))
        if bound is not None and not reach.reachable(bound, gateway):
            bad.append(end)
    return bad


@dataclass(frozen=True)
class Tunnel:
    """One tunnel as `mux proxy status` shows it."""

    context: str  # the docker context it was made for ("" if its state does not say)
    host: str  # the engine's ssh:// endpoint
    listen: tuple[str, ...]  # GATEWAY:PORT on that engine's host, where sessions there reach the proxy
    up: bool  # its ssh master answers on its control socket
    sessions: tuple[str, ...]  # this instance's proxied sessions on that engine

    def to_json(self) -> dict[str, object]:
        return {"context": self.context, "host": self.host, "listen": list(self.listen), "up": self.up,
                "sessions": list(self.sessions)}

    def describe(self) -> str:
        where = f"context {self.context!r} ({self.host})" if self.context else self.host
        return (f"{where}: {'up' if self.up else 'down'}, listening there on {', '.join(self.listen) or '-'}; "
                f"sessions: {', '.join(self.sessions) or '(none)'}")


def tunnels(runner: Runner) -> list[Tunnel]:
    """The tunnels of this data dir (their state under DATA/tunnels/), each checked
    with `ssh -O check` on its control socket. A state file is input: one that does
    not hold a valid ssh:// endpoint matching its own name is skipped."""
    found = []
    for engine, data, sock, _ in _states():
        context, forwards = data.get("context", ""), data.get("forwards", [])
        if not isinstance(forwards, list):
            continue
        context = context if isinstance(context, str) and re.fullmatch(CONTEXT_NAME, context) else ""
        listen = _listen(forwards)
        up = sock.exists() and _master_up(runner, sock, ssh_target(engine))
        found.append(Tunnel(context, engine.host, listen, up, tuple(sessions_using(engine.host))))
    return sorted(found, key=lambda t: t.host)


def _states() -> list[tuple[Engine, dict[str, object], Path, Path]]:
    """(engine, state, control socket, state file) of each tunnel of this data dir.
    A state file is input: one that does not hold a valid ssh:// endpoint matching
    its own name is skipped."""
    directory = Path(paths.data_dir(), "tunnels")
    found = []
    for state in sorted(directory.glob("*.json")) if directory.is_dir() else ():
        try:
            data = json.loads(state.read_text())
            host, context = data["host"], data.get("context", "")
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
        if not isinstance(host, str):
            continue
        context = context if isinstance(context, str) and re.fullmatch(CONTEXT_NAME, context) else ""
        engine = Engine(context or "default", host, "tunnel state")
        try:
            ssh_target(engine)
        except ConfigError:
            continue
        sock, own_state, _ = _files(engine)
        if own_state.name == state.name:  # else: not the state of the tunnel to that host
            found.append((engine, data, sock, state))
    return found
