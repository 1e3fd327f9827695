"""Start, stop and inspect the background proxy process; regenerate its CA.

Files under ``<data dir>/proxy``: ``proxy.pid`` (written by the process itself),
``state.json`` (written once it listens), ``policy.json`` (what ``start`` asked
for), ``proxy.log``.

The proxy follows its config: ``policy.json`` carries a digest of everything
the proxy's behaviour depends on (ports, listen addresses, filters, credential
rules as written, upstream CAs and their contents); :func:`ensure` restarts a
running proxy whose digest differs, under a lock, so many ``mux new`` at once
start (or restart) one proxy. The ports of every registered session stay in the
listen set, so a port change keeps older sessions working. A pid counts only while that process is alive, not a
zombie, and its command line is ``mux.proxy.server`` for this state directory,
so a stale pid file (after a crash or reboot, pid reused) never fools
``status`` or ``stop``.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import json
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mux.configfile import read_toml
from mux.egress import netinfo
from mux.engine.runner import Runner, spawn_detached, write_argv
from mux.errors import ConfigError, ProxyError
from mux.proxy import ca, registry
from mux.proxy.files import ProxyFiles, write_public
from mux.proxy.settings import UPSTREAM_CA_ENV, ProxySettings, parse_credentials

INSTALL_HINT = "install the proxy engine: pip install 'mux[proxy]'"
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class ProxyStatus:
    running: bool
    pid: int | None
    addresses: tuple[str, ...]
    port: int | None
    ca: str
    audit_log: str
    sessions_seen: tuple[str, ...] = ()  # sessions seen in the recent audit log
    config_digest: str | None = None  # of the settings the running proxy was started with
    ports: tuple[int, ...] = ()  # every port it listens on (the configured one first)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("addresses", "sessions_seen", "ports"):
            data[key] = list(data[key])
        return data


def listen_addresses(settings: ProxySettings, runner: Runner | None = None) -> tuple[str, ...]:
    """``[proxy] bind`` if set, else loopback plus the bridge gateway (never 0.0.0.0)."""
    if settings.bind:
        return settings.bind
    gateway = netinfo.bridge_gateway(runner)
    return (LOOPBACK, gateway) if gateway and gateway != LOOPBACK else (LOOPBACK,)


def plan(settings: ProxySettings, config_path: Path | None, files: ProxyFiles,
         runner: Runner | None = None) -> dict[str, Any]:
    """What the proxy should run with (``policy.json``), its ``digest`` included. Nothing secret."""
    listen = list(listen_addresses(settings, runner))
    ports = [settings.port] + sorted(set(registry.ports(files).values()) - {settings.port})
    cas = [str(p) for p in upstream_cas(settings)]
    policy: dict[str, Any] = {
        "port": settings.port,
        "ports": ports,
        "listen": listen,
        "upstream_cas": cas,
        "filters": asdict(settings.filters),
        "audit": {"max_bytes": settings.audit_max_bytes, "keep": settings.audit_keep},
        "limits": {"max_connections": settings.max_connections, "auth_timeout": settings.auth_timeout,
                   "max_session_connections": settings.max_session_connections,
                   "max_unauthenticated": settings.max_unauthenticated_connections,
                   "idle_timeout": settings.idle_timeout},
    }
    rules: list[Any] = []
    if config_path is not None:
        path = Path(config_path)
        rules = [repr(r) + repr((r.value, r.username, r.password))
                 for r in parse_credentials(read_toml(path), str(path))]
    hashed = {**policy, "rules": rules, "config": str(Path(config_path).absolute()) if config_path else None,
              "ca_contents": [hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in cas]}
    policy["digest"] = hashlib.sha256(json.dumps(hashed, sort_keys=True).encode()).hexdigest()[:16]
    return policy


def ensure(
    settings: ProxySettings,
    *,
    config_path: Path | None = None,
    files: ProxyFiles | None = None,
    runner: Runner | None = None,
    say: Any = None,
) -> ProxyStatus:
    """The proxy running the settings given: started if it is not running, restarted
    if it runs other settings (stale). Serialized: concurrent callers start one proxy."""
    files = files or ProxyFiles.default()
    files.ensure()
    with open(files.root / "start.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        policy = plan(settings, config_path, files, runner)
        current = status(files)
        if current.running and current.config_digest == policy["digest"]:
            return current
        if current.running:
            if say is not None:
                say("mux: restarting the proxy: its settings changed since it started "
                    f"(sessions using it: {', '.join(registry.names(files)) or 'none'})")
            stop(files)
        return _start_planned(files, policy, config_path, settings.timeout, False, runner)


def ensure_commands(settings: ProxySettings, config_path: Path | None = None,
                    files: ProxyFiles | None = None) -> list[list[str]]:
    """What ``ensure`` would do, as commands (for --dry-run): nothing when the proxy
    runs these settings; else stop a stale one, write the policy, start the server."""
    files = files or ProxyFiles.default()
    current = status(files)
    policy = plan(settings, config_path, files)
    if current.running and current.config_digest == policy["digest"]:
        return []
    stop_first = [["kill", "-TERM", str(current.pid)]] if current.running else []
    return [*stop_first, ["mkdir", "-p", str(files.policy.parent)],
            write_argv(files.policy, json.dumps(policy, indent=1))[0], server_argv(files, config_path)]


def stop_if_unused(files: ProxyFiles) -> bool:
    """Stop the proxy when no session is registered (after the last one is deleted)."""
    with open(files.root / "start.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if registry.names(files) or not stop(files):
            return False
    return True  # the caller ends the tunnels to it (mux.egress.wiring.forget_session)


def stale(settings: ProxySettings, config_path: Path | None, files: ProxyFiles | None = None) -> bool | None:
    """Whether the running proxy runs other settings than these; None when it does not run."""
    files = files or ProxyFiles.default()
    current = status(files)
    if not current.running:
        return None
    return current.config_digest != plan(settings, config_path, files)["digest"]


def upstream_cas(settings: ProxySettings) -> list[Path]:
    found = [settings.upstream_ca] if settings.upstream_ca else []
    if os.environ.get(UPSTREAM_CA_ENV):
        found.append(Path(os.environ[UPSTREAM_CA_ENV]).expanduser())
    for path in found:
        if not path.is_file():
            raise ConfigError(
                f"upstream CA {path} does not exist",
                hint=f"fix [proxy] upstream_ca or ${UPSTREAM_CA_ENV}: the path of a PEM file",
            )
    return [p.absolute() for p in found]


def running_pid(files: ProxyFiles) -> int | None:
    try:
        pid = int(files.pid.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _is_our_proxy(pid, files) else None


def status(files: ProxyFiles | None = None) -> ProxyStatus:
    files = files or ProxyFiles.default()
    pid = running_pid(files)
    state = _read_json(files.state) if pid else {}
    running = bool(pid) and state.get("pid") == pid
    return ProxyStatus(
        running=running,
        pid=pid if running else None,
        addresses=tuple(state.get("addresses", ())) if running else (),
        port=state.get("port") if running else None,
        ca=str(files.ca_cert),
        audit_log=str(files.audit),
        sessions_seen=_recent_sessions(files.audit),
        config_digest=state.get("digest") if running else None,
        ports=tuple(state.get("ports") or [state.get("port")]) if running else (),
    )


def start(
    settings: ProxySettings,
    *,
    config_path: Path | None = None,
    foreground: bool = False,
    files: ProxyFiles | None = None,
    runner: Runner | None = None,
) -> ProxyStatus:
    """Start the proxy unless it runs; return once every listen address accepts connections.

    ``config_path`` is the file the proxy reads ``[credentials.*]`` from (expanding
    ``${VAR}`` from the environment it inherits from this process).
    """
    files = files or ProxyFiles.default()
    current = status(files)
    if current.running:
        return current
    files.ensure()
    return _start_planned(files, plan(settings, config_path, files, runner), config_path, settings.timeout,
                          foreground, runner)


def _start_planned(files: ProxyFiles, policy: dict[str, Any], config_path: Path | None, timeout: float,
                   foreground: bool, runner: Runner | None) -> ProxyStatus:
    if importlib.util.find_spec("mitmproxy") is None:
        raise ProxyError("the credential proxy needs mitmproxy, which is not installed", hint=INSTALL_HINT)
    _clear_stale(files)
    write_public(files.policy, json.dumps(policy, indent=1))
    return _launch(files, config_path, timeout, foreground, runner)


def server_argv(files: ProxyFiles, config_path: Path | None) -> list[str]:
    """The proxy process `start` runs (in the background, or in the terminal with -f)."""
    argv = [sys.executable, "-m", "mux.proxy.server", "--state-dir", str(files.root)]
    if config_path is not None:
        argv += ["--config", str(Path(config_path).absolute())]
    return argv


def _launch(
    files: ProxyFiles, config_path: Path | None, timeout: float, foreground: bool, runner: Runner | None
) -> ProxyStatus:
    argv = server_argv(files, config_path)
    if foreground:
        (runner or Runner()).exec(argv)
    with open(files.log, "a") as log:
        log.write(f"--- mux proxy starting {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        offset = log.tell()
    pid = spawn_detached(argv, files.log)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            # Our own child: waitpid tells reliably when it exits (its /proc cmdline is
            # briefly still ours between fork and exec, so it cannot be used here).
            if _reap(pid):
                raise ProxyError("the proxy exited while starting", hint=_log_tail(files.log, offset))
            current = status(files)
            if current.running and all(netinfo.can_connect(a, p) for a in current.addresses for p in current.ports):
                return current
            time.sleep(0.05)
    except BaseException:  # Ctrl-C or SIGTERM while waiting: a proxy nobody will use must not stay
        _stop_child(pid)
        raise
    _terminate(pid, files, grace=3.0)
    raise ProxyError(
        f"the proxy did not accept connections within {timeout:g}s ([proxy] timeout)",
        hint=_log_tail(files.log, offset),
    )


def stop(files: ProxyFiles | None = None, grace: float = 10.0) -> bool:
    """Stop the proxy; False when none was running (stale files are cleaned up either way)."""
    files = files or ProxyFiles.default()
    pid = running_pid(files)
    stopped = pid is not None and _terminate(pid, files, grace)
    _clear_stale(files)
    return stopped


def regenerate_ca(*, force: bool = False, files: ProxyFiles | None = None, timeout: float = 10.0) -> bool:
    """Make a new CA. A running proxy is restarted with it only with ``force``.

    Returns whether the proxy was restarted. Sessions see the new bundle at once
    (their bundle directory is a bind mount), but programs that already loaded
    the old CA must be restarted.
    """
    files = files or ProxyFiles.default()
    was = status(files)
    if was.running and not force:
        raise ProxyError(
            "the proxy is running with the current CA",
            hint="`mux proxy regenerate-ca --force` replaces it and restarts the proxy",
        )
    config = _read_json(files.state).get("config") if was.running else None
    if was.running:
        stop(files)
    ca.generate_ca(files)
    policy = _read_json(files.policy)
    ca.write_bundles(files, [Path(p) for p in policy.get("upstream_cas", [])])
    if was.running:
        _launch(files, Path(config) if config else None, timeout, False, None)
    return was.running


# -- process helpers ---------------------------------------------------------------


def _is_our_proxy(pid: int, files: ProxyFiles) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    if stat.rsplit(")", 1)[-1].split()[0] in ("Z", "X"):
        return False
    return b"mux.proxy.server" in cmdline and str(files.root).encode() in cmdline


def _reap(pid: int) -> bool:
    """Collect our own child if it exited (a zombie would look alive to kill(0))."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False
    return done == pid


def _stop_child(pid: int, grace: float = 5.0) -> None:
    """End our own child and reap it, whatever its /proc says yet: a SIGTERM that lands
    between fork and exec is lost, so repeat it until waitpid sees it gone."""
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        for _ in range(10):
            if _reap(pid):
                return
            time.sleep(0.02)
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def _terminate(pid: int, files: ProxyFiles, grace: float) -> bool:
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            _reap(pid)
            if not _is_our_proxy(pid, files):
                return True
            time.sleep(0.05)
    return not _is_our_proxy(pid, files)


def _clear_stale(files: ProxyFiles) -> None:
    if running_pid(files) is None:
        for path in (files.pid, files.state):
            path.unlink(missing_ok=True)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _log_tail(path: Path, offset: int, lines: int = 15) -> str:
    try:
        with open(path) as fh:
            fh.seek(offset)
            text = fh.read()
    except OSError:
        return f"see {path}"
    tail = [ln for ln in text.splitlines() if ln.strip()][-lines:]
    return f"log ({path}):\n  " + "\n  ".join(tail) if tail else f"nothing in the log {path}"


def _recent_sessions(audit: Path, window: int = 256 * 1024) -> tuple[str, ...]:
    try:
        with open(audit, "rb") as fh:
            fh.seek(max(0, audit.stat().st_size - window))
            chunk = fh.read().decode(errors="replace")
    except OSError:
        return ()
    seen: dict[str, None] = {}
    for line in chunk.splitlines():
        try:
            name = json.loads(line).get("session")
        except (ValueError, AttributeError):
            continue
        if name:
            seen[name] = None
    return tuple(seen)
