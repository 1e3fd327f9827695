"""Process management on real processes: start/stop/status, stale pid files, CA regeneration, the CLI."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from mux.errors import ProxyError
from mux.proxy import control, registry
from mux.proxy.cli import proxy as proxy_group
from mux.proxy.files import ProxyFiles
from mux.proxy.settings import ProxySettings
from tests.integration.proxy.harness import free_port

LOOPBACK_ONLY = ("127.0.0.1",)  # no docker needed for these


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ProxyFiles]:
    monkeypatch.setenv("MUX_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("MUX_PROXY_UPSTREAM_CA", raising=False)
    (tmp_path / "config.toml").write_text("[proxy]\ntimeout = 30\n")
    monkeypatch.setenv("MUX_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("MUX_PROXY_PORT", str(free_port()))
    f = ProxyFiles.default()
    yield f
    control.stop(f)


def settings() -> ProxySettings:
    return ProxySettings(port=int(os.environ["MUX_PROXY_PORT"]), bind=LOOPBACK_ONLY, timeout=30)


def test_start_status_stop(files: ProxyFiles) -> None:
    st = control.start(settings())
    assert st.running and st.addresses == LOOPBACK_ONLY and st.pid
    assert stat.S_IMODE(files.ca_key.stat().st_mode) == 0o600
    assert stat.S_IMODE(files.root.stat().st_mode) == 0o700
    assert control.start(settings()).pid == st.pid  # a second start reuses the running proxy
    assert control.stop(files) is True
    assert not control.status(files).running and not files.pid.exists()
    assert control.stop(files) is False


def test_stale_pid_file_is_not_running(files: ProxyFiles) -> None:
    files.ensure()
    # A live process that is not our proxy (this test process), and a dead pid.
    for pid in (os.getpid(), 2**22 - 1):
        files.pid.write_text(f"{pid}\n")
        files.state.write_text(json.dumps({"pid": pid, "port": 1, "addresses": ["127.0.0.1"]}))
        assert control.status(files).running is False
        assert control.stop(files) is False
        assert not files.pid.exists() and not files.state.exists()
    files.pid.write_text(f"{os.getpid()}\n")
    assert control.start(settings()).running  # start cleans up after the stale file


def test_status_exit_codes_and_json(files: ProxyFiles) -> None:
    runner = CliRunner()
    res = runner.invoke(proxy_group, ["status"])
    assert res.exit_code == 5 and "not running" in res.output
    res = runner.invoke(proxy_group, ["start", "--bind", "127.0.0.1"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(proxy_group, ["status", "--json"])
    data = json.loads(res.output)
    assert res.exit_code == 0
    assert {"running", "pid", "addresses", "port", "ca", "audit_log"} <= set(data)
    assert data["running"] is True and data["addresses"] == ["127.0.0.1"]
    assert runner.invoke(proxy_group, ["stop"]).exit_code == 0
    res = runner.invoke(proxy_group, ["status", "--json"])
    assert res.exit_code == 5 and json.loads(res.output)["running"] is False


def test_bind_everywhere_is_refused(files: ProxyFiles) -> None:
    res = CliRunner().invoke(proxy_group, ["start", "--bind", "0.0.0.0"])
    assert res.exit_code != 0 and "0.0.0.0" in str(res.exception)
    assert not control.status(files).running


def test_regenerate_ca(files: ProxyFiles) -> None:
    control.start(settings())
    old = files.ca_cert.read_text()
    with pytest.raises(ProxyError, match="running"):
        control.regenerate_ca(files=files)
    assert files.ca_cert.read_text() == old
    assert control.regenerate_ca(force=True, files=files) is True
    new = files.ca_cert.read_text()
    assert new != old and new.strip() in files.bundle.read_text() and old.strip() not in files.bundle.read_text()
    assert control.status(files).running
    assert stat.S_IMODE(files.ca_key.stat().st_mode) == 0o600
    control.stop(files)
    assert control.regenerate_ca(files=files) is False  # not running: no --force needed
    assert files.ca_cert.read_text() != new


def test_start_failure_shows_log_tail(files: ProxyFiles, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[credentials.x]\ndomains = ["a.example"]\nauth_type = "bearer"\nvalue = "${MUX_TEST_UNSET_VAR}"\n')
    with pytest.raises(ProxyError, match="exited while starting") as info:
        control.start(settings(), config_path=bad)
    assert "MUX_TEST_UNSET_VAR" in (info.value.hint or "")


def test_missing_mitmproxy_says_what_to_install(files: ProxyFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    real = control.importlib.util.find_spec
    monkeypatch.setattr(control.importlib.util, "find_spec", lambda n: None if n == "mitmproxy" else real(n))
    res = CliRunner().invoke(proxy_group, ["start", "--bind", "127.0.0.1"])
    assert isinstance(res.exception, ProxyError) and res.exception.exit_code == 5
    assert "pip install 'mux[proxy]'" in (res.exception.hint or "")


def test_importing_cli_does_not_import_mitmproxy() -> None:
    code = "import sys, mux.proxy.cli, mux.egress.wiring; sys.exit(any(m.startswith('mitmproxy') for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def _register_one(args: tuple[str, int]) -> None:
    import os

    os.environ["MUX_DATA_DIR"] = args[0]
    registry.register(ProxyFiles.default(), f"s{args[1]}", f"secret{args[1]}")


def test_parallel_registrations_are_all_kept(files: ProxyFiles, tmp_path: Path) -> None:
    import multiprocessing

    # "spawn", not "fork": forking a multithreaded pytest can deadlock a worker.
    with multiprocessing.get_context("spawn").Pool(8) as pool:
        pool.map_async(_register_one, [(str(tmp_path / "data"), i) for i in range(40)]).get(timeout=120)
    assert registry.names(files) == sorted(f"s{i}" for i in range(40))


def test_interrupted_start_leaves_no_proxy(files: ProxyFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    spawned: list[int] = []
    real_spawn, real_reap = control.spawn_detached, control._reap

    def spawn(*args: object, **kwargs: object) -> int:
        spawned.append(real_spawn(*args, **kwargs))  # type: ignore[arg-type]
        return spawned[-1]

    def reap_once_then_interrupt(pid: int) -> bool:
        monkeypatch.setattr(control, "_reap", real_reap)
        raise KeyboardInterrupt  # Ctrl-C while `mux new` waits for the proxy to listen

    monkeypatch.setattr(control, "spawn_detached", spawn)
    monkeypatch.setattr(control, "_reap", reap_once_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        control.start(settings())
    assert spawned and not Path(f"/proc/{spawned[0]}").exists()  # stopped and reaped
    assert not control.status(files).running


def test_a_proxy_whose_state_dir_is_gone_stops_by_itself(files: ProxyFiles) -> None:
    import shutil
    import time

    pid = control.start(settings()).pid
    assert pid
    shutil.rmtree(files.root)  # say, a test's data dir removed with the proxy still running
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not control._reap(pid):
        time.sleep(0.2)
    assert not Path(f"/proc/{pid}").exists()
