"""The second engine is really another machine: its own filesystem, reached over ssh."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import docker
from tests.integration.remote.conftest import RemoteEngine


def test_remote_engine_is_another_engine_and_filesystem(remote: RemoteEngine, tmp_path: Path) -> None:
    assert remote.docker("info", "--format", "{{.ID}}").stdout != docker("info", "--format", "{{.ID}}").stdout
    (tmp_path / "here.txt").write_text("local\n")
    out = remote.docker("run", "--rm", "-v", f"{tmp_path}:/mnt", "mux-test/busybox", "ls", "-A", "/mnt")
    assert out.stdout == ""  # the local path is an empty directory there: the pitfall itself
