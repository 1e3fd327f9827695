"""A local --repo is mounted at its own path, so origin works inside the session."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mux.create import NewOptions, repo_source_mount
from mux.repo import local_path


@pytest.mark.parametrize(("url", "path"), [
    pytest.param("/srv/app", "/srv/app", id="path"),
    pytest.param("file:///srv/my%20app", "/srv/my app", id="file-url"),
    pytest.param("https://example.test/app.git", None, id="https"),
    pytest.param("git@example.test:org/app.git", None, id="scp-like"),
])
def test_local_path(url: str, path: str | None) -> None:
    assert local_path(url) == path


def test_mounted_at_its_own_path_once(tmp_path: Path) -> None:
    repo = tmp_path / "app"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    opts = NewOptions(name="s1", repo=str(repo))
    assert repo_source_mount(opts, ()) == (f"{repo}:{repo}",)
    assert repo_source_mount(opts, (f"{repo}:{repo}:ro",)) == ()
    assert repo_source_mount(NewOptions(name="s1", repo="https://example.test/app.git"), ()) == ()
