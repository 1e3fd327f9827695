"""Helpers for the credential-proxy tests: a real proxy, a session container wired to it.

Network: only loopback, the Docker bridge gateway and containers started here.
Every container is named ``mux-test-proxy-*`` and removed afterwards; every
proxy started here is stopped.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mux.proxy import control
from mux.proxy.files import ProxyFiles
from mux.proxy.session import Wiring, session_wiring
from mux.proxy.settings import ProxySettings, load_toml, parse_proxy_settings
from tests.integration.proxy.servers import Pki

DEBIAN = "mux-test/debian"
TOKEN_ENV = "MUX_TEST_PROXY_TOKEN"


def docker(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=timeout)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ProxyUnderTest:
    files: ProxyFiles
    settings: ProxySettings
    config: Path
    data: Path
    token: str


def start_proxy(tmp: Path, config_text: str, pki: Pki, extra_env: dict[str, str]) -> Iterator[ProxyUnderTest]:
    """A real background proxy with its own data dir, config and port; stopped afterwards."""
    config = tmp / "config.toml"
    config.write_text(config_text)
    token = f"tok-{uuid.uuid4().hex}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MUX_DATA_DIR", str(tmp / "data"))
        mp.setenv("MUX_PROXY_PORT", str(free_port()))
        mp.setenv("MUX_PROXY_UPSTREAM_CA", str(pki.ca))
        mp.setenv(TOKEN_ENV, token)
        for key, value in extra_env.items():
            mp.setenv(key, value)
        settings = parse_proxy_settings(load_toml(config), str(config))
        assert settings is not None
        files = ProxyFiles.default()
        try:
            control.start(settings, config_path=config)
            yield ProxyUnderTest(files, settings, config, tmp / "data", token)
        finally:
            control.stop(files)


@dataclass
class SessionContainer:
    name: str  # the container's name
    session: str
    wiring: Wiring

    def sh(self, script: str, check: bool = False, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        # The script is a fixed string written in the test, never user input.
        return docker("exec", self.name, "bash", "-c", script, check=check, timeout=timeout)


def run_session(proxy: ProxyUnderTest, network: str | None, extra: list[str]) -> Iterator[SessionContainer]:
    """A long-lived container wired exactly as ``session_wiring`` says (plus ``extra`` test mounts)."""
    session = f"s{uuid.uuid4().hex[:8]}"
    name = f"mux-test-proxy-{session}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MUX_DATA_DIR", str(proxy.data))
        wiring = session_wiring(proxy.settings, session, network, files=proxy.files)
    net = ["--network", network] if network else []
    try:
        docker("run", "-d", "--pull", "never", "--name", name, *net, *wiring.docker_args(), *extra,
               DEBIAN, "sleep", "600")
        yield SessionContainer(name, session, wiring)
    finally:
        docker("rm", "-f", name, check=False)
