"""A tiny UDP DNS responder for tests: answers A queries for the names it is given,
NXDOMAIN otherwise, and logs every query (source address and name) one per line.

    python dns_responder.py ADDRESS LOG NAME=IP...

Run inside another network namespace with `nsenter -n` (the remote engine's), so
its dockerd can use it as the only resolver in its /etc/resolv.conf. Prints
"ready" on stdout once bound.
"""

from __future__ import annotations

import socket
import struct
import sys


def qname(packet: bytes) -> tuple[str, int]:
    """The first question's name and the offset just past its type and class."""
    labels, i = [], 12
    while packet[i]:
        n = packet[i]
        labels.append(packet[i + 1:i + 1 + n].decode("ascii", "replace"))
        i += 1 + n
    return ".".join(labels), i + 5


def answer(packet: bytes, names: dict[str, str]) -> bytes:
    name, end = qname(packet)
    qtype = struct.unpack("!H", packet[end - 4:end - 2])[0]
    ip = names.get(name.lower().rstrip("."))
    header = packet[:2] + struct.pack("!HHHHH", 0x8180 if ip else 0x8183, 1, 1 if ip and qtype == 1 else 0, 0, 0)
    body = packet[12:end]
    if ip and qtype == 1:
        body += b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 5, 4) + socket.inet_aton(ip)
    return header + body


def main() -> None:
    address, log = sys.argv[1], sys.argv[2]
    names = dict(arg.split("=", 1) for arg in sys.argv[3:])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((address, 53))
    print("ready", flush=True)
    while True:
        packet, peer = sock.recvfrom(4096)
        try:
            name, _ = qname(packet)
            with open(log, "a") as fh:
                fh.write(f"{peer[0]} {name}\n")
            sock.sendto(answer(packet, names), peer)
        except (IndexError, struct.error, OSError):
            continue


if __name__ == "__main__":
    main()
