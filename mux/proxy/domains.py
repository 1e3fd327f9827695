"""Host patterns: ``example.com`` matches itself, ``*.example.com`` any subdomain.

An IP address is a pattern too (matched literally), so a rule or filter can name a
host reached by address, such as a service on the Docker bridge gateway.
"""

from __future__ import annotations

import ipaddress
import re

_LABEL = r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?"
_NAME = re.compile(rf"^(\*\.)?{_LABEL}(\.{_LABEL})*$")


def normalize_host(host: str) -> str:
    return host.strip().lower().rstrip(".").strip("[]")


def is_valid_pattern(pattern: str) -> bool:
    if not isinstance(pattern, str) or not pattern:
        return False
    try:
        ipaddress.ip_address(pattern.strip("[]"))
        return True
    except ValueError:
        return bool(_NAME.match(pattern.lower().rstrip(".")))


def matches(pattern: str, host: str) -> bool:
    """Whether ``host`` is covered by ``pattern`` (case-insensitive, no partial labels).

    ``*.example.com`` covers ``a.example.com`` and ``a.b.example.com`` but not
    ``example.com`` itself and never ``badexample.com``.
    """
    pattern = normalize_host(pattern)
    host = normalize_host(host)
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and len(host) > len(pattern) - 1
    return host == pattern


def any_match(patterns: tuple[str, ...], host: str) -> bool:
    return any(matches(p, host) for p in patterns)
