"""Test-only name resolution for the proxy process: ``MUX_TEST_RESOLVE="fake.test=127.0.0.1"``.

The credential proxy runs on the host and resolves the CONNECT target itself.
The agent tests give the fake API a ``*.test`` name (never a real service's
name) without touching the machine's /etc/hosts: a process started with this
directory on PYTHONPATH resolves exactly the listed names, and only those.
"""

import os
import socket

_MAP = dict(
    item.split("=", 1) for item in os.environ.get("MUX_TEST_RESOLVE", "").split(",") if "=" in item
)
if _MAP:
    _real = socket.getaddrinfo

    def _getaddrinfo(host, *args, **kwargs):  # type: ignore[no-untyped-def]
        if isinstance(host, bytes):
            host = host.decode()
        if isinstance(host, str) and host.lower().rstrip(".") in _MAP:
            host = _MAP[host.lower().rstrip(".")]
        return _real(host, *args, **kwargs)

    socket.getaddrinfo = _getaddrinfo
