"""Helpers for the credential-proxy tests: a real proxy, and sessions made by `mux new`.

Network: only loopback, the Docker bridge gateway and containers started here.
Sessions are made the way users make them (`mux new`, the real CLI), under an
instance of their own, and removed afterwards; every proxy started here is stopped.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mux import config as mux_config
from mux.proxy import control
from mux.proxy.files import ProxyFiles
from mux.proxy.settings import ProxySettings
from tests.conftest import DEBIAN, mux, session_dir
from tests.integration.proxy.servers import Pki

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
    env: dict[str, str]  # what `mux` needs to see this proxy's config, data dir and port


def start_proxy(tmp: Path, config_text: str, pki: Pki, extra_env: dict[str, str]) -> Iterator[ProxyUnderTest]:
    """A real background proxy with its own data dir, config and port; stopped afterwards.

    The config gets a [docker] table for the sessions `run_session` makes."""
    config = tmp / "config.toml"
    config.write_text(f'[docker]\nimage = "{DEBIAN}"\npull = "never"\n{config_text}')
    token = f"tok-{uuid.uuid4().hex}"
    env = {"MUX_DATA_DIR": str(tmp / "data"), "MUX_CONFIG": str(config), "MUX_PROXY_PORT": str(free_port()),
           "MUX_PROXY_UPSTREAM_CA": str(pki.ca), TOKEN_ENV: token,
           "MUX_INSTANCE": f"test-proxy-{uuid.uuid4().hex[:8]}", **extra_env}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        settings = mux_config.load(config).proxy
        assert settings is not None
        files = ProxyFiles.default()
        try:
            control.start(settings, config_path=config)
            yield ProxyUnderTest(files, settings, config, tmp / "data", token, env)
        finally:
            label = f"label=mux.instance={env['MUX_INSTANCE']}"
            found = docker("ps", "-aq", "--filter", label).stdout.split()
            if found:
                docker("rm", "-f", *found, check=False)
            networks = docker("network", "ls", "-q", "--filter", label).stdout.split()  # proxy-only's
            if networks:
                docker("network", "rm", *networks, check=False)
            control.stop(files)


@dataclass
class SessionContainer:
    name: str  # the container's name
    session: str
    env_file: Path  # the session's proxy.env (holds its proxy secret)
    printed: str  # what `mux -v new` printed: the docker commands it ran
    key: str = ""  # its name in the proxy's registry and audit log: INSTANCE+NAME

    def sh(self, script: str, check: bool = False, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        # The script is a fixed string written in the test, never user input.
        return docker("exec", self.name, "bash", "-c", script, check=check, timeout=timeout)


def run_session(proxy: ProxyUnderTest, network: str | None, extra: list[str]) -> Iterator[SessionContainer]:
    """A proxied session made by `mux new` (the path users run), plus ``extra`` flags
    (test mounts); it sleeps, tests `docker exec` into it. Deleted afterwards."""
    session = f"s{uuid.uuid4().hex[:8]}"
    net = ["--network", network] if network else []
    made = mux("-v", "new", "--proxy", *net, *extra, session, "--", "sleep", "600", env=proxy.env)
    assert made.returncode == 0, made.stderr
    try:
        yield SessionContainer(f"mux-{session}", session,
                               session_dir(session, proxy.data, proxy.env) / "proxy.env", made.stderr,
                               key=f"{proxy.env['MUX_INSTANCE']}+{session}")
    finally:
        mux("delete", "--force", session, env=proxy.env)
