"""The relay's client line (mux/proxy/front.py): believed only with the relay's key."""

from __future__ import annotations

import asyncio
from pathlib import Path

from mux.proxy.files import ProxyFiles, relay_key
from mux.proxy.front import Front
from mux.proxy.limits import Limits

PEER = ("172.17.0.5", 40000)


def make(tmp_path: Path) -> tuple[Front, str]:
    files = ProxyFiles(tmp_path / "proxy")
    key = relay_key(files)
    assert relay_key(files) == key  # made once
    assert (files.relay_env.stat().st_mode & 0o777) == 0o600
    return Front(files, Limits(auth_timeout=0.5)), key


def feed(front: Front, data: bytes, eof: bool = True) -> tuple[bool, bytes]:
    async def go() -> tuple[bool, bytes]:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        if eof:
            reader.feed_eof()
        ok = await front.take_line(reader, PEER)
        return ok, (await reader.read(-1)) if ok and eof else b""

    return asyncio.run(go())


def test_a_line_with_the_key_names_the_client_and_is_taken_off(tmp_path: Path) -> None:
    front, key = make(tmp_path)
    ok, rest = feed(front, f"MUX-RELAY {key} 172.20.0.3 51234\r\nCONNECT a.test:443 HTTP/1.1\r\n".encode())
    assert ok and rest == b"CONNECT a.test:443 HTTP/1.1\r\n"
    assert front.client(PEER) == ("172.20.0.3", 51234)
    assert front.client(PEER) is None  # once


def test_any_other_line_is_stripped_and_not_believed(tmp_path: Path) -> None:
    front, key = make(tmp_path)
    for line in (f"MUX-RELAY {'0' * 32} 172.20.0.3 1", f"MUX-RELAY {key} 172.20.0.3", f"MUX-RELAY {key} ::1 80",
                 f"MUX-RELAY {key} 172.20.0.3 0", "MUX-RELAY x"):
        ok, rest = feed(front, f"{line}\r\nGET / HTTP/1.1\r\n".encode())
        assert ok and rest == b"GET / HTTP/1.1\r\n", line
        assert front.client(PEER) is None, line


def test_other_bytes_are_put_back_whole(tmp_path: Path) -> None:
    front, _ = make(tmp_path)
    for data in (b"CONNECT a.test:443 HTTP/1.1\r\n\r\n", b"\x16\x03\x01", b"MUX"):
        assert feed(front, data) == (True, data)
    assert front.client(PEER) is None


def test_silence_is_closed_at_auth_timeout_and_counted_meanwhile(tmp_path: Path) -> None:
    front, _ = make(tmp_path)
    assert feed(front, b"", eof=False) == (False, b"")
    assert front.limits.open == 0
    full = Front(front.files, Limits(max_unauthenticated=0))
    assert feed(full, b"GET / HTTP/1.1\r\n") == (False, b"")
