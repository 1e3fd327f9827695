"""Where containers can reach the proxy: the Docker bridge's gateway address on the host."""

from __future__ import annotations

import fcntl
import ipaddress
import json
import socket
import struct

from mux.engine.argv import EngineArgv
from mux.engine.runner import Runner
from mux.errors import MuxError

_SIOCGIFADDR = 0x8915


def bridge_gateway(runner: Runner | None = None) -> str | None:
    """The default bridge's gateway (what ``host-gateway`` resolves to), or None.

    Docker 20.10 often leaves ``IPAM.Config[].Gateway`` empty for the default
    bridge, so fall back to the bridge interface's own address, then to the
    first host of the subnet (where Docker puts the gateway).
    """
    runner = runner or Runner()
    try:
        res = runner.query(EngineArgv(["network", "inspect", "bridge"]))
        net = json.loads(res.stdout)[0]
    except (MuxError, ValueError, IndexError):
        return interface_address("docker0")
    configs = (net.get("IPAM") or {}).get("Config") or []
    for cfg in configs:
        if cfg.get("Gateway") and ":" not in cfg["Gateway"]:
            return str(cfg["Gateway"]).split("/")[0]
    ifname = (net.get("Options") or {}).get("com.docker.network.bridge.name", "docker0")
    found = interface_address(ifname)
    if found:
        return found
    for cfg in configs:
        try:
            subnet = ipaddress.ip_network(cfg.get("Subnet", ""))
        except ValueError:
            continue
        if subnet.version == 4:
            return str(next(subnet.hosts()))
    return None


def interface_address(ifname: str) -> str | None:
    """IPv4 address of a network interface (Linux ioctl; no `ip` command needed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            packed = fcntl.ioctl(s.fileno(), _SIOCGIFADDR, struct.pack("256s", ifname[:15].encode()))
        except OSError:
            return None
    return socket.inet_ntoa(packed[20:24])


def can_connect(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
