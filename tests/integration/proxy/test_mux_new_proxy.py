"""`mux new` wired to the credential proxy, end to end through the real CLI."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import DEBIAN, docker, mux
from tests.integration.proxy.harness import free_port
from tests.integration.proxy.servers import EchoUpstream, Pki

pytestmark = pytest.mark.docker
TOKEN = "tok-3f9a1c-never-in-a-container"


@pytest.fixture
def api(pki: Pki, gateway: str) -> Iterator[EchoUpstream]:
    with EchoUpstream(gateway, pki) as server:
        yield server


@pytest.fixture
def proxied(images, mux_home: Path, pki: Pki, gateway: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict]:
    """A mux config with a [proxy] table and a bearer rule for the gateway; the
    proxy is not running yet. Stopped (and its sessions removed) afterwards."""
    port = free_port()
    config = Path(os.environ["MUX_CONFIG"])
    config.write_text(
        f'[docker]\nimage = "{DEBIAN}"\npull = "never"\n'
        f"[proxy]\nport = {port}\ntimeout = 30\n"
        f'[credentials.api]\ndomains = ["{gateway}"]\nauth_type = "bearer"\nvalue = "${{API_TOKEN}}"\n'
    )
    monkeypatch.setenv("MUX_PROXY_UPSTREAM_CA", str(pki.ca))
    env = {"API_TOKEN": TOKEN}
    yield {"env": env, "port": port, "data": Path(os.environ["MUX_DATA_DIR"])}
    mux("delete", "--all", "--force")
    mux("proxy", "stop")


def test_new_starts_the_proxy_and_the_agent_never_sees_the_token(proxied, api, unique_name) -> None:
    assert mux("proxy", "status", env=proxied["env"]).returncode == 5
    printed = mux("new", "--dry-run", unique_name, env=proxied["env"]).stdout
    created = mux("-v", "new", unique_name, env=proxied["env"])
    assert created.returncode == 0, created.stderr
    assert mux("proxy", "status").returncode == 0  # started by `mux new`

    out = mux("exec", unique_name, "--", "curl", "-sS", "--max-time", "30", f"{api.url}/v1/models")
    assert out.stdout == "upstream ok\n", out.stderr
    assert api.requests[-1][2]["Authorization"] == f"Bearer {TOKEN}"

    inspect = docker("container", "inspect", f"mux-{unique_name}").stdout
    env_dump = mux("exec", unique_name, "--", "env").stdout
    secret = (proxied["data"] / "sessions" / unique_name / "proxy.env").read_text().split(":")[2].split("@")[0]
    for text in (inspect, env_dump, printed, created.stderr):
        assert TOKEN not in text
    for text in (printed, created.stderr):  # printed commands name the env-file, not the secret
        assert secret not in text and "--env-file" in text
    assert oct((proxied["data"] / "sessions" / unique_name / "proxy.env").stat().st_mode & 0o777) == "0o600"

    assert mux("delete", "--force", unique_name).returncode == 0
    sessions = json.loads((proxied["data"] / "proxy" / "sessions.json").read_text())["sessions"]
    assert unique_name not in sessions  # its secret no longer opens the proxy


def test_proxy_that_cannot_start_means_no_session(proxied, unique_name) -> None:
    assert "API_TOKEN" not in os.environ  # the rule's ${API_TOKEN} cannot be resolved
    result = mux("new", unique_name)
    assert result.returncode == 5, result.stderr
    assert "API_TOKEN" in result.stderr and "Traceback" not in result.stderr
    assert docker("container", "inspect", f"mux-{unique_name}", check=False).returncode != 0
    assert not (proxied["data"] / "sessions" / unique_name).exists()
    assert mux("proxy", "status").returncode == 5


def test_no_proxy_flag_and_network_none_get_no_proxy(proxied, unique_name) -> None:
    for flags in (["--no-proxy"], ["--network", "none"]):
        printed = mux("new", "--dry-run", *flags, unique_name, env=proxied["env"], check=True).stdout
        assert "HTTPS_PROXY" not in printed and "--env-file" not in printed and "mux-proxy" not in printed
    assert mux("proxy", "status").returncode == 5  # nothing started for them
