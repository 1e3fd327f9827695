"""`mux diff` and `mux fetch` of a session on another machine's engine: the git box
runs there, on the session's workspace volume; only the diff and a bundle come back."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import mux
from tests.integration.remote.conftest import RemoteEngine

pytestmark = pytest.mark.docker


def git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["git", "-c", "user.name=T", "-c", "user.email=t@example.com", *args],
                          cwd=cwd, check=True, capture_output=True, text=True).stdout


def test_diff_and_fetch_from_a_remote_session(remote_home, remote: RemoteEngine, unique_name, tmp_path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    git("init", "-q", "-b", "main", cwd=project)
    (project / "README").write_text("hello\n")
    git("add", "README", cwd=project)
    git("commit", "-qm", "first", cwd=project)
    box = ["--context", "box"]
    assert mux(*box, "new", "--repo", str(project), unique_name).returncode == 0
    canary = tmp_path / "canary"
    work = ("cd /workspace && git -c user.name=A -c user.email=a@b commit -q --allow-empty -m 'agent: there' && "
            "echo remote change >> README && echo new > new.txt && "
            f"git config core.fsmonitor 'touch {canary}; false'")
    assert remote.docker("exec", f"mux-{unique_name}", "sh", "-c", work).returncode == 0
    diff = mux(*box, "diff", unique_name)
    assert diff.returncode == 0, diff.stderr
    assert "+remote change" in diff.stdout and "+new" in diff.stdout
    fetched = mux(*box, "fetch", unique_name)
    assert fetched.returncode == 0, fetched.stderr
    # The session's own branch mux/NAME, under its quarantine prefix mux/NAME/.
    own = f"mux/{unique_name}/mux/{unique_name}"
    assert git("log", "-1", "--format=%s", own, cwd=project) == "agent: there\n"
    assert git("rev-parse", "--abbrev-ref", "HEAD", cwd=project) == "main\n"
    assert not canary.exists()
    assert mux(*box, "delete", "--force", unique_name).returncode == 0
