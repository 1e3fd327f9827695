"""[proxy] host_address on the real engine: sessions reach the proxy at that
address, with no --add-host, and the credential is injected as usual."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import DEBIAN, docker, mux
from tests.integration.proxy.harness import free_port
from tests.integration.proxy.servers import EchoUpstream, Pki

pytestmark = pytest.mark.docker
TOKEN = "tok-hostaddr-52b7"


def test_host_address_override(images, mux_home: Path, pki: Pki, gateway: str, api: EchoUpstream,
                               unique_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    Path(os.environ["MUX_CONFIG"]).write_text(
        f'[docker]\nimage = "{DEBIAN}"\npull = "never"\n'
        f'[proxy]\nport = {port}\ntimeout = 30\nhost_address = "{gateway}"\n'
        f'[proxy.filters]\nallowed_networks = ["{gateway}/32"]\n'
        f'[credentials.api]\ndomains = ["{gateway}"]\nauth_type = "bearer"\nvalue = "${{API_TOKEN}}"\n')
    monkeypatch.setenv("MUX_PROXY_UPSTREAM_CA", str(pki.ca))
    try:
        made = mux("-v", "new", unique_name, env={"API_TOKEN": TOKEN})
        assert made.returncode == 0, made.stderr
        assert "--add-host" not in made.stderr
        proxy_url = mux("exec", unique_name, "--", "printenv", "HTTPS_PROXY").stdout.strip()
        assert proxy_url.endswith(f"@{gateway}:{port}")
        out = mux("exec", unique_name, "--", "curl", "-sS", "--max-time", "30", f"{api.url}/v1/models")
        assert out.stdout == "upstream ok\n", out.stderr
        assert api.requests[-1][2]["Authorization"] == f"Bearer {TOKEN}"
        doctor = {c["name"]: c for c in json.loads(mux("doctor", "--json").stdout)["checks"]}
        assert doctor["reach"]["ok"] and f"{gateway}:{port}" in doctor["reach"]["detail"]
        # An address the engine's containers cannot reach (TEST-NET-1) is a failing check.
        config = Path(os.environ["MUX_CONFIG"])
        config.write_text(config.read_text().replace(f'host_address = "{gateway}"', 'host_address = "192.0.2.1"'))
        broken = mux("doctor")
        assert broken.returncode == 1
        assert "FAIL" in next(line for line in broken.stdout.splitlines() if " reach " in line)
        hosts = docker("container", "inspect", "--format", "{{json .HostConfig.ExtraHosts}}", f"mux-{unique_name}")
        assert "host.docker.internal" not in hosts.stdout
    finally:
        mux("delete", "--force", unique_name)
        mux("proxy", "stop")
