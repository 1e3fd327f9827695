"""Typed mounts and run policy: one renderer decides local vs remote (mux/session/mounts.py),
mux.engine.argv writes them as docker takes them."""

from __future__ import annotations

from pathlib import Path

import pytest

from mux.engine import argv as A
from mux.session.mounts import for_engine
from mux.spec import Far, Mount, RunPolicy, SessionSpec, VolumeFill


@pytest.mark.parametrize(("text", "mount"), [
    pytest.param("/a:/b", Mount("/a", "/b"), id="rw"),
    pytest.param("/a:/b:ro", Mount("/a", "/b", True, "ro"), id="ro"),
    pytest.param("/a:/b:ro,z", Mount("/a", "/b", True, "ro,z"), id="ro-z"),
    pytest.param("/a:/b:rw", Mount("/a", "/b", False, "rw"), id="explicit-rw"),
    pytest.param("vol:/v", Mount("vol", "/v"), id="volume"),
])
def test_a_users_mount_renders_as_written(text: str, mount: Mount) -> None:
    assert Mount.parse(text) == mount
    assert mount.text == text
    assert A.mount_args([mount]) == ["-v", text]
    assert mount.bind is text.startswith("/")


def test_the_default_policy_is_the_security_options_every_session_gets() -> None:
    assert A.policy_args(RunPolicy()) == A.SECURITY
    assert A.policy_args(RunPolicy(pids_limit=7, no_new_privileges=False, cap_drop=("ALL",),
                                   cap_add=("CHOWN",))) == [
        "--pids-limit", "7", "--cap-drop", "ALL", "--cap-add", "CHOWN"]


def spec(*mounts: Mount) -> SessionSpec:
    return SessionSpec(name="s1", image="img", workdir=Path("/w"), labels=(), mounts=mounts,
                       accounts=((Path("/d/passwd"), "x"),), cache_dirs=(Path("/c"),))


PROGRAM = Far("program", "tool", at="/opt/tools", link="/opt/tools/tool")
SHARED = Far("own", "shared", files=((Path("/h/a"), "a"), (Path("/h/b"), "b")), at="/opt/shared")
MOUNTS = (
    Mount("vol", "/v"),  # a named volume: the same everywhere
    Mount("/c", "/cache", far=Far("shared", "cache-k", "cache")),
    Mount("/bin/tool", "/usr/local/bin/tool", True, far=PROGRAM),
    Mount("/h/a", "/home/mux/a", True, far=SHARED._replace(link="/opt/shared/a")),
    Mount("/h/b", "/home/mux/b", True, far=SHARED._replace(link="/opt/shared/b")),
    Mount("/ca", "/etc/mux-ca", True, far=Far("copy")),
)


def test_a_local_engine_gets_the_binds_as_they_are() -> None:
    local = spec(*MOUNTS)
    assert for_engine(local, remote=False, instance="i1") == local
    assert A.mount_args(local.mounts) == [
        "-v", "vol:/v", "-v", "/c:/cache", "-v", "/bin/tool:/usr/local/bin/tool:ro",
        "-v", "/h/a:/home/mux/a:ro", "-v", "/h/b:/home/mux/b:ro", "-v", "/ca:/etc/mux-ca:ro"]


def test_a_remote_engine_gets_volumes_links_and_copies(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("mux.session.volumes.file_digest", lambda path: "d1")
    far = for_engine(spec(*MOUNTS), remote=True, instance="i1")
    assert A.mount_args(far.mounts) == [
        "-v", "vol:/v", "-v", "mux_i1_cache-k:/cache", "-v", "mux_i1_tool-d1:/opt/tools:ro",
        "-v", "mux-s1-shared:/opt/shared:ro"]  # one volume for both shared files
    assert far.fills == (
        VolumeFill("mux_i1_cache-k", (("mux.volume", "cache"), ("mux.instance", "i1"))),
        VolumeFill("mux_i1_tool-d1", (("mux.volume", "program"), ("mux.instance", "i1"), ("mux.program", "tool"),
                                      ("mux.digest", "sha256:d1")), ((Path("/bin/tool"), "tool"),)),
        VolumeFill("mux-s1-shared", (("mux.session", "s1"), ("mux.instance", "i1")), SHARED.files, shared=False),
    )
    assert far.links == (("/usr/local/bin/tool", "/opt/tools/tool"), ("/home/mux/a", "/opt/shared/a"),
                         ("/home/mux/b", "/opt/shared/b"))
    assert far.copies == ((Path("/ca"), "/etc/mux-ca"),)
    assert far.accounts == () and far.cache_dirs == ()  # nothing of this machine's is made for it
    assert for_engine(far, remote=True, instance="i1") == far  # rendered once: nothing left to decide
