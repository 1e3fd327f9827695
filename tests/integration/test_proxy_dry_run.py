"""`mux proxy start|stop|regenerate-ca --dry-run`: print what would run, change nothing;
what start prints, run by hand, is the proxy."""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mux.proxy import control
from mux.proxy.files import ProxyFiles
from tests.conftest import mux
from tests.integration.proxy.harness import free_port


@pytest.fixture
def proxy_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ProxyFiles]:
    monkeypatch.setenv("MUX_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("MUX_PROXY_UPSTREAM_CA", raising=False)
    (tmp_path / "config.toml").write_text(f'[proxy]\nport = {free_port()}\nbind = ["127.0.0.1"]\ntimeout = 30\n')
    monkeypatch.setenv("MUX_CONFIG", str(tmp_path / "config.toml"))
    files = ProxyFiles.default()
    yield files
    control.stop(files)


def test_start_dry_run_prints_the_proxy_that_start_runs(proxy_home: ProxyFiles) -> None:
    printed = mux("proxy", "start", "--dry-run")
    assert printed.returncode == 0, printed.stderr
    *steps, line = printed.stdout.splitlines()  # make the state dir, write the policy; the proxy
    assert [shlex.split(s)[0] for s in steps] == ["mkdir", "sh"]
    assert not control.status(proxy_home).running and not proxy_home.policy.exists()  # nothing done
    for step in steps:
        subprocess.run(shlex.split(step), check=True)
    server = subprocess.Popen(shlex.split(line), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ})
    try:
        for _ in range(300):
            if control.status(proxy_home).running:
                break
            time.sleep(0.1)
        st = control.status(proxy_home)
        assert st.running and st.pid == server.pid  # the printed command is the proxy itself
        again = mux("proxy", "start", "--dry-run")
        assert again.stdout == "" and "already running" in again.stderr
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_stop_and_regenerate_dry_run_touch_nothing(proxy_home: ProxyFiles) -> None:
    assert mux("proxy", "stop", "--dry-run").stdout == ""  # not running: nothing to do
    st = mux("proxy", "start")
    assert st.returncode == 0, st.stderr
    running = control.status(proxy_home)
    ca = Path(running.ca).read_text()
    stop = mux("proxy", "stop", "--dry-run")
    assert stop.stdout.splitlines() == [f"kill -TERM {running.pid}"]
    refused = mux("proxy", "regenerate-ca", "--dry-run")
    assert refused.returncode == 5 and "--force" in refused.stderr
    forced = mux("proxy", "regenerate-ca", "--dry-run", "--force")
    assert forced.returncode == 0 and forced.stdout.splitlines() == [f"kill -TERM {running.pid}"]
    assert control.status(proxy_home).pid == running.pid and Path(running.ca).read_text() == ca
