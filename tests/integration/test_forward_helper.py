"""The forward helper shipped in mux/forward_bin is what helper/forward.c builds,
and it runs in an image with nothing in it but busybox."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mux.forward import HELPERS
from tests.conftest import BUSYBOX, ROOT, docker


def test_committed_helpers_are_the_build_of_the_source(tmp_path: Path) -> None:
    pytest.importorskip("ziglang", reason="the dev extra brings ziglang (`make install`)")
    subprocess.run(["bash", str(ROOT / "helper" / "build.sh"), str(tmp_path)], check=True, timeout=900)
    for arch in ("amd64", "arm64"):
        assert (tmp_path / f"mux-forward-{arch}").read_bytes() == (HELPERS / f"mux-forward-{arch}").read_bytes(), (
            f"mux/forward_bin/mux-forward-{arch} is stale: run `make helper` and commit the result")
        assert (HELPERS / f"mux-forward-{arch}").stat().st_mode & 0o755 == 0o755


def test_helper_usage_and_probe_in_busybox(images, cleanup_containers, unique_name, own_instance) -> None:
    name = f"ports-helper-{unique_name}"
    cleanup_containers.append(name)
    docker("run", "-d", "--name", name, "--label", f"mux.instance={own_instance}", BUSYBOX, "sleep", "300")
    docker("cp", str(HELPERS / "mux-forward-amd64"), f"{name}:/fwd")
    usage = docker("exec", name, "/fwd", check=False)
    assert (usage.returncode, usage.stderr) == (2, "usage: mux-forward [-z] PORT\n")
    bad = docker("exec", name, "/fwd", "-z", "0", check=False)
    assert (bad.returncode, bad.stderr) == (2, "mux-forward: invalid port 0\n")
    assert docker("exec", name, "/fwd", "-z", "8123", check=False).returncode == 1
    docker("exec", "-d", name, "httpd", "-f", "-p", "127.0.0.1:8123", "-h", "/etc")
    probe = ["exec", name, "sh", "-c",
             "for i in 1 2 3 4 5 6 7 8 9 10; do /fwd -z 8123 && exit 0; sleep 0.2; done; exit 1"]
    assert docker(*probe, check=False).returncode == 0
    answer = subprocess.run(["docker", "exec", "-i", name, "/fwd", "8123"], input=b"GET /passwd HTTP/1.0\r\n\r\n",
                            capture_output=True, timeout=60)
    assert answer.returncode == 0
    assert answer.stdout.startswith(b"HTTP/1.1 200 OK") and answer.stdout.endswith(b"root:x:0:0:root:/root:/bin/sh\n")
