"""Shared fixtures. Engine tests are marked ``docker`` (by hand, or because they
use an engine fixture): they skip when no engine answers, unless
MUX_REQUIRE_DOCKER=1 (CI), where a missing engine fails them. Other tests under
tests/integration (git, the proxy on loopback, installs) run without one.

What a test makes on the engine carries its MUX_INSTANCE label, and only what
carries that label is removed after it: a container a user made, even one named
like a test's, is never touched."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BUSYBOX = "mux-test/busybox"
DEBIAN = "mux-test/debian"
_engine: bool | None = None
# Every `python -m mux` a test starts (and the proxy mux spawns) runs this
# checkout's code, whatever is installed: a worktree tests itself.
# A suite started in the background by a script (`make test &`) inherits SIGINT
# ignored, and so would every mux it starts: the tests that press Ctrl-C need it.
signal.signal(signal.SIGINT, signal.default_int_handler)
# The suite runs as root over root-owned temp directories: its sessions run as uid 0,
# which mux refuses unless told (mux.session.account.session_ids). Tests of that default
# remove it (tests/integration/test_host_integrity.py).
os.environ.setdefault("MUX_RUN_AS_ROOT", "1")
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])


def engine_answers() -> bool:
    global _engine
    if _engine is None:
        try:
            _engine = subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            _engine = False
    return _engine


# Fixtures that reach the engine: a test using one (directly or through another
# fixture) needs the engine, whatever its module.
ENGINE_FIXTURES = {"images", "cleanup_containers", "docker_engine", "remote_engine"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if ENGINE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.docker)


def require_engine() -> None:
    """Skip without an engine, unless MUX_REQUIRE_DOCKER=1 (CI): then fail."""
    if engine_answers():
        return
    if os.environ.get("MUX_REQUIRE_DOCKER") == "1":
        pytest.fail("MUX_REQUIRE_DOCKER=1 but the Docker engine does not answer `docker info`")
    pytest.skip("no Docker engine answers (set MUX_REQUIRE_DOCKER=1 to fail instead)")


# The skips a CI run accepts, in one place: test node id -> why it cannot run there.
# Under MUX_REQUIRE_DOCKER=1 (CI) any other skip fails the run, with its reason: a test
# that cannot run on a machine set up by `make install` hides what it names.
ALLOWED_SKIPS: dict[str, str] = {}
_skipped: list[tuple[str, str]] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        longrepr = report.longrepr
        reason = str(longrepr[2]) if isinstance(longrepr, tuple) else str(longrepr)
        _skipped.append((report.nodeid, reason.removeprefix("Skipped: ")))


def unlisted_skips() -> list[tuple[str, str]]:
    return [(node, why) for node, why in _skipped if node not in ALLOWED_SKIPS]


def pytest_terminal_summary(terminalreporter: object, exitstatus: int, config: pytest.Config) -> None:
    if os.environ.get("MUX_REQUIRE_DOCKER") == "1" and unlisted_skips():
        write = terminalreporter.write_line  # type: ignore[attr-defined]
        write("MUX_REQUIRE_DOCKER=1: these tests skipped, and tests/conftest.py's ALLOWED_SKIPS does not list them:")
        for node, why in unlisted_skips():
            write(f"  {node}: {why}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("MUX_REQUIRE_DOCKER") == "1" and unlisted_skips() and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("docker") is not None:
        require_engine()


@pytest.fixture(scope="session")
def images() -> dict[str, str]:
    """The locally built test images (tests/images/build.sh makes them if missing)."""
    subprocess.run(["bash", str(ROOT / "tests" / "images" / "build.sh")], check=True)
    return {"busybox": BUSYBOX, "debian": DEBIAN}


@pytest.fixture
def unique_name() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def mux_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated mux: its own data dir and config (test image, never pull)."""
    data = tmp_path / "data"
    config = tmp_path / "config.toml"
    config.write_text(f'[docker]\nimage = "{BUSYBOX}"\npull = "never"\n')
    monkeypatch.setenv("MUX_DATA_DIR", str(data))
    monkeypatch.setenv("MUX_CONFIG", str(config))
    monkeypatch.delenv("MUX_LOG_LEVEL", raising=False)
    # A session's default workdir is the current directory: a project of the test's
    # own, not this checkout (a workdir session makes placeholders there, mux/workspace/protect.py).
    cwd = tmp_path / "cwd"
    cwd.mkdir(exist_ok=True)
    monkeypatch.chdir(cwd)
    return tmp_path


def session_dir(name: str, data: Path | None = None, env: dict[str, str] | None = None) -> Path:
    """Where mux keeps session NAME's files: per instance (see mux.paths), so a test
    that looks for leftovers looks where mux would have put them."""
    from mux import paths

    return Path(paths.sessions_root(data, env), name)


def mux(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
        check: bool = False, **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run the real `mux` command line in a child process."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "mux", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, check=check, **kwargs)  # type: ignore[call-overload]


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check)


def remove_own(names: list[str], instance: str | None) -> list[str]:
    """Force-remove the containers called ``names`` that carry ``instance``'s label
    (by ID); a container of that name without it is someone else's and stays."""
    if not names or not instance:
        return []
    found = docker("ps", "-a", "--no-trunc", "--filter", f"label=mux.instance={instance}",
                   "--format", "{{.ID}} {{.Names}}", check=False).stdout.split("\n")
    ids = [cid for cid, _, name in (ln.partition(" ") for ln in found) if name in names]
    if ids:
        docker("rm", "-f", *ids, check=False)
    return ids


@pytest.fixture
def cleanup_containers():
    """Containers registered here by name are removed after the test, pass or fail,
    if they carry this test's MUX_INSTANCE label (mux's sessions do; a test that
    makes its own container labels it too)."""
    names: list[str] = []
    yield names
    remove_own(names, os.environ.get("MUX_INSTANCE"))
