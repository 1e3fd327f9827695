"""A workdir session on another machine's engine (a copy in a volume there, --copy):
`mux delete` refuses while the agent's edits are only in that volume, and deletes an
untouched one without a prompt (mux/workspace/copyguard.py, the box run there)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import mux
from tests.integration.remote.conftest import RemoteEngine

pytestmark = pytest.mark.docker
BOX = ("--context", "box")


def make(name: str, tmp_path: Path) -> None:
    proj = tmp_path / "proj"
    (proj / "src").mkdir(parents=True)
    (proj / "src" / "main.c").write_text("int main(void) { return 0; }\n")
    made = mux(*BOX, "new", "--copy", "--workdir", str(proj), name)
    assert made.returncode == 0, made.stderr


def workspace(remote: RemoteEngine, name: str) -> bool:
    return remote.docker("volume", "inspect", f"mux-{name}-workspace", check=False).returncode == 0


def test_an_edit_there_is_not_deleted_silently(remote_home, remote, own_instance, unique_name, tmp_path) -> None:
    make(unique_name, tmp_path)
    remote.docker("exec", f"mux-{unique_name}", "sh", "-c", "echo '/* agent */' >> /workspace/src/main.c")
    assert mux(*BOX, "stop", unique_name).returncode == 0
    refused = mux(*BOX, "delete", unique_name)
    assert refused.returncode == 1, refused.stderr
    assert "its workspace copy differs from what mux copied in" in refused.stderr
    assert f"mux cp {unique_name}:/workspace DEST" in refused.stderr
    assert workspace(remote, unique_name)
    forced = mux(*BOX, "delete", "--force", unique_name)
    assert forced.returncode == 0, forced.stderr
    assert not workspace(remote, unique_name)


def test_an_untouched_copy_there_deletes(remote_home, remote, own_instance, unique_name, tmp_path) -> None:
    make(unique_name, tmp_path)
    assert mux(*BOX, "stop", unique_name).returncode == 0
    deleted = mux(*BOX, "delete", unique_name)
    assert deleted.returncode == 0, deleted.stderr
    assert not workspace(remote, unique_name)
