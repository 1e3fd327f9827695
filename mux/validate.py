"""Checks for every value a user can give, before any side effect.

Each checker returns the normalised value or raises ConfigError with a message
that names the input and says what is allowed. ``what`` is how the caller names
the input (``--memory``, ``[docker.limits] memory in /path/config.toml``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from mux.errors import ConfigError

# As docker's own parser (go-units RAMInBytes) accepts: at most one space, one "b".
# re.ASCII: \d and \w would also match non-ASCII digits and letters, which docker rejects.
MEMORY = re.compile(r"(?P<num>\d+(?:\.\d+)?) ?(?P<unit>[kmgt]?)b?", re.IGNORECASE | re.ASCII)
CPUS = re.compile(r"\d+(?:\.\d+)?|\.\d+", re.ASCII)
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
NETWORK = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
VOLUME_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]+")
VOLUME_MODES = {"ro", "rw", "z", "Z", "cached", "delegated", "consistent", "nocopy",
                "private", "rprivate", "shared", "rshared", "slave", "rslave"}
# Docker's reference grammar (distribution/reference), simplified to what the CLI accepts.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::\d+)?/)"
IMAGE = re.compile(
    rf"{_DOMAIN}?{_COMPONENT}(?:/{_COMPONENT})*"
    r"(?::[\w][\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?",
    re.ASCII,
)
UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
MIN_MEMORY = 6 * 1024**2  # docker refuses less than 6 MiB


def memory_bytes(value: str, what: str, *, allow_unlimited: bool = False) -> int:
    text = str(value).strip()
    if allow_unlimited and text == "-1":
        return -1
    m = MEMORY.fullmatch(text)
    if not m:
        extra = ", or -1 for unlimited" if allow_unlimited else ""
        raise ConfigError(
            f"{what}: invalid memory size {value!r}: use a number with an optional "
            f"unit b, k, m, g or t (like \"512m\" or \"4g\"){extra}"
        )
    size = int(float(m["num"]) * UNITS[m["unit"].lower()])
    if size < MIN_MEMORY:
        raise ConfigError(f"{what}: memory size {value!r} is too small: docker needs at least 6m")
    return size


def memory(value: object, what: str, *, allow_unlimited: bool = False) -> str:
    """A memory size as docker's --memory takes it ("4g"); integers are bytes."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ConfigError(f"{what}: expected a size like \"4g\", got {value!r}")
    text = str(value).strip()
    memory_bytes(text, what, allow_unlimited=allow_unlimited)
    return text


def cpus(value: object, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ConfigError(f"{what}: expected a number of CPUs like \"2\" or \"1.5\", got {value!r}")
    text = str(value).strip()
    if not CPUS.fullmatch(text) or float(text) <= 0:
        raise ConfigError(
            f"{what}: invalid CPU count {value!r}: use a positive number like \"2\" or \"0.5\""
        )
    return text


def image(ref: str, what: str = "image") -> str:
    if not IMAGE.fullmatch(ref) or len(ref) > 255:
        raise ConfigError(
            f"{what}: invalid image reference {ref!r}: use name[:tag][@sha256:digest], "
            "like \"ubuntu:22.04\" or \"ghcr.io/org/image:1.0\""
        )
    return ref


def network(value: str, what: str = "network") -> str:
    target = value[len("container:"):] if value.startswith("container:") else value
    if not NETWORK.fullmatch(target):
        raise ConfigError(
            f"{what}: invalid network {value!r}: use bridge, host, none, "
            "container:<name> or the name of a docker network"
        )
    return value


def env_entry(entry: str, what: str, host_env: dict[str, str]) -> tuple[str, str | None]:
    """``K=V`` sets a value; a bare ``K`` passes the host's value by reference."""
    name, sep, value = entry.partition("=")
    if not ENV_NAME.fullmatch(name):
        raise ConfigError(
            f"{what}: invalid environment entry {entry!r}: use NAME=value or NAME, "
            "where NAME is letters, digits and '_' not starting with a digit"
        )
    if not sep:
        if name not in host_env:
            raise ConfigError(
                f"{what}: {name!r} passes the host's value, but {name} is not set on the host"
            )
        return name, None
    if "\0" in value:
        raise ConfigError(f"{what}: the value of {name} contains a NUL byte")
    return name, value


def volume(spec: str, what: str, base: Path) -> str:
    """Normalise ``HOST:CONTAINER[:MODE]``; relative host paths resolve against ``base``."""
    if re.match(r"^[A-Za-z]:[\\/]", spec) or "\\" in spec:
        raise ConfigError(
            f"{what}: {spec!r} looks like a Windows path: use HOST:CONTAINER[:MODE] with POSIX paths"
        )
    parts = spec.split(":")
    if len(parts) < 2 or len(parts) > 3 or not parts[1]:
        raise ConfigError(
            f"{what}: invalid volume {spec!r}: use HOST:CONTAINER[:MODE], "
            "like \"/home/me/datasets:/data:ro\" (a container path is required)"
        )
    source, target = parts[0], parts[1]
    if not source:
        raise ConfigError(f"{what}: invalid volume {spec!r}: the host path is empty")
    if not PurePosixPath(target).is_absolute():
        raise ConfigError(
            f"{what}: invalid volume {spec!r}: the container path {target!r} must be absolute"
        )
    if not target.strip("/"):
        raise ConfigError(f"{what}: invalid volume {spec!r}: docker cannot mount over the container's /")
    if source.startswith(("/", ".", "~")):
        path = (base / Path(source).expanduser()).resolve()
        if not path.exists():
            raise ConfigError(f"{what}: volume {spec!r}: host path {str(path)!r} does not exist")
        source = str(path)
    elif not VOLUME_NAME.fullmatch(source):
        raise ConfigError(
            f"{what}: invalid volume {spec!r}: the host side must be an absolute path, "
            "a relative path starting with ./ or a volume name"
        )
    if len(parts) == 3:
        modes = parts[2].split(",")
        bad = [m for m in modes if m not in VOLUME_MODES]
        if bad or ("ro" in modes and "rw" in modes):
            raise ConfigError(
                f"{what}: invalid volume mode {parts[2]!r} in {spec!r}: use ro or rw "
                "(optionally with z, Z, or a propagation mode)"
            )
        return f"{source}:{target}:{parts[2]}"
    return f"{source}:{target}"


def host_path(path: Path, what: str) -> Path:
    """A directory mounted with -v: it must exist, and -v cannot express a ':' in it."""
    if ":" in str(path) or "," in str(path):
        raise ConfigError(f"{what}: {str(path)!r} contains ':' or ',' which docker -v cannot mount")
    if not path.exists():
        raise ConfigError(f"{what}: {str(path)!r} does not exist")
    if not path.is_dir():
        raise ConfigError(f"{what}: {str(path)!r} is not a directory")
    return path


PORTS = re.compile(r"(\d{1,5})(?:-(\d{1,5}))?", re.ASCII)
PROTOCOLS = ("tcp", "udp", "sctp")
LOOPBACK = "127.0.0.1"
PUBLISH_FORMS = "[ADDRESS:][HOST_PORT:]CONTAINER_PORT[/tcp|udp|sctp], like 3000, 8080:80 or 127.0.0.1:8080:80"


def _port_range(text: str, spec: str, what: str, side: str) -> tuple[int, int]:
    m = PORTS.fullmatch(text)
    first, last = (int(m[1]), int(m[2] or m[1])) if m else (0, 0)
    if not m or not (1 <= first <= last <= 65535):
        raise ConfigError(f"{what}: invalid {side} port {text!r} in {spec!r}: use a port 1-65535 "
                          "or a range like 8000-8010")
    return first, last


def publish(spec: str, what: str) -> str:
    """A ``-p`` spec in docker's syntax, with the host address always written out:
    without one, docker would bind every interface; mux binds loopback (127.0.0.1)."""
    if not isinstance(spec, str) or not spec:
        raise ConfigError(f"{what}: expected a port like \"3000\" or \"8080:80\", got {spec!r}")
    body, slash, proto = spec.partition("/")
    if slash and proto not in PROTOCOLS:
        raise ConfigError(f"{what}: invalid protocol {proto!r} in {spec!r}: use tcp, udp or sctp")
    address = None
    if body.startswith("["):  # IPv6: [::1]:8080:80
        address, closed, rest = body[1:].partition("]")
        if not closed or not rest.startswith(":"):
            raise ConfigError(f"{what}: invalid port {spec!r}: use {PUBLISH_FORMS} ([ADDRESS] for IPv6)")
        parts = rest[1:].split(":")
        if len(parts) != 2:
            raise ConfigError(f"{what}: invalid port {spec!r}: use {PUBLISH_FORMS}")
    else:
        parts = body.split(":")
        if len(parts) == 3:
            address, parts = parts[0], parts[1:]
        elif len(parts) > 3:
            raise ConfigError(f"{what}: invalid port {spec!r}: use {PUBLISH_FORMS} "
                              "(an IPv6 address goes in brackets: [::1]:8080:80)")
    if address is not None:
        import ipaddress

        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            raise ConfigError(f"{what}: invalid address {address!r} in {spec!r}: use an IP address "
                              "like 127.0.0.1 (docker publishes on addresses, not host names)") from None
        if (ip.version == 6) != body.startswith("["):
            raise ConfigError(f"{what}: invalid port {spec!r}: an IPv6 address, and only one, goes in "
                              "brackets: [::1]:8080:80")
    host = parts[0] if len(parts) == 2 else ""
    container = _port_range(parts[-1], spec, what, "container")
    if host:
        host_range = _port_range(host, spec, what, "host")
        if container[0] != container[1] and host_range[1] - host_range[0] != container[1] - container[0]:
            raise ConfigError(f"{what}: invalid port {spec!r}: a host port range must be as long as "
                              "the container port range")
    addr = LOOPBACK if address is None else (f"[{address}]" if ":" in address else address)
    return f"{addr}:{host}:{parts[-1]}" + (f"/{proto}" if slash else "")


def exposes_publicly(spec: str) -> bool:
    """Whether a normalised publish spec binds every interface of the host: decided on
    the parsed address, so `[::0]:`, `[0:0::0]:` and `[::ffff:0.0.0.0]:` count as `[::]:` does."""
    import ipaddress

    text = spec[1:spec.index("]")] if spec.startswith("[") else spec.split(":", 1)[0]
    ip = ipaddress.ip_address(text)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:  # docker reads it as IPv4 (Go's To4)
        ip = ip.ipv4_mapped
    return ip.is_unspecified


def named_volume_notes(specs: Iterable[str], base: Path) -> list[str]:
    """A bare HOST name is a named volume (docker's rule) even when a directory of
    that name is right here: say so, since `./NAME` was most likely meant."""
    notes = []
    for spec in specs:
        source = spec.split(":", 1)[0]
        if VOLUME_NAME.fullmatch(source) and (base / source).is_dir():
            notes.append(f"volume {spec!r}: {source!r} is a named volume, not the directory "
                         f"{str(base / source)!r}; write ./{source} to mount the directory")
    return notes



def not_mountable_program(path: Path, script_problem: str) -> str | None:
    """Why the host file ``path`` cannot be mounted read-only as a program into any
    image (it must be a self-contained ELF executable), or None. ``script_problem``
    is what to say of a script (it needs an interpreter the image may lack)."""
    if not path.exists():
        return "does not exist"
    if not path.is_file():
        return "is not a file"
    if not os.access(path, os.X_OK):
        return "is not executable"
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    return None if magic == b"\x7fELF" else script_problem
