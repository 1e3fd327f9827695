"""Fixtures for tests that drive a real engine as another (non-root) user."""

from __future__ import annotations

import grp
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, engine_answers

USER_UID = 4242  # a uid no image's /etc/passwd knows


@pytest.fixture(autouse=True)
def own_instance(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Each test sees only the sessions it made ($MUX_INSTANCE labels them), so
    `mux delete --all` in a test can never touch a developer's real sessions;
    whatever a test leaves (it failed half-way, say) is removed after it."""
    import subprocess
    import uuid

    name = f"test-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("MUX_INSTANCE", name)
    yield name
    if not engine_answers():
        return  # a test that needs no engine made nothing there
    label = f"label=mux.instance={name}"
    for kind, ls in (("container", ["ps", "-aq"]), ("volume", ["volume", "ls", "-q"]),
                     ("network", ["network", "ls", "-q"])):
        found = subprocess.run(["docker", *ls, "--filter", label], capture_output=True, text=True)
        if found.stdout.split():
            rm = ["rm", "-f"] if kind == "container" else [kind, "rm"]
            subprocess.run(["docker", *rm, *found.stdout.split()], capture_output=True)


@pytest.fixture(scope="session")
def traversable_python() -> Iterator[None]:
    """Let a non-root uid run this interpreter and the mux checkout.

    The interpreter may live under /root (mode 700); adding only the search
    bit (o+x) to its ancestors lets another uid reach it without listing them.
    Modes are restored afterwards.
    """
    changed: list[tuple[Path, int]] = []
    for target in (Path(sys.executable).resolve(), ROOT):
        for directory in [*reversed(target.parents), target if target.is_dir() else target.parent]:
            # The checkout itself must be listable too: Python's import system lists a
            # sys.path entry (a clone made in a mode-700 `mktemp -d` is not).
            bits = stat.S_IXOTH | (stat.S_IROTH if directory == ROOT else 0)
            mode = directory.stat().st_mode
            if mode & bits != bits:
                os.chmod(directory, mode | bits)
                changed.append((directory, mode))
    yield
    for directory, mode in reversed(changed):
        os.chmod(directory, stat.S_IMODE(mode))


@pytest.fixture
def other_user(tmp_path: Path, traversable_python: None) -> dict[str, object]:
    """A world-reachable scratch area owned by USER_UID, and env for running mux as it."""
    base = Path(os.environ.get("TMPDIR", "/tmp")) / f"mux-user-{tmp_path.name}"
    base.mkdir(mode=0o755)
    for sub in ("home", "data", "work"):
        (base / sub).mkdir()
        os.chown(base / sub, USER_UID, USER_UID)
    os.chown(base, USER_UID, USER_UID)
    config = base / "config.toml"
    config.write_text('[docker]\nimage = "mux-test/debian"\npull = "never"\n'
                      '[git]\nuser_name = "Agent Smith"\nuser_email = "agent@example.com"\n')
    env = {"HOME": str(base / "home"), "MUX_DATA_DIR": str(base / "data"),
           "MUX_CONFIG": str(config), "PYTHONPATH": str(ROOT), "PATH": os.environ["PATH"],
           "MUX_INSTANCE": os.environ["MUX_INSTANCE"]}
    yield {"base": base, "env": env, "uid": USER_UID, "docker_gid": grp.getgrnam("docker").gr_gid}
    import shutil

    shutil.rmtree(base, ignore_errors=True)
