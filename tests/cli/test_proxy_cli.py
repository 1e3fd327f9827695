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
