"""Previews of proxy-only sessions: on an internal network no port can be
published, and `mux forward` still reaches them (docker carries the bytes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import BUSYBOX, docker, mux
from tests.integration.proxy.test_egress import proxied  # noqa: F401 (fixture)
from tests.integration.test_ports import Forward, get

pytestmark = pytest.mark.docker


def test_forward_reaches_a_proxy_only_session(proxied, unique_name: str, tmp_path: Path) -> None:  # noqa: F811
    work = tmp_path / "work"
    work.mkdir()
    (work / "index.html").write_text("behind the proxy\n")
    refused = mux("new", "--egress", "proxy-only", "--image", BUSYBOX, "--workdir", str(work), "-p", "8000",
                  unique_name, env=proxied["env"])
    assert refused.returncode == 2
    assert refused.stderr.startswith("mux: error: -p 127.0.0.1::8000: a proxy-only session's network is internal")
    assert f"mux forward {unique_name} PORT" in refused.stderr
    assert docker("container", "inspect", f"mux-{unique_name}", check=False).returncode != 0

    made = mux("new", "--egress", "proxy-only", "--image", BUSYBOX, "--workdir", str(work), unique_name,
               env=proxied["env"])
    assert made.returncode == 0, made.stderr
    served = mux("exec", unique_name, "--", "httpd", "-p", "127.0.0.1:8000", "-h", "/workspace")
    assert served.returncode == 0, served.stderr
    fwd = Forward(unique_name, ":8000")
    try:
        assert get(f"http://127.0.0.1:{fwd.local_port(8000)}/index.html") == b"behind the proxy\n"
        assert fwd.ctrl_c()[0] == 0
    finally:
        fwd.kill()
