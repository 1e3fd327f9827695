"""mux on rootful podman (the tests run as root): on this machine root lacks
CAP_SYS_RESOURCE, so podman cannot raise a container's ulimits; `mux new` says what to
set, `mux doctor` too, and with default_ulimits in containers.conf sessions work."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from mux.engine import podman_setup
from tests.conftest import BUSYBOX, mux

pytestmark = pytest.mark.docker


def podman(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(["podman", *args], capture_output=True, text=True, env={**os.environ, **(env or {})},
                          timeout=300)


@pytest.fixture
def rootful(images: dict[str, str], mux_home: Path, own_instance: str, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Root's podman store with the busybox image; what this test made (by its instance
    label) is removed after it. The containers.conf is the test's own (CONTAINERS_CONF)."""
    if podman("image", "exists", BUSYBOX).returncode != 0:
        save = subprocess.Popen(["docker", "save", BUSYBOX], stdout=subprocess.PIPE)
        loaded = subprocess.run(["podman", "load", "-q"], stdin=save.stdout, capture_output=True, timeout=300)
        save.wait()
        assert loaded.returncode == 0, loaded.stderr
    monkeypatch.setenv("MUX_DOCKER_CLI", "podman")
    conf = tmp_path / "containers.conf"
    conf.write_text("")
    monkeypatch.setenv("CONTAINERS_CONF", str(conf))
    yield {"conf": str(conf)}
    ids = podman("ps", "-aq", "--filter", f"label=mux.instance={own_instance}").stdout.split()
    if ids:
        podman("rm", "-f", *ids)


def test_rootful_without_sys_resource_says_what_to_set(rootful: dict[str, str], unique_name: str,
                                                       own_instance: str) -> None:
    if not podman_setup.has_sys_resource():  # this machine: measured, root lacks it
        refused = mux("new", unique_name)
        assert refused.returncode == 4, refused.stderr
        assert "error setting rlimit" in refused.stderr
        assert "mux: hint: rootful podman cannot raise the containers' ulimits here" in refused.stderr
        assert podman("ps", "-aq", "--filter", f"label=mux.instance={own_instance}").stdout == ""
        checks = mux("doctor").stdout
        assert "FAIL  ulimits" in checks and "default_ulimits" in checks

    Path(rootful["conf"]).write_text('[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]\n')
    assert "ok    ulimits" in mux("doctor").stdout
    made = mux("new", unique_name)
    assert made.returncode == 0, made.stderr
    ran = mux("exec", unique_name, "sh", "-c", "ulimit -n")
    assert ran.stdout == "1024\n", ran.stderr
    assert mux("delete", "--force", unique_name).returncode == 0
    assert podman("ps", "-aq", "--filter", f"label=mux.instance={own_instance}").stdout == ""
