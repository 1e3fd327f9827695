"""CI fails on a skip it does not list: tests/conftest.py's ALLOWED_SKIPS is the one place."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

TESTS = '''
import pytest

def test_runs():
    pass

def test_cannot_run_here():
    pytest.skip("needs a thing this machine lacks")
'''


def run_suite(tmp_path: Path, require: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "tests").mkdir()
    shutil.copy(ROOT / "tests" / "conftest.py", tmp_path / "tests" / "conftest.py")
    (tmp_path / "tests" / "__init__.py").write_text("")
    (tmp_path / "tests" / "test_some.py").write_text(TESTS)
    env = {**os.environ, "MUX_REQUIRE_DOCKER": require}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_an_unlisted_skip_fails_ci_with_its_reason(tmp_path: Path) -> None:
    out = run_suite(tmp_path, "1")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "tests/test_some.py::test_cannot_run_here: needs a thing this machine lacks" in out.stdout


def test_outside_ci_a_skip_is_a_skip(tmp_path: Path) -> None:
    out = run_suite(tmp_path, "")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 passed, 1 skipped" in out.stdout
