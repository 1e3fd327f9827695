"""What a session needs to reach the network through the proxy: the ``docker run`` wiring.

``mux new`` (``mux.session.create``) calls ``ensure_running(settings, config_path)``, then
``session_wiring(settings, name, network)`` and folds the wiring into its spec.

The session's proxy URL ``http://mux-<name>:<secret>@HOST:PORT`` is the only
secret a container gets; it goes into ``HTTP(S)_PROXY`` through an ``--env-file``
(mode 0600) so that printed docker commands (``-v``, ``--dry-run``) never show it
and are still exactly what runs. Real credentials never enter the container: the
proxy injects them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mux import names
from mux.egress import netinfo, tunnel
from mux.egress import relay as egress
from mux.egress.tunnel import end_all
from mux.engine.argv import EngineArgv
from mux.engine.runner import Runner
from mux.engine.vm import proxy_host
from mux.errors import ConfigError, MuxError, ProxyError
from mux.ownfiles import write_private
from mux.paths import instance, session_dir
from mux.proxy import control, registry
from mux.proxy.files import BUNDLE_NAME, CONTAINER_CA_DIR, ProxyFiles
from mux.proxy.settings import ProxySettings, default_settings
from mux.session.layout import ENV_FILE_NAME, HOST_ALIAS
from mux.spec import Far, Mount

if TYPE_CHECKING:
    from mux.config import Config
    from mux.engine.runner import Runner

NO_PROXY = f"localhost,127.0.0.1,::1,{HOST_ALIAS}"
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")
CA_VARS = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS", "GIT_SSL_CAINFO")


@dataclass(frozen=True)
class Wiring:
    """Options to add to ``docker run``; all empty for ``--network none``."""

    env: tuple[tuple[str, str], ...] = ()  # -e K=V, nothing secret: NO_PROXY and the CA variables
    env_file: Path | None = None  # --env-file: the four proxy URLs, which hold the session secret
    mounts: tuple[Mount, ...] = ()  # the CA bundle directory, read-only (copied into a remote session)
    add_hosts: tuple[str, ...] = ()  # --add-host host.docker.internal:host-gateway (bridge networks)
    proxy_address: str | None = None  # HOST:PORT as the container reaches it (no secret)


def ensure_running(settings: ProxySettings, config_path: Path | None = None) -> control.ProxyStatus:
    """The proxy running these settings: started, or restarted when it runs older ones
    (registered sessions keep working); ProxyError (exit 5) if it cannot run."""
    return control.ensure(settings, config_path=config_path, say=_say)


def _say(message: str) -> None:
    print(message, file=sys.stderr)


def ensure_proxy_for(session_name: str, load_config: Callable[[], Config], runner: Runner) -> None:
    """For start/attach/exec: a session wired to the proxy gets it running, on the
    config the user has now (with a dry-run runner: the commands that would do it,
    printed). Sessions without the proxy cost one stat()."""
    try:
        names.session_name(session_name)
    except MuxError:
        return  # not a session name: the command itself says so
    env_file = Path(session_dir(session_name), ENV_FILE_NAME)
    if not env_file.exists():
        return
    config = load_config()
    if runner.dry_run:  # what ensure_running would do, printed
        for argv in control.ensure_commands(config.proxy or default_settings(), config.source):
            runner.show(argv)
    else:
        ensure_running(config.proxy or default_settings(), config.source)
    port = relay_port(session_name)
    if port is not None:  # proxy-only: its relay too (stopped or removed, the session is cut off)
        relay_running(runner, port, config)


def relay_running(runner: Runner, port: int, config: Config) -> None:
    """A proxy-only session's egress relay for ``port`` running: started if stopped,
    made again if gone (as `mux new` makes it, in its own image; on a remote engine
    with the tunnel up first, since the relay forwards to its end there)."""
    relay = egress.inspect_relay(runner, port)
    if relay is not None:
        if not relay.running:
            runner.run(EngineArgv(["start", relay.name]))
        return
    tunnel_end = None
    if runner.engine.remote:
        tunnel_end = tunnel.ensure(runner, runner.engine, port)
    proxy_only_network(runner, config.proxy or default_settings(), tunnel_end, port=port)


def relay_port(session_name: str) -> int | None:
    """The port of a proxy-only session's egress relay, from its env-file here (its
    proxy URL names the relay's alias); None for other sessions, or none here."""
    try:
        host, _, port = Path(session_dir(session_name), ENV_FILE_NAME).read_text().split("@", 1)[1] \
            .split("\n", 1)[0].rpartition(":")
    except (OSError, IndexError):
        return None
    return int(port) if port.isdigit() and host == egress.alias(int(port)) else None



def session_wiring(
    settings: ProxySettings,
    session_name: str,
    network: str | None,
    *,
    dry_run: bool = False,
    files: ProxyFiles | None = None,
    proxy_host: str | None = None,
) -> Wiring:
    """The wiring for one session; registers its secret and writes its env-file unless ``dry_run``.

    ``network`` is the docker network mode (None: docker's default bridge).
    With ``dry_run`` nothing is written, but the paths are those a real run uses.
    """
    files = files or ProxyFiles.default()
    if network == "none":
        return Wiring()
    current = control.status(files)
    port = current.port if current.running else settings.port
    add_hosts: tuple[str, ...] = ()
    if proxy_host is not None:  # proxy-only: the egress relay's name on mux's network
        host = proxy_host
    elif network == "host":
        host = control.LOOPBACK
    elif network and network.startswith("container:"):
        # Such a container cannot take --add-host; use the gateway address itself.
        host = next((a for a in current.addresses if a != control.LOOPBACK), "")
        if not host and not dry_run:
            raise ProxyError("the proxy is not listening on the Docker bridge gateway")
        host = host or "172.17.0.1"
    else:
        host = HOST_ALIAS
        add_hosts = (f"{HOST_ALIAS}:host-gateway",)
        if current.running and not any(a != control.LOOPBACK for a in current.addresses):
            raise ProxyError(
                f"the proxy listens only on {', '.join(current.addresses)}, which containers on a "
                "bridge network cannot reach",
                hint="restart it without --bind (it then also listens on the bridge gateway), "
                "or use network = \"host\"",
            )
    env_file = Path(session_dir(session_name), ENV_FILE_NAME)
    if not dry_run:
        secret = registry.new_secret()
        url = f"http://{registry.USER_PREFIX}{registry_key(session_name)}:{secret}@{host}:{port}"
        env_file.parent.mkdir(parents=True, exist_ok=True)
        write_private(env_file, "".join(f"{var}={url}\n" for var in PROXY_VARS))
        registry.register(files, registry_key(session_name), secret, port)
        if current.running and not control.status(files).running:
            # The last other session was deleted between start and registration, and took
            # the proxy with it: fail now (mux new undoes everything) rather than cut off.
            raise ProxyError("the proxy stopped while this session was being made",
                             hint="run the same command again (it starts the proxy)")
    bundle = f"{CONTAINER_CA_DIR}/{BUNDLE_NAME}"
    env = (("NO_PROXY", NO_PROXY), ("no_proxy", NO_PROXY)) + tuple((v, bundle) for v in CA_VARS)
    return Wiring(
        env=env,
        env_file=env_file,
        mounts=(Mount(str(files.public), CONTAINER_CA_DIR, read_only=True, far=Far("copy")),),
        add_hosts=add_hosts,
        proxy_address=f"{host}:{port}",
    )


def proxy_only_network(runner: Runner, settings: ProxySettings, tunnel_end: str | None = None, *,
                       port: int | None = None) -> tuple[str, str]:
    """For a proxy-only session: mux's egress network and relay, made if missing, on
    the session's engine. The relay forwards to the proxy on this engine's bridge
    gateway, or on a remote engine to ``tunnel_end`` (``GATEWAY:PORT`` there, where
    mux's ssh tunnel to the proxy listens: mux/egress/tunnel.py), or to ``[proxy]
    host_address`` (rootless Docker: 10.0.2.2, this machine's loopback through
    slirp4netns). ``port``: the proxy's port an existing session was given (default:
    the running proxy's, else the configured one). Returns the network to run on and
    the name the session reaches the proxy at."""
    files = ProxyFiles.default()
    current = control.status(files)
    port = port or (current.port if current.running and current.port else settings.port)
    via = None if tunnel_end is not None else proxy_host(runner, settings.host_address)
    if tunnel_end is not None:
        gateway, _, tunnel_port = tunnel_end.rpartition(":")
        port = int(tunnel_port)
    elif via is not None:
        import ipaddress

        try:
            gateway = str(ipaddress.IPv4Address(via))
        except ValueError:
            raise ConfigError(
                f"--egress proxy-only: the relay reaches the proxy at an IPv4 address, and this engine's "
                f"containers reach this machine as {via!r}",
                hint="set [proxy] host_address to the IPv4 address that name resolves to inside the engine's "
                     "containers") from None
    else:
        found = next((a for a in current.addresses if a != control.LOOPBACK), None)
        if found is None and current.running:
            raise ProxyError(
                f"the proxy listens only on {', '.join(current.addresses)}; a proxy-only session reaches it "
                "through the Docker bridge gateway", hint="remove [proxy] bind (or add the bridge gateway to it)")
        bridge = found or netinfo.bridge_gateway(runner)
        if bridge is None and runner.engine.kind == "podman":
            # Measured: the relay cannot sit on slirp4netns (10.0.2.2) and on the egress
            # network at once, so without docker0 it has no path to the proxy yet.
            raise ProxyError(
                "--egress proxy-only on podman: this machine has no Docker bridge, the path mux's egress "
                "relay takes to the proxy", hint="use --egress open (the session still goes through the proxy, "
                "at 10.0.2.2), or set [proxy] host_address to an address of this machine and [proxy] bind to match")
        gateway = bridge or "172.17.0.1"
    network = egress.ensure(runner, gateway=gateway, port=port, lock=files.root / "egress.lock")
    return network, egress.alias(port)


def registry_key(session_name: str) -> str:
    """The session's name in the proxy's registry (and its proxy user): the proxy serves
    every instance, so another instance's session of the same name is another key.
    ``+`` is in no session or instance name."""
    inst = instance()
    return f"{inst}+{session_name}" if inst else session_name


def forget_session(session_name: str, files: ProxyFiles | None = None) -> None:
    """For ``mux delete``: the session's secret stops working (its env-file goes with
    its dir). The last session using the proxy stops it: nothing listens for no one."""
    files = files or ProxyFiles.default()
    if registry.forget(files, registry_key(session_name)) == 0 and control.stop_if_unused(files) \
            and files.root == ProxyFiles.default().root:  # no tunnel forwards to a port where no proxy listens
        end_all(Runner())


def host_git_env(session_name: str, files: ProxyFiles | None = None) -> dict[str, str]:
    """Environment for a host-side git (e.g. cloning ``--repo``) to go through the proxy as the session.

    Call after ``session_wiring``; pass it as the git process's environment (never
    in argv), so the proxy injects the credential and no token reaches git.
    """
    files = files or ProxyFiles.default()
    current = control.status(files)
    if not current.running:
        raise ProxyError("the proxy is not running", hint="`mux proxy start`")
    try:
        line = next(
            ln for ln in Path(session_dir(session_name), ENV_FILE_NAME).read_text().splitlines()
            if ln.startswith("HTTPS_PROXY=")
        )
    except (OSError, StopIteration):
        raise ProxyError(f"session {session_name!r} has no proxy wiring") from None
    userinfo = line.split("=", 1)[1].split("//", 1)[1].rsplit("@", 1)[0]
    url = f"http://{userinfo}@{control.LOOPBACK}:{current.port}"
    env = {var: url for var in PROXY_VARS}
    env.update(GIT_SSL_CAINFO=str(files.bundle), NO_PROXY="localhost,127.0.0.1,::1", GIT_TERMINAL_PROMPT="0")
    return env


def host_git_config(session_name: str, files: ProxyFiles | None = None) -> list[tuple[str, str]]:
    """git settings for a host-side clone (``mux new --repo``) through the proxy as
    the session, so its credential rules apply there too. For GIT_CONFIG_* variables:
    the URL holds the session secret and must never reach argv or a file."""
    env = host_git_env(session_name, files)
    return [("http.proxy", env["HTTPS_PROXY"]), ("http.sslCAInfo", env["GIT_SSL_CAINFO"])]
