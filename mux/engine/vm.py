"""Engines in a VM on this machine, and the address sessions reach the proxy at.

Docker Desktop, OrbStack, colima and Rancher Desktop run dockerd in a VM: bind
mounts of this machine's paths work (the VM shares them), but the Docker
bridge's gateway is inside the VM, so `host-gateway` does not reach this
machine and today's proxy wiring cannot work there. Each documents a name for
the host that reaches its loopback, where the proxy always listens; mux gives
sessions that name (no --add-host). Rootless Docker has no such name by
default (slirp4netns hides the host's loopback), so it is refused with what to
set. ``[proxy] host_address`` overrides all of this.

Rootless Docker also maps you to root: its containers' uid 0 is you on this
machine and every other uid a subordinate one, so a session run as your uid
could read but not write its bind-mounted workdir and HOME. mux runs its
sessions there as uid 0 (named like you inside), which is you on the host.

Recognised from one `docker info` per engine, cached under DATA/engines/ (a
plain Linux engine costs that call once, not per `mux new`; for the rootless
check, only an engine whose socket is yours, not root's, is asked). Remote
engines need none of this: their sessions reach the proxy through mux's ssh tunnel.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from mux import paths
from mux.engine.argv import EngineArgv
from mux.engine.runner import Runner
from mux.errors import ConfigError, MuxError

if TYPE_CHECKING:
    from mux.config import Limits


class VmEngine(NamedTuple):
    kind: str  # what it is, for messages
    host_name: str | None  # the documented name of this machine, seen from a container


ROOTLESS = VmEngine("rootless Docker", None)


def recognise(info: Mapping[str, Any]) -> VmEngine | None:
    """Which VM engine ``docker info`` (its JSON) describes; None for a plain engine."""
    os_name = str(info.get("OperatingSystem") or "")
    name = str(info.get("Name") or "")
    security = [str(s) for s in info.get("SecurityOptions") or []]
    if os_name == "Docker Desktop":
        return VmEngine("Docker Desktop", "host.docker.internal")
    if os_name == "OrbStack":
        return VmEngine("OrbStack", "host.docker.internal")
    if name == "lima-rancher-desktop" or name == "rancher-desktop":
        return VmEngine("Rancher Desktop", "host.docker.internal")
    if name == "colima" or name.startswith("colima-"):
        return VmEngine("colima", "host.lima.internal")
    if any(s == "name=rootless" or s.startswith("name=rootless,") for s in security):
        return ROOTLESS
    return None


KEEP = ("OperatingSystem", "Name", "SecurityOptions", "CgroupDriver")  # what mux reads; cached


def _cached_info(runner: Runner) -> Mapping[str, Any]:
    import hashlib  # here: every `mux new` imports this module, few ask docker info

    key = hashlib.sha256(runner.engine.host.encode()).hexdigest()[:16]
    cache = os.path.join(paths.data_dir(), "engines", f"{key}.json")
    try:
        with open(cache) as fh:
            data = json.load(fh)
        if isinstance(data, dict) and data.get("host") == runner.engine.host and set(KEEP) <= set(data):
            return data
    except (OSError, ValueError):
        pass
    out = runner.query(EngineArgv(["info", "--format", "{{json .}}"]))
    try:
        info = json.loads(out.stdout)
    except ValueError:
        raise MuxError("could not read `docker info` output") from None
    keep = {k: info.get(k) for k in KEEP}
    keep["host"] = runner.engine.host
    try:
        os.makedirs(os.path.dirname(cache), exist_ok=True)
        with open(cache, "w") as fh:
            json.dump(keep, fh)
    except OSError:
        pass  # a cache only: next time asks again
    return keep


def proxy_host(runner: Runner, host_address: str | None) -> str | None:
    """The name or address a session reaches the proxy at, when not docker's bridge
    gateway (None: the usual host.docker.internal:host-gateway wiring)."""
    if host_address:
        return host_address
    if runner.engine.remote:
        return None
    vm = recognise(_cached_info(runner))
    if vm is None:
        return None
    if vm.host_name is None:
        raise ConfigError(
            f"the engine is {vm.kind}: its containers cannot reach the proxy on this machine's "
            "bridge gateway, and it has no standard name for this machine",
            hint="set [proxy] host_address to an address of this machine its containers reach "
            "(with slirp4netns and --disable-host-loopback=false: 10.0.2.2) and [proxy] bind to match",
        )
    return vm.host_name


def rootless_info(runner: Runner) -> Mapping[str, Any] | None:
    """The engine's (cached) `docker info` when it is rootless Docker run by you (its
    root is you here), else None.

    Only a local engine whose socket you own (a rootful engine's is root's) costs
    the `docker info`; root's own mux never asks."""
    uid = os.getuid()
    if runner.engine.remote or uid == 0 or runner.engine.socket is None:
        return None
    try:
        if os.stat(runner.engine.socket).st_uid != uid:
            return None
    except OSError:
        return None  # docker itself will say what is wrong with the socket
    info = _cached_info(runner)
    return info if recognise(info) == ROOTLESS else None


def check_limits(info: Mapping[str, Any], limits: Limits) -> None:
    """Refuse limits the engine would drop: rootless Docker on a cgroup v1 host has no
    cgroups, and docker accepts --memory and --cpus there and runs without them."""
    if info.get("CgroupDriver") != "none":
        return
    given = [f"{k} {v}" for k, v in (("memory", limits.memory), ("cpus", limits.cpus),
                                    ("memory_swap", limits.memory_swap)) if v]
    if given:
        raise ConfigError(
            f"the engine is rootless Docker without cgroups: it would run the session without the limits "
            f"asked for ({', '.join(given)})",
            hint="drop them (--memory, --cpus, [docker.limits]), or run that engine on a cgroup v2 host "
                 "with cgroup delegation (docs.docker.com/go/rootless)")
