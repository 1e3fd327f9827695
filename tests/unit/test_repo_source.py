"""Which --repo values are local sources (cloned through git's transport, never mounted)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mux.config import Config, DockerSettings
from mux.session.plan import HostFacts, NewOptions, build_spec
from mux.workspace.repo import local_path


@pytest.mark.parametrize(("url", "path"), [
    pytest.param("/srv/app", "/srv/app", id="path"),
    pytest.param("file:///srv/my%20app", "/srv/my app", id="file-url"),
    pytest.param("https://example.test/app.git", None, id="https"),
    pytest.param("git@example.test:org/app.git", None, id="scp-like"),
])
def test_local_path(url: str, path: str | None) -> None:
    assert local_path(url) == path


def test_a_local_source_is_never_mounted(tmp_path: Path) -> None:
    import subprocess
    from datetime import datetime, timezone

    repo = tmp_path / "app"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    host = HostFacts(uid=1000, gid=1000, env={}, cwd=tmp_path, now=datetime.now(timezone.utc),
                     data_dir=tmp_path / "data")
    spec = build_spec(Config(docker=DockerSettings(image="img")), NewOptions(name="s1", repo=str(repo)), host)
    assert not [m for m in spec.mounts if str(repo) in m.text]
