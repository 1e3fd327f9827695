"""The proxy's audit log: rotation at a size, 407s summarised per client per minute, and
what `mux proxy audit` reads back (rotated files included, control characters escaped)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from mux.proxy import audit
from mux.proxy.audit import AuditLog
from mux.proxy.settings import parse_proxy_settings


def entry(n: int, session: str | None = "a", status: int = 200) -> dict[str, object]:
    return {"time": audit.stamp(), "session": session, "host": "h.test", "method": "GET", "path": f"/{n}",
            "injected": False, "status": status, "duration_ms": 1.0}


def test_rotates_at_the_size_and_keeps_that_many_files(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl", max_bytes=4096, keep=2)
    for n in range(2000):
        log.write(entry(n))
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2"]
    assert all(p.stat().st_size <= 4096 for p in tmp_path.iterdir())
    assert (tmp_path / "audit.jsonl").stat().st_mode & 0o777 == 0o600
    found = [e["path"] for e in audit.entries(tmp_path / "audit.jsonl")]
    assert found[-1] == "/1999" and found == sorted(found, key=lambda p: int(p[1:]))  # oldest first, in order
    assert len(found) < 2000  # the oldest are gone


def test_unauthenticated_refusals_are_counted_per_client_per_minute(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1_000_000.0]
    monkeypatch.setattr(audit.time, "time", lambda: now[0])
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    for _ in range(2000):
        log.unauthenticated("172.17.0.5", entry(0, None, 407))
    log.unauthenticated("172.17.0.6", entry(0, None, 407))
    assert path.stat().st_size < 1000
    now[0] += 61
    log.flush_summaries()
    lines = [json.loads(ln) for ln in path.read_text().splitlines()]
    assert [(e.get("client"), e.get("summary"), e.get("count")) for e in lines] == [
        ("172.17.0.5", None, None), ("172.17.0.6", None, None), ("172.17.0.5", "unauthenticated", 1999)]
    log.unauthenticated("172.17.0.5", entry(0, None, 407))  # a new minute: logged in full again
    assert json.loads(path.read_text().splitlines()[-1]).get("summary") is None


def test_select_by_session_and_since(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    old = {**entry(1), "time": "2020-01-01T00:00:00+0000"}
    path.write_text("\n".join([json.dumps(old), json.dumps(entry(2, "b")), "not json", json.dumps(entry(3))]) + "\n")
    assert [e["path"] for e in audit.select(audit.entries(path), session="a")] == ["/1", "/3"]
    since = datetime.now(timezone.utc) - timedelta(hours=1)
    assert [e["path"] for e in audit.select(audit.entries(path), since=since)] == ["/2", "/3"]


@pytest.mark.parametrize(("text", "ago"), [("90s", 90), ("30m", 1800), ("2h", 7200), ("1d", 86400)])
def test_since_durations(text: str, ago: int) -> None:
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert audit.parse_since(text, now) == now - timedelta(seconds=ago)


def test_since_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="30m"):
        audit.parse_since("yesterday-ish")


def test_lines_escape_what_a_session_wrote() -> None:
    shown = audit.line({**entry(1), "host": "evil\x1b]0;pwned\x07.test", "path": "/\x9b2J"})
    assert "\x1b" not in shown and "\x07" not in shown and "\x9b" not in shown and "\\x1b" in shown


def test_settings_default_and_override() -> None:
    default = parse_proxy_settings({"proxy": {}}, "t.toml")
    assert default is not None and (default.audit_max_bytes, default.audit_keep) == (4 * 1024 * 1024, 3)
    custom = parse_proxy_settings({"proxy": {"audit_max_bytes": 65536, "audit_keep": 5}}, "t.toml")
    assert custom is not None and (custom.audit_max_bytes, custom.audit_keep) == (65536, 5)


def test_a_log_that_cannot_be_written_does_not_fail_the_request(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    log = AuditLog(tmp_path / "no-such-dir" / "audit.jsonl")
    log.write(entry(1))
    log.write(entry(2))
    assert [r.message for r in caplog.records].count(next(r.message for r in caplog.records)) == 1
