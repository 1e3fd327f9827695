"""`mux delete` guards a --copy session's workspace volume.

A --copy session's /workspace is a volume on the engine holding a copy of the
workdir: the agent's edits live only there. At `mux new` mux records a digest of
what it copied in (in the session's data dir, outside the agent's reach); at
delete a box on the engine computes the same over the volume (read-only, offline)
and `mux delete` refuses (exit 1, the clone guard's words) when they differ, or
when it cannot tell. Everything here runs in real sessions on the real engine.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import docker, mux, session_dir

pytestmark = pytest.mark.docker


@pytest.fixture
def work(tmp_path: Path) -> Path:
    work = tmp_path / "proj"
    (work / "src").mkdir(parents=True)
    (work / "app.py").write_text("print('hi')\n")
    (work / "src" / "lib.py").write_text("x = 1\n")
    (work / "empty").mkdir()
    os.symlink("app.py", work / "link")
    return work


def new_copy(name: str, work: Path) -> None:
    made = mux("new", "--copy", "--workdir", str(work), name)
    assert made.returncode == 0, made.stderr


def agent(name: str, script: str) -> None:
    done = mux("exec", name, "--", "sh", "-c", script)
    assert done.returncode == 0, done.stderr
    assert mux("stop", name).returncode == 0


def volume_exists(name: str) -> bool:
    return docker("volume", "inspect", f"mux-{name}-workspace", check=False).returncode == 0


def assert_refused(name: str, words: str) -> None:
    refused = mux("delete", name)
    assert refused.returncode == 1, (refused.stdout, refused.stderr)
    assert words in refused.stderr, refused.stderr
    assert "mux cp" in refused.stderr and "--force" in refused.stderr, refused.stderr
    assert volume_exists(name)
    forced = mux("delete", "--force", name)
    assert forced.returncode == 0, forced.stderr
    assert not volume_exists(name)


def test_delete_refuses_while_the_agents_edit_is_only_in_the_volume(
        images, mux_home, work, unique_name) -> None:
    new_copy(unique_name, work)
    agent(unique_name, "echo edited >> /workspace/app.py")
    assert_refused(unique_name, "its workspace copy differs from what mux copied in")


@pytest.mark.parametrize("script", [
    "echo new > /workspace/src/new.py",
    "rm /workspace/src/lib.py",
    "rmdir /workspace/empty",
    "ln -sf /etc/passwd /workspace/link",
    "printf 'x = 1\\n' > '/workspace/src/lib.py\n2' && rm /workspace/src/lib.py",
    "mkfifo /workspace/pipe",
    "mkdir /workspace/src/.hidden",
    # the same entries and bytes: only the digest tells
    "sed -i s/hi/ho/ /workspace/app.py",
    "mv /workspace/src/lib.py /workspace/src/lib.pz",
    "ln -sfn app.pz /workspace/link",
    "rmdir /workspace/empty && mkdir /workspace/emptz",
])
def test_every_kind_of_change_is_seen(images, mux_home, work, unique_name, script) -> None:
    new_copy(unique_name, work)
    agent(unique_name, script)
    assert_refused(unique_name, "differs from what mux copied in")


def test_an_untouched_copy_deletes_without_a_prompt(images, mux_home, work, unique_name) -> None:
    new_copy(unique_name, work)
    agent(unique_name, "cat /workspace/app.py >/dev/null")
    done = mux("delete", unique_name)
    assert done.returncode == 0, done.stderr
    assert not volume_exists(unique_name)


def test_hostile_files_do_not_hang_or_fool_the_box(images, mux_home, work, unique_name, tmp_path) -> None:
    new_copy(unique_name, work)
    canary = tmp_path / "canary"
    agent(unique_name, "cd /workspace && ln -s / root && ln -s /dev/zero zero && mkfifo fifo && "
          f"printf 'touch {canary}\\n' > \"$(printf 'a\\nb\\033[31m')\" && "
          "truncate -s 64G huge")
    assert_refused(unique_name, "its workspace copy")
    assert not canary.exists()


def test_a_session_without_a_record_is_refused(images, mux_home, work, unique_name) -> None:
    new_copy(unique_name, work)
    assert mux("stop", unique_name).returncode == 0
    (session_dir(unique_name) / "copy-base").unlink()
    assert_refused(unique_name, "cannot be checked for unsaved work")


def test_a_record_that_cannot_be_read_is_refused(images, mux_home, work, unique_name) -> None:
    new_copy(unique_name, work)
    assert mux("stop", unique_name).returncode == 0
    record = session_dir(unique_name) / "copy-base"
    assert record.stat().st_mode & 0o777 == 0o600
    record.write_text("# mux copy-base v1\nsha256 zz\n")
    assert_refused(unique_name, "cannot be checked for unsaved work")


@pytest.mark.parametrize("image", ["busybox", "debian"])
def test_odd_names_copied_in_and_untouched_delete_without_a_prompt(images, mux_home, tmp_path, unique_name,
                                                                   image) -> None:
    """The box's digest is mux's for every name mux copies: busybox's tools and GNU's."""
    config = Path(os.environ["MUX_CONFIG"])
    config.write_text(config.read_text().replace(images["busybox"], images[image]))
    work = tmp_path / "proj"
    (work / "a dir" / "-n").mkdir(parents=True)
    for name in ("new\nline", "back\\slash", "tab\there", "caf\u00e9", "-e", "a dir/-n/x", "  ", "%s\\0"):
        (work / name).write_text(f"{name}\n")
    (work / os.fsdecode(b"not-utf8-\xff")).write_bytes(b"bytes")
    (work / "empty").write_bytes(b"")
    (work / "nonl").write_bytes(b"no newline at the end")
    os.symlink("new\nline", work / "link\nto")
    os.symlink("a dir/-n", work / "dirlink")
    os.symlink("caf\u00e9", work / "ln-\u00e9")  # a target of more bytes than characters
    new_copy(unique_name, work)
    assert mux("stop", unique_name).returncode == 0
    done = mux("delete", unique_name)
    assert done.returncode == 0, done.stderr
    assert not volume_exists(unique_name)


def test_a_volume_mounted_inside_the_copy_is_not_counted_as_a_change(images, mux_home, work, unique_name) -> None:
    """What mux copies under another mount lands in that volume; the workspace keeps the mount point."""
    other = f"{unique_name}-deps"
    try:
        made = mux("new", "--copy", "--workdir", str(work), "--volume", f"{other}:/workspace/src",
                   "--volume", f"{other}:/workspace/not/there/yet", unique_name)
        assert made.returncode == 0, made.stderr
        agent(unique_name, "echo build output > /workspace/src/out.o")  # in the other volume: kept anyway
        done = mux("delete", unique_name)
        assert done.returncode == 0, done.stderr
    finally:
        docker("volume", "rm", other, check=False)
