"""Connection limits as bookkeeping, and the watchdog reading EMFILE as load (issue 23 item 2)."""

from __future__ import annotations

import asyncio
import errno
from pathlib import Path

import pytest

from mux.proxy import limits as limits_module
from mux.proxy import server
from mux.proxy.files import ProxyFiles
from mux.proxy.limits import Limits, from_policy


def test_unauthenticated_connections_are_limited_per_client() -> None:
    lim = Limits(max_connections=100, max_unauthenticated=3, max_session_connections=2)
    assert [lim.connected(f"c{i}", "10.0.0.5") for i in range(3)] == [None] * 3
    assert "10.0.0.5" in (lim.connected("c3", "10.0.0.5") or "")
    assert lim.connected("d0", "10.0.0.6") is None  # another client is not held up
    # Authenticating moves a connection to its session's count, freeing the client's share.
    assert lim.authenticated("c0", "a") is None and lim.authenticated("c0", "a") is None
    assert lim.connected("c4", "10.0.0.5") is None
    assert lim.authenticated("c1", "a") is None
    assert "session a" in (lim.authenticated("c2", "a") or "")
    assert lim.authenticated("d0", "b") is None  # another session has its own share
    lim.disconnected("c0")
    assert lim.authenticated("c2", "a") is None
    for conn in ("c1", "c2", "c3", "c4", "d0", "never-counted"):
        lim.disconnected(conn)
    assert lim.open == 0


def test_total_connections_are_limited() -> None:
    lim = Limits(max_connections=4, max_unauthenticated=100)
    assert [lim.connected(f"c{i}", f"10.0.0.{i}") for i in range(4)] == [None] * 4
    assert "max_connections" in (lim.connected("c9", "10.0.0.9") or "")
    lim.disconnected("c0")
    assert lim.connected("c9", "10.0.0.9") is None


def test_total_never_exceeds_what_the_file_limit_carries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits_module.resource, "getrlimit", lambda _: (1024, 1024))
    assert Limits(max_connections=100_000).max_connections == (1024 - limits_module.RESERVED_FDS) // 2


def test_limits_from_policy_keep_defaults_for_nonsense() -> None:
    got = from_policy({"max_connections": 10, "auth_timeout": 2.5, "max_unauthenticated": "x",
                       "max_session_connections": True})
    assert (got.max_connections, got.auth_timeout) == (10, 2.5)
    assert got.max_unauthenticated == limits_module.DEFAULT_MAX_UNAUTHENTICATED
    assert got.max_session_connections == limits_module.DEFAULT_MAX_SESSION_CONNECTIONS


@pytest.mark.parametrize(("error", "stops"), [
    pytest.param(OSError(errno.EMFILE, "Too many open files"), False, id="emfile-is-load"),
    pytest.param(OSError(errno.ENFILE, "Too many open files in system"), False, id="enfile-is-load"),
    pytest.param(FileNotFoundError(errno.ENOENT, "gone"), True, id="pid-file-gone"),
])
def test_watchdog_stops_only_when_the_pid_file_names_another(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             error: OSError, stops: bool) -> None:
    files = ProxyFiles(tmp_path)
    calls = {"n": 0}

    def read_text(self: Path) -> str:
        calls["n"] += 1
        raise error

    monkeypatch.setattr(Path, "read_text", read_text)
    stopped: list[bool] = []

    async def run() -> None:
        task = asyncio.ensure_future(server._orphaned(files, lambda: stopped.append(True), every=0.01))
        await asyncio.sleep(0.1)
        task.cancel()

    asyncio.run(run())
    assert calls["n"] >= 2 or stops
    assert bool(stopped) is stops
