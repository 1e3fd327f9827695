"""Where the proxy may connect: mux's destination policy, decided on addresses.

A session must reach through the proxy only the public internet: global addresses
(Python's ``ipaddress.is_global``, and none of IANA's special-purpose ranges, which
are named below so that the policy does not change with the Python version) —
never the host's loopback, the host's own addresses (the Docker bridge gateways
included), private, link-local (cloud metadata at 169.254.169.254), benchmarking,
documentation or other non-global networks, unless the user lists the network in
``[proxy.filters] allowed_networks``. An IPv6 address that carries an IPv4 one
(IPv4-mapped or -compatible, NAT64 ``64:ff9b::/96``, 6to4, Teredo) is judged by
the IPv4 address inside; the local-use NAT64 prefix ``64:ff9b:1::/48`` (whose
embedding its operator chooses) is refused whole.

The policy looks at the address actually connected to, not at the name the
client wrote: a name is resolved once, each address is checked, and the proxy
then connects to the checked address itself (no second lookup, so no DNS
rebinding window). Resolving also gives every spelling of an address the same
treatment: ``127.1``, ``2130706433``, ``0x7f000001``, ``[::ffff:127.0.0.1]``,
``localhost.``, an ``/etc/hosts`` entry all end as 127.0.0.1 here.

Pure and cheap (no mitmproxy): the addon calls :meth:`Destinations.check` for
every CONNECT, plain-HTTP request and upstream connection.
"""

from __future__ import annotations

import fcntl
import functools
import ipaddress
import socket
import struct
import time
from collections.abc import Iterable
from pathlib import Path

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
SETTING = "[proxy.filters] allowed_networks"
_SIOCGIFADDR = 0x8915

# (kind, networks) in the order a refusal names them.
REFUSED: tuple[tuple[str, tuple[IPNetwork, ...]], ...] = tuple(
    (kind, tuple(ipaddress.ip_network(n) for n in nets))
    for kind, nets in (
        ("a loopback address", ("127.0.0.0/8", "::1/128")),
        ("an unspecified address", ("0.0.0.0/8", "::/128")),
        ("a link-local address", ("169.254.0.0/16", "fe80::/10")),
        ("a private address", ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")),
        ("a shared (carrier-grade NAT) address", ("100.64.0.0/10",)),
        ("a multicast address", ("224.0.0.0/4", "ff00::/8")),
        ("a reserved address", ("240.0.0.0/4",)),  # 255.255.255.255 (broadcast) included
        ("a benchmarking address", ("198.18.0.0/15", "2001:2::/48")),
        ("a documentation address", ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24",
                                     "2001:db8::/32", "3fff::/20")),
        ("an IETF protocol-assignment address", ("192.0.0.0/24", "2001::/23")),
        ("a 6to4 relay anycast address", ("192.88.99.0/24",)),
        ("a discard-only address", ("100::/64",)),
        ("a dummy IPv6 prefix", ("100:0:0:1::/64",)),
        ("a deprecated site-local address", ("fec0::/10",)),
        ("a local-use NAT64 address", ("64:ff9b:1::/48",)),
        ("an SRv6 segment address", ("5f00::/16",)),
    )
)
NON_GLOBAL = "a non-global (special-purpose) address"
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


@functools.lru_cache(maxsize=4096)
def unwrap(addr: IPAddress) -> IPAddress:
    """The IPv4 address inside an IPv4-mapped, -compatible or -translated, NAT64
    (well-known prefix), 6to4 or Teredo IPv6 address; any other address as it is."""
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return addr.ipv4_mapped
        if addr in _NAT64 or int(addr) >> 32 == 0xFFFF0000:  # NAT64; ::ffff:0:a.b.c.d (SIIT)
            return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
        if addr.sixtofour is not None:
            return addr.sixtofour
        if addr.teredo is not None:  # (server, client): the client is where it goes
            return addr.teredo[1]
        if int(addr) >> 32 == 0 and int(addr) > 1:  # ::a.b.c.d (deprecated "compatible" form)
            return ipaddress.IPv4Address(int(addr))
    return addr


@functools.lru_cache(maxsize=4096)
def special(plain: IPAddress) -> str | None:
    """The kind of special-purpose address ``plain`` is (NON_GLOBAL for one only
    ``is_global`` knows), or None for a global one. Cached: the table is fixed, and
    a proxy meets the same few addresses again and again."""
    for kind, nets in REFUSED:
        if any(plain in net for net in nets if net.version == plain.version):
            return kind
    return None if plain.is_global else NON_GLOBAL


def parse_networks(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    """CIDRs (or single addresses) as networks; ValueError names the bad one."""
    out = []
    for value in values:
        try:
            out.append(ipaddress.ip_network(value, strict=True))
        except ValueError as exc:
            raise ValueError(f"{value!r}: {exc}") from None
    return tuple(out)


class Destinations:
    """The policy for one proxy process: the allowed networks and this host's addresses."""

    def __init__(self, allowed: Iterable[str] = (), own_refresh: float = 2.0) -> None:
        self.allowed = parse_networks(allowed)
        self._own: frozenset[IPAddress] = frozenset()
        self._own_at = -1e9
        self._refresh = own_refresh

    def own_addresses(self) -> frozenset[IPAddress]:
        """This host's addresses, re-read every few seconds (docker adds bridges as it goes)."""
        now = time.monotonic()
        if now - self._own_at > self._refresh:
            self._own = host_addresses()
            self._own_at = now
        return self._own

    def refusal(self, addr: IPAddress) -> str | None:
        """Why the policy refuses to connect to ``addr``; None when it may."""
        plain = unwrap(addr)
        if any(plain in net or addr in net for net in self.allowed):
            return None
        kind = special(plain)
        if kind is not None and kind != NON_GLOBAL:
            return kind
        if plain in self.own_addresses() or addr in self.own_addresses():
            return "an address of the host mux runs on"
        return kind

    def check(self, host: str, port: int) -> tuple[str | None, str | None]:
        """Resolve ``host`` and pick the address to connect to: ``(address, None)``,
        or ``(None, reason)`` when no address of it may be reached.
        Raises :class:`Unresolvable` when the name does not resolve at all."""
        return self.choose(host, resolve(host, port))

    def choose(self, host: str, addresses: list[str]) -> tuple[str | None, str | None]:
        """The first allowed address among ``addresses`` (what ``host`` resolved to)."""
        first: tuple[IPAddress, str] | None = None
        for text in addresses:
            addr = ipaddress.ip_address(text.split("%", 1)[0])
            reason = self.refusal(addr)
            if reason is None:
                return str(addr), None
            first = first or (addr, reason)
        if first is None:
            return None, f"{host!r} has no address"
        addr, reason = first
        plain, written = unwrap(addr), host.strip("[]")
        return None, f"{written} is {reason}" if written == str(plain) else f"{written} is {plain}, {reason}"


class Unresolvable(Exception):
    """The destination's name has no address (not a policy decision: a 502)."""


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` stands for, as the C library reads it (so ``127.1``,
    ``0x7f000001`` and hosts-file names count); a trailing dot is the same name."""
    name = host.strip("[]")
    name = name[:-1] if name.endswith(".") and not name.endswith("..") else name
    try:
        infos = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise Unresolvable(f"cannot resolve {host!r}: {exc}") from None
    return [str(info[4][0]) for info in infos]


def refusal_text(reason: str) -> str:
    """The body of the 403 a refused destination gets: the policy, the reason, the fix."""
    return (
        f"mux proxy: refused by mux's network policy: {reason}; sessions may not reach "
        f"the host, private, link-local or other non-global networks through the proxy. "
        f"To allow it, add the "
        f"network to {SETTING} in mux's config (e.g. [\"10.1.0.0/16\"]) and restart the "
        f"session's proxy (`mux proxy stop`; the next mux command starts it again).\n"
    )


def host_addresses() -> frozenset[IPAddress]:
    """Every address of this host's interfaces (IPv4 by ioctl, IPv6 from /proc)."""
    found: set[IPAddress] = set()
    try:
        names = [name for _, name in socket.if_nameindex()]
    except OSError:
        names = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for name in names:
            try:
                packed = fcntl.ioctl(s.fileno(), _SIOCGIFADDR, struct.pack("256s", name[:15].encode()))
            except OSError:
                continue
            found.add(ipaddress.IPv4Address(packed[20:24]))
    try:  # secondary IPv4 addresses too: the kernel's table of local addresses
        lines = Path("/proc/net/fib_trie").read_text().splitlines()
        for prev, line in zip(lines, lines[1:]):
            if line.strip() == "/32 host LOCAL":
                found.add(ipaddress.IPv4Address(prev.split()[-1]))
    except (OSError, ValueError, IndexError):
        pass
    try:
        for line in Path("/proc/net/if_inet6").read_text().splitlines():
            hexaddr = line.split()[0]
            found.add(ipaddress.IPv6Address(bytes.fromhex(hexaddr)))
    except (OSError, ValueError, IndexError):
        pass
    return frozenset(found)
