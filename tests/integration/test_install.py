"""`make install` as a new user meets it: Debian's own python3 (PEP 668, pip 23.0),
a virtualenv in the checkout, `mux` linked onto PATH, as root and as a user."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from bench._common import checkout_copy
from tests.conftest import ROOT

SYSTEM_PYTHON = "/usr/bin/python3"
USER_PATH = "/usr/local/bin:/usr/bin:/bin"  # a normal user's PATH: no sbin, no pyenv

pytestmark = pytest.mark.skipif(
    subprocess.run([SYSTEM_PYTHON, "-c", "import ensurepip, venv"], capture_output=True).returncode != 0
    if os.path.exists(SYSTEM_PYTHON) else True,
    reason="needs Debian's /usr/bin/python3 with venv (python3-venv)")


def clean_env(**extra: str) -> dict[str, str]:
    # No PYTHONPATH: the installed mux must find its own code, not this checkout's.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "MUX_BIN_DIR")}
    return {**env, **extra}


def test_install_with_debian_python_makes_a_venv_and_links_the_plain_script(tmp_path: Path) -> None:
    src = checkout_copy(tmp_path / "src")
    bindir = tmp_path / "bin"
    env = clean_env(PYTHON=SYSTEM_PYTHON, MUX_EXTRAS="", MUX_BIN_DIR=str(bindir), PATH=USER_PATH)
    out = subprocess.run(["bash", "scripts/install.sh"], cwd=src, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    venv_mux = src / ".venv" / "bin" / "mux"
    link = bindir / "mux"
    assert link.is_symlink() and link.resolve() == venv_mux.resolve()
    assert f"{bindir} is not on your PATH" in out.stdout
    # The PEP 517 console script: no pkg_resources / entry-point scan at each start.
    script = venv_mux.read_text()
    assert script.splitlines()[0] == f"#!{src}/.venv/bin/python"
    assert "from mux.cli import main" in script
    assert "pkg_resources" not in script and "importlib.metadata" not in script
    version = subprocess.run([str(link), "--version"], env=env, capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("mux "), version.stderr
    # Editable through a one-line .pth naming the checkout, not setuptools' import hook.
    where = subprocess.run(
        [str(src / ".venv" / "bin" / "python"), "-c",
         "import sys, mux; print(mux.__file__); print(any('__editable__' in m for m in sys.modules))"],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=True).stdout.split()
    assert where == [str(src / "mux" / "__init__.py"), "False"]
    again = subprocess.run(["bash", "scripts/install.sh"], cwd=src, env=env, capture_output=True, text=True)
    assert again.returncode == 0 and "reusing .venv" in again.stdout, again.stdout + again.stderr


def test_a_docker_group_user_gets_mux_in_local_bin(other_user: dict) -> None:
    base: Path = other_user["base"]
    uid: int = other_user["uid"]
    src = checkout_copy(base / "work" / "mux")
    for path in [src, *src.rglob("*")]:
        os.lchown(path, uid, uid)
    home = base / "home"
    env = clean_env(HOME=str(home), PATH=USER_PATH, MUX_EXTRAS="", USER="muxtest")
    out = subprocess.run(["make", "install"], cwd=src, env=env, capture_output=True, text=True,
                         user=uid, group=uid, extra_groups=[other_user["docker_gid"]])
    assert out.returncode == 0, out.stdout + out.stderr
    link = home / ".local" / "bin" / "mux"
    assert link.is_symlink() and link.resolve() == (src / ".venv" / "bin" / "mux").resolve()
    assert f"{home}/.local/bin is not on your PATH" in out.stdout
    version = subprocess.run([str(link), "--version"], env=env, capture_output=True, text=True,
                             user=uid, group=uid)
    assert version.returncode == 0 and version.stdout.startswith("mux "), version.stderr


def test_system_deps_looks_in_sbin_and_names_what_a_user_lacks(other_user: dict) -> None:
    """dockerd and debootstrap live in /usr/sbin, off a user's PATH: found anyway.
    What is really missing (here: a PATH without docker, git, curl) is named, with
    the command to run as root, and nothing is installed."""
    if not (shutil.which("dockerd", path="/usr/sbin:/sbin") and shutil.which("debootstrap", path="/usr/sbin:/sbin")):
        pytest.skip("dockerd and debootstrap are not installed in /usr/sbin here")
    tools = other_user["base"] / "tools"
    tools.mkdir()
    for name in ("id", "dpkg", "dpkg-query", "readlink"):
        found = shutil.which(name, path=USER_PATH)
        assert found, name
        (tools / name).symlink_to(found)
    (tools / "python3").symlink_to(SYSTEM_PYTHON)
    out = subprocess.run(["/bin/bash", str(ROOT / "tests" / "system-deps.sh")], env={"PATH": str(tools)},
                         capture_output=True, text=True, user=other_user["uid"], group=other_user["uid"])
    assert out.returncode == 0, out.stderr
    named, command = out.stderr.splitlines()
    assert named.startswith("mux: missing Debian packages: ")
    packages = named.split(": ")[-1].split()
    assert {"docker.io", "git", "curl"} <= set(packages)  # off this PATH
    assert "debootstrap" not in packages  # in /usr/sbin: found
    assert command == f"mux: install them as root: apt-get install {' '.join(packages)}"
