"""Previews on another machine's engine (reached over ssh): `mux forward` needs
no port on that machine, and `-p` publishes on that machine's loopback."""

from __future__ import annotations

import concurrent.futures
import json
from pathlib import Path

import pytest

from tests.conftest import BUSYBOX, mux
from tests.integration.remote.conftest import RemoteEngine
from tests.integration.test_ports import Forward, get, port_is_free

pytestmark = pytest.mark.docker


@pytest.fixture
def remote_session(remote_home: Path, remote: RemoteEngine, unique_name: str, tmp_path: Path) -> str:
    (remote_home / "config.toml").write_text(f'[docker]\nimage = "{BUSYBOX}"\npull = "never"\n')
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "index.html").write_text("served on the other machine\n")
    made = mux("--context", "box", "new", "--copy", "--workdir", str(proj), "-p", "8080", unique_name)
    assert made.returncode == 0, made.stderr
    served = mux("--context", "box", "exec", unique_name, "--", "httpd", "-p", "127.0.0.1:8000", "-h", "/workspace")
    assert served.returncode == 0, served.stderr
    return unique_name


def test_forward_through_the_remote_engine(remote_session: str, remote: RemoteEngine) -> None:
    fwd = Forward(remote_session, ":8000", options=("--context", "box"))
    try:
        local = fwd.local_port(8000)
        url = f"http://127.0.0.1:{local}/index.html"
        with concurrent.futures.ThreadPoolExecutor(max_workers=10) as pool:
            bodies = list(pool.map(lambda _: get(url), range(40)))
        assert bodies == [b"served on the other machine\n"] * 40
        # The helper went over with docker cp: it is in the remote container, not a mount.
        listing = remote.docker("exec", f"mux-{remote_session}", "ls", "-a", "/").stdout.split()
        assert [f for f in listing if f.startswith(".mux-forward-")]
        code, _, err = fwd.ctrl_c()
        assert code == 0, err
        assert port_is_free(local)
    finally:
        fwd.kill()


def test_publish_binds_the_remote_machines_loopback(remote_session: str, remote: RemoteEngine) -> None:
    listed = json.loads(mux("--context", "box", "port", "--json", remote_session, check=True).stdout)
    assert [(p["kind"], p["container_port"], p["host_ip"]) for p in listed] == [("published", 8080, "127.0.0.1")]
    bindings = remote.docker("container", "inspect", "--format", "{{json .HostConfig.PortBindings}}",
                             f"mux-{remote_session}").stdout
    assert json.loads(bindings) == {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}
