"""`mux proxy` reads the config with the same code as every other command."""

from __future__ import annotations

from pathlib import Path

import pytest

from mux import cli


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    return int(info.value.code or 0), capsys.readouterr().err


@pytest.mark.parametrize("kind", ["directory", "empty", "bad-toml", "missing", "bad-network"])
def test_proxy_start_and_new_give_the_same_config_error(kind: str, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.toml"
    if kind == "directory":
        config.mkdir()
    elif kind == "empty":
        config.write_text("\n")
    elif kind == "bad-toml":
        config.write_text("[proxy\n")
    elif kind == "bad-network":
        config.write_text('[proxy.filters]\nallowed_networks = ["10.0.0.1/8"]\n')
    monkeypatch.setenv("MUX_CONFIG", str(config))
    monkeypatch.setenv("MUX_DATA_DIR", str(tmp_path / "data"))
    proxy_code, proxy_err = run(["proxy", "start"], capsys)
    new_code, new_err = run(["new", "--dry-run", "x"], capsys)
    assert proxy_code == new_code == 2
    assert proxy_err == new_err and str(config) in proxy_err and proxy_err.startswith("mux: error: ")
    assert not (tmp_path / "data" / "proxy" / "proxy.pid").exists()


def test_list_shows_the_egress_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fp,  # type: ignore[no-untyped-def]
                                    capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from tests.cli.muxcli import PS_ALL, ps_line

    monkeypatch.setenv("MUX_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("MUX_INSTANCE", raising=False)
    w = str(tmp_path)
    rows = (ps_line("a", egress="proxy-only", workdir=w) + ps_line("b", egress="open", workdir=w)
            + ps_line("c", workdir=w))
    fp.register(PS_ALL, stdout=rows)
    with pytest.raises(SystemExit):
        cli.main(["list", "--json"])
    data = {d["name"]: d["egress"] for d in json.loads(capsys.readouterr().out)}
    assert data == {"a": "proxy-only", "b": "open", "c": ""}  # c: not through the proxy
    fp.register(PS_ALL, stdout=rows)
    with pytest.raises(SystemExit):
        cli.main(["list"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:5] == ["NAME", "BACKEND", "STATUS", "EXIT", "EGRESS"]
    # (EXIT is empty for running sessions, so the egress is the 4th word of a row)
    assert [ln.split()[3] for ln in lines[1:]] == ["proxy-only", "open", "-"]


def test_proxy_audit_reads_rotated_files_filters_and_escapes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from mux.proxy import audit

    monkeypatch.setenv("MUX_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MUX_CONFIG", str(tmp_path / "none.toml"))
    root = tmp_path / "data" / "proxy"
    root.mkdir(parents=True)

    def entry(session: str | None, path: str, when: str | None = None) -> str:
        return json.dumps({"time": when or audit.stamp(), "session": session, "host": "h.test", "method": "GET",
                           "path": path, "injected": False, "status": 200, "duration_ms": 2.5})

    (root / "audit.jsonl.2").write_text(entry("a", "/oldest", "2020-01-01T00:00:00+0000") + "\n")
    (root / "audit.jsonl.1").write_text(entry("b", "/other") + "\n" + entry("a", "/\x1b]0;x\x07") + "\n")
    (root / "audit.jsonl").write_text(entry("a", "/newest") + "\n")

    def out(argv: list[str]) -> str:
        with pytest.raises(SystemExit) as info:
            cli.main(argv)
        assert not info.value.code
        return capsys.readouterr().out

    data = json.loads(out(["proxy", "audit", "--session", "a", "--json"]))
    assert [e["path"] for e in data] == ["/oldest", "/\x1b]0;x\x07", "/newest"]  # oldest file first
    lines = out(["proxy", "audit", "--session", "a", "--since", "1h"]).splitlines()
    assert len(lines) == 2 and "/newest" in lines[1] and "\x1b" not in "".join(lines) and "\\x1b" in lines[0]
    assert len(out(["proxy", "audit"]).splitlines()) == 4
    code, err = run(["proxy", "audit", "--since", "soon"], capsys)
    assert code == 2 and err.startswith("mux: error: --since")
