"""Egress modes: ``open`` (docker's bridge; the proxy is offered through
HTTP(S)_PROXY) and ``proxy-only`` (the proxy is the only way out).

A ``proxy-only`` session joins mux's egress network, one per instance: a Docker
network created ``--internal`` *and* with no address of the host on its bridge
(``com.docker.network.bridge.inhibit_ipv4``). Measured here, ``--internal``
alone keeps a container from the internet and other machines, but not from the
host: every host address (the bridge gateways, the host's own IPs) answers
through the network's gateway, so any host service would be reachable. With no
host address on the bridge a session has no route anywhere; what it can reach
is the egress relay, a container on both that network and the default bridge
whose only process (``mux-relay``, a static binary in an image of its own that
mux builds ``FROM scratch``) forwards each connection to the proxy on the bridge
gateway — and nowhere else. Sessions
reach it by name (``mux-proxy-PORT``, a network alias), so nothing in their
environment depends on addresses docker picks.

On a remote engine (mux/engine/choice.py) the network and the relay are made on that
engine, with the same commands, and the relay forwards to where mux's ssh tunnel
to the proxy listens there (its bridge gateway, mux/egress/tunnel.py): its image is
built there with `docker build` from this machine's files, so nothing needs a
registry.

Every step is a docker command, printed by ``--dry-run`` and ``-v``.
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from mux import paths
from mux.engine import clis
from mux.engine.argv import EngineArgv
from mux.engine.runner import Runner
from mux.errors import ConfigError, DockerError, ProxyError

if TYPE_CHECKING:
    from mux.config import Config

NETWORK_LABEL = "mux.egress-network"
RELAY_LABEL = "mux.egress-relay"
INHIBIT = "com.docker.network.bridge.inhibit_ipv4"
RELAY_BIN = Path(__file__).parent / "relay_bin"
ARCHES = {"amd64": "amd64", "x86_64": "amd64", "arm64": "arm64", "aarch64": "arm64"}
RELAY_IMAGE = "mux-relay"
# A proxy-only session's only upstream resolver: an address that is no resolver (TEST-NET-2)
# and not loopback. Docker before the fix for CVE-2024-29018 forwards a query its embedded
# DNS cannot answer to the host's resolvers, and to a loopback one (systemd-resolved's
# 127.0.0.53) from the host's network namespace, past --internal. With this upstream it
# forwards only from the session's own namespace, where the internal network has no route.
# Names on the network (the relay's alias) are answered by docker itself, as before.
NO_DNS = "198.51.100.53"


def decide(config: Config, cli: str | None, proxied: bool, network: str | None) -> str:
    """The session's egress (its ``mux.egress`` label): ``--egress``, else ``[proxy]
    egress``, else proxy-only when ``allowlist_only`` (an allowlist a program can
    walk around is advice, not a policy), else open; ``none`` for network none.
    ConfigError (exit 2) for a combination that cannot hold."""
    settings = config.proxy
    explicit = cli or (settings.egress if settings is not None else None)
    implied = proxied and settings is not None and settings.filters.allowlist_only
    chosen = explicit or ("proxy-only" if implied else "open")
    if explicit is None and network == "none":
        return "none"
    check_network(chosen, network, proxied, implied=explicit is None)
    return "none" if network == "none" else chosen


def check_network(chosen: str, network: str | None, proxied: bool, implied: bool = False) -> None:
    """proxy-only owns the session's network: any other network choice is a usage error."""
    if chosen != "proxy-only":
        return
    if not proxied:
        raise ConfigError("egress proxy-only needs the proxy, but this session has none (--no-proxy, "
                          "or [proxy] enabled = false)", hint="drop --no-proxy, or use --egress open")
    if network is not None:
        raise ConfigError(
            f"egress proxy-only cannot use network {network!r}: a proxy-only session runs on mux's "
            "egress network, where the proxy is the only way out (host networking would bypass it, "
            "none has no way out at all, another network has its own routes)",
            hint="drop --network (and [docker] network), or use --egress open"
            + (" ([proxy.filters] allowlist_only = true implies proxy-only; [proxy] egress = \"open\" "
               "keeps it open)" if implied else ""))


def network_name() -> str:
    instance = paths.instance()
    return f"mux-egress-{instance}" if instance else "mux-egress"


RELAY_PREFIX = "mux.egress-relay-"  # not "mux-": that prefix is for session containers


def relay_name(port: int) -> str:
    instance = paths.instance()
    return f"{RELAY_PREFIX}{port}" + (f".{instance}" if instance else "")


def alias(port: int) -> str:
    """The name a proxy-only session reaches the proxy at."""
    return f"mux-proxy-{port}"


def _labels() -> list[str]:
    instance = paths.instance()
    return ["--label", f"mux.instance={instance}"] if instance else []


@contextmanager
def _locked(lock: Path) -> Iterator[None]:
    """Parallel `mux new` make one network and one relay."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def ensure(runner: Runner, *, gateway: str, port: int, lock: Path) -> str:
    """The egress network and a running relay to the proxy at ``gateway:port``;
    returns the network's name. Dry-run prints what would be made."""
    with _locked(lock):
        network = network_name()
        _ensure_network(runner, network)
        _ensure_relay(runner, network, gateway=gateway, port=port)
        return network


def _ensure_network(runner: Runner, network: str) -> None:
    found = runner.query(EngineArgv(["network", "inspect", "--format",
                          f'{{{{index .Labels "{NETWORK_LABEL}"}}}} {{{{.Internal}}}} '
                          f'{{{{index .Options "{INHIBIT}"}}}}', network]), check=False)
    if found.returncode == 0:
        if found.stdout.split() != ["proxy-only", "true", "true"]:
            raise DockerError(f"a {clis.ACTIVE} network named {network} exists but mux did not make it as its "
                              "proxy-only network", hint=f"remove or rename it (`docker network rm {network}`)")
        return
    runner.run(EngineArgv(["network", "create", "--internal", "-o", f"{INHIBIT}=true",
                "--label", f"{NETWORK_LABEL}=proxy-only", *_labels(), network]))


def _ensure_relay(runner: Runner, network: str, *, gateway: str, port: int) -> None:
    name = relay_name(port)
    found = inspect_relay(runner, port)
    if found is not None:
        if not found.running:
            runner.run(EngineArgv(["start", name]))
        return
    image = relay_image(runner)
    from mux.proxy.files import ProxyFiles, relay_key

    files = ProxyFiles.default()
    if not runner.dry_run:
        relay_key(files)  # made once; the proxy believes the client each connection's line names
    # Least privilege: the relay only copies bytes. A read-only root, no capability, no
    # privilege to gain, a few processes, bounded memory (mux-relay holds every
    # connection in one process, helper/relay.c).
    runner.run(EngineArgv(["create", "--name", name, "--label", f"{RELAY_LABEL}={network}", *_labels(),
                "--network", "bridge", "--restart", "unless-stopped", "--user", "65534:65534",
                "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--memory", "64m",
                "--pids-limit", "16", "--read-only", "--no-healthcheck", "--pull", "never",
                "--env-file", str(files.relay_env),
                image, str(port), gateway, str(port)]))
    try:
        runner.run(EngineArgv(["network", "connect", "--alias", alias(port), network, name]))
        runner.run(EngineArgv(["start", name]))
    except BaseException:
        if not runner.dry_run:
            runner.run(EngineArgv(["rm", "-f", name]), check=False)
        raise


def relay_image(runner: Runner) -> str:
    """The relay's own image on this engine (``mux-relay:HASH`` of the binary and its
    Dockerfile, so a new mux builds a new one), built from mux/egress/relay_bin when the
    engine lacks it: `docker build` sends that directory from here, so a remote engine
    needs no registry either."""
    arch = relay_arch(runner)
    import hashlib

    digest = hashlib.sha256((RELAY_BIN / "Dockerfile").read_bytes()
                            + (RELAY_BIN / f"mux-relay-{arch}").read_bytes()).hexdigest()[:12]
    image = f"{RELAY_IMAGE}:{arch}-{digest}"
    if runner.query(EngineArgv(["image", "inspect", "--format", "{{.Id}}", image]), check=False).returncode != 0:
        runner.run(EngineArgv(["build", "-q", "--label", "mux.helper=relay", "--build-arg", f"ARCH={arch}",
                    "-t", image, str(RELAY_BIN)]))
    return image


class Relay(NamedTuple):
    """This instance's relay for a port, as its engine has it."""

    name: str
    running: bool
    target: str  # HOST:PORT it forwards every connection to (its arguments), "" if unreadable


def inspect_relay(runner: Runner, port: int) -> Relay | None:
    """The relay for ``port`` (None: no container has its name); DockerError when a
    container holds the name without being mux's relay on this instance's network."""
    name = relay_name(port)
    found = runner.query(EngineArgv(["container", "inspect", "--format",
                          f'{{{{.State.Running}}}} {{{{index .Config.Labels "{RELAY_LABEL}"}}}} {{{{json .Args}}}}',
                          name]), check=False)
    if found.returncode != 0:
        return None
    running, label, args = (found.stdout.strip().split(" ", 2) + ["", ""])[:3]
    if label != network_name():
        raise DockerError(f"a container named {name} exists but is not mux's egress relay",
                          hint=f"remove or rename it (`docker rm {name}`)")
    try:
        listen, host, to = json.loads(args)
        target = f"{ipaddress.ip_address(host)}:{int(to)}" if str(listen) == str(port) else ""
    except (ValueError, TypeError):
        target = ""  # read back from docker: used only if it is an address and a port
    return Relay(name, running == "true", target)


def relay_arch(runner: Runner) -> str:
    arch = runner.query(EngineArgv(["version", "--format", "{{.Server.Arch}}"])).stdout.strip()
    name = ARCHES.get(arch)
    if name is None:
        raise ProxyError(f"mux has no egress relay for this engine's architecture {arch!r}",
                         hint="it has relays for amd64 and arm64; use --egress open")
    return name


def remove_if_unused(runner: Runner, leaving: Collection[str] = ()) -> None:
    """After the last proxy-only session of this instance is gone: its relays and network.
    ``leaving``: the containers being deleted (still there in a dry run, which prints
    what a real run would do)."""
    network = network_name()
    found = runner.query(EngineArgv(["network", "inspect", "--format",
                          "{{range .Containers}}{{.Name}} {{end}}", network]), check=False)
    if found.returncode != 0:
        return
    users = [name for name in found.stdout.split() if name not in leaving]
    relays = [n for n in users if n.startswith(RELAY_PREFIX)]
    if len(relays) != len(users):
        return  # sessions still use it
    if relays:
        runner.run(EngineArgv(["rm", "-f", *relays]), check=False)
    runner.run(EngineArgv(["network", "rm", network]), check=False)
