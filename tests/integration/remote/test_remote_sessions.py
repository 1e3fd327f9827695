"""Sessions on another machine's engine: nothing silently mounts an empty directory,
a local directory goes there only as a copy, repo sessions live in volumes there."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import mux, session_dir
from tests.integration.remote.conftest import RemoteEngine

pytestmark = pytest.mark.docker


def git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["git", "-c", "user.name=T", "-c", "user.email=t@example.com", *args],
                          cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    """A bare repository here (the clone is made on this machine, then shipped)."""
    seed = tmp_path / "seed"
    seed.mkdir()
    git("init", "-q", "-b", "main", cwd=seed)
    (seed / "README").write_text("hello\n")
    git("add", "README", cwd=seed)
    git("commit", "-qm", "first", cwd=seed)
    bare = tmp_path / "origin.git"
    git("clone", "-q", "--bare", str(seed), str(bare))
    return bare


def remote_objects(remote: RemoteEngine, instance: str) -> tuple[list[str], list[str]]:
    label = f"label=mux.instance={instance}"
    containers = remote.docker("ps", "-aq", "--filter", label).stdout.split()
    volumes = remote.docker("volume", "ls", "-q", "--filter", label).stdout.split()
    return containers, volumes


@pytest.mark.parametrize("how", ["--context", "DOCKER_HOST"])
def test_local_workdir_is_refused_on_a_remote_engine(remote_home, remote, own_instance, unique_name,
                                                     how, tmp_path) -> None:
    (tmp_path / "proj").mkdir()
    if how == "--context":
        out = mux("--context", "box", "new", "--workdir", str(tmp_path / "proj"), unique_name)
    else:
        out = mux("new", "--workdir", str(tmp_path / "proj"), unique_name, env={"DOCKER_HOST": remote.host})
    assert out.returncode == 2, out.stderr
    first = out.stderr.splitlines()[0]
    assert first.startswith(f"mux: error: the working directory {tmp_path / 'proj'} is on this machine")
    assert "empty directory" in first
    assert ("context 'box'" in first) if how == "--context" else (f"DOCKER_HOST={remote.host}" in first)
    assert "--copy" in out.stderr
    assert remote_objects(remote, own_instance) == ([], [])
    assert not session_dir(unique_name).exists()


def test_host_path_volume_is_refused_on_a_remote_engine(remote_home, remote, own_instance, unique_name,
                                                        origin) -> None:
    out = mux("--context", "box", "new", "--repo", str(origin), "--volume", "/etc:/host-etc:ro", unique_name)
    assert out.returncode == 2, out.stderr
    assert "mounts /etc, a path on this machine" in out.stderr
    assert remote_objects(remote, own_instance) == ([], [])


def test_copy_puts_the_workdir_in_a_volume_there(remote_home, remote, own_instance, unique_name,
                                                 tmp_path) -> None:
    proj = tmp_path / "proj"
    (proj / "src").mkdir(parents=True)
    (proj / "src" / "main.c").write_text("int main(void) { return 0; }\n")
    made = mux("--context", "box", "new", "--copy", "--workdir", str(proj), unique_name)
    assert made.returncode == 0, made.stderr
    out = remote.docker("exec", f"mux-{unique_name}", "sh", "-c",
                        "cat /workspace/src/main.c && touch /workspace/made-there $HOME/h && id -u")
    assert out.stdout.splitlines() == ["int main(void) { return 0; }", str(os.getuid())]
    assert not (proj / "made-there").exists()  # a copy: the local directory is untouched
    containers, volumes = remote_objects(remote, own_instance)
    assert len(containers) == 1
    assert sorted(volumes) == [f"mux-{unique_name}-home", f"mux-{unique_name}-workspace"]
    listed = json.loads(mux("--context", "box", "list", "--json", check=True).stdout)
    assert [(s["name"], s["workdir"]) for s in listed] == [(unique_name, f"volume:mux-{unique_name}-workspace")]
    # Results come back with mux cp, through the session's engine; files go in the same way.
    (tmp_path / "back").mkdir()
    assert mux("--context", "box", "cp", f"{unique_name}:src/main.c", str(tmp_path / "back")).returncode == 0
    assert (tmp_path / "back" / "main.c").read_text() == "int main(void) { return 0; }\n"
    (tmp_path / "in.txt").write_text("input\n")
    assert mux("--context", "box", "cp", str(tmp_path / "in.txt"), f"{unique_name}:data/").returncode != 0
    assert mux("--context", "box", "cp", str(tmp_path / "in.txt"), f"{unique_name}:in.txt").returncode == 0
    assert remote.docker("exec", f"mux-{unique_name}", "cat", "/workspace/in.txt").stdout == "input\n"
    # The local engine knows nothing of it.
    assert json.loads(mux("list", "--json", check=True).stdout) == []
    deleted = mux("--context", "box", "delete", "--force", unique_name)
    assert deleted.returncode == 0, deleted.stderr
    assert remote_objects(remote, own_instance) == ([], [])


def test_repo_session_lives_in_a_volume_and_delete_guards_it(remote_home, remote, own_instance,
                                                            unique_name, origin) -> None:
    made = mux("--context", "box", "new", "--repo", str(origin), "--branch", "agent/x", unique_name)
    assert made.returncode == 0, made.stderr
    assert not (session_dir(unique_name) / "repo").exists()  # shipped, not kept twice
    box = ["--context", "box"]
    out = remote.docker("exec", f"mux-{unique_name}", "git", "-C", "/workspace", "log", "--format=%s")
    assert out.stdout == "first\n"
    # The remote machine's own filesystem has no trace of a local path: it is all in volumes.
    assert remote.inside("test", "-e", str(origin), check=False).returncode != 0
    # Unsaved work on the engine: delete refuses, stopped or not.
    remote.docker("exec", f"mux-{unique_name}", "sh", "-c", "echo wip > /workspace/wip.txt")
    assert mux(*box, "stop", unique_name).returncode == 0
    refused = mux(*box, "delete", unique_name)
    assert refused.returncode == 1, refused.stderr
    assert "1 untracked file" in refused.stderr
    assert len(remote_objects(remote, own_instance)[1]) == 2
    forced = mux(*box, "delete", "--force", unique_name)
    assert forced.returncode == 0, forced.stderr
    assert remote_objects(remote, own_instance) == ([], [])
    assert not session_dir(unique_name).exists()


def test_guard_fails_closed_when_git_cannot_run_there(remote_home, remote, own_instance, unique_name,
                                                     origin) -> None:
    made = mux("--context", "box", "new", "--repo", str(origin), unique_name)
    assert made.returncode == 0, made.stderr
    remote.docker("exec", f"mux-{unique_name}", "rm", "-rf", "/workspace/.git")
    assert mux("--context", "box", "stop", unique_name).returncode == 0
    refused = mux("--context", "box", "delete", unique_name)
    assert refused.returncode == 1
    assert "its workspace volume cannot be checked as a git repository" in refused.stderr


def test_dry_run_prints_every_step_and_makes_nothing(remote_home, remote, own_instance, unique_name,
                                                     origin) -> None:
    out = mux("--context", "box", "new", "--dry-run", "--repo", str(origin), unique_name)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    name = f"mux-{unique_name}"
    steps = [line.split()[:4] for line in lines if line.startswith("docker")]
    assert steps == [
        ["docker", "--context", "box", "volume"], ["docker", "--context", "box", "volume"],
        ["docker", "--context", "box", "create"], ["docker", "--context", "box", "cp"],
        ["docker", "--context", "box", "cp"], ["docker", "--context", "box", "start"],
    ]
    assert any(line.startswith("git clone") for line in lines)
    assert lines[-3] == f"docker --context box start {name}"
    assert lines[-2] == f"rm -rf {session_dir(unique_name) / 'stage'}"
    assert lines[-1] == ("sh -c 'echo \"$1\" > \"$2\"' sh " f"{remote.host} {session_dir(unique_name) / 'engine'}")
    assert remote_objects(remote, own_instance) == ([], [])
    assert not session_dir(unique_name).exists()


def test_list_over_two_engines_and_one_that_never_answers(remote_home, remote, own_instance, unique_name,
                                                          tmp_path) -> None:
    import socket

    # An "engine" whose ssh port accepts connections and then says nothing.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    port = silent.getsockname()[1]
    try:
        subprocess.run(["docker", "context", "create", f"silent-{unique_name}", "--docker",
                        f"host=ssh://root@127.0.0.1:{port}"], check=True, capture_output=True)
        config = Path(os.environ["MUX_CONFIG"])
        config.write_text(config.read_text().replace(
            "[docker]\n", f'[docker]\ncontexts = ["default", "box", "silent-{unique_name}"]\n'))
        proj = tmp_path / "p"
        proj.mkdir()
        assert mux("new", "--workdir", str(proj), f"{unique_name}-here").returncode == 0
        assert mux("--context", "box", "new", "--copy", "--workdir", str(proj), f"{unique_name}-there").returncode == 0
        out = mux("list", "--json")
        assert out.returncode == 0, out.stderr
        assert [(s["name"], s["context"]) for s in json.loads(out.stdout)] == [
            (f"{unique_name}-here", "default"), (f"{unique_name}-there", "box")]
        warning = out.stderr.splitlines()
        assert len(warning) == 1
        assert warning[0].startswith(f"mux: warning: context 'silent-{unique_name}' (ssh://root@127.0.0.1:{port}) "
                                     "did not answer")
        table = mux("list").stdout.splitlines()
        assert table[0].split()[:2] == ["NAME", "CONTEXT"]
    finally:
        silent.close()
        subprocess.run(["docker", "context", "rm", "-f", f"silent-{unique_name}"], capture_output=True)


def test_doctor_checks_the_remote_engine(remote_home, remote) -> None:
    out = mux("doctor", "--context", "box", "--json")
    checks = {c["name"]: c for c in json.loads(out.stdout)["checks"]}
    assert checks["engine"]["ok"] and "context 'box'" in checks["engine"]["detail"]
    assert checks["location"]["detail"].startswith(f"remote ({remote.host})")
    assert checks["image"] == {"name": "image", "ok": True, "detail": "mux-test/debian is on the engine", "fix": ""}
    assert out.returncode == 0, out.stdout
    # An image only this machine has is named as missing there.
    Path(os.environ["MUX_CONFIG"]).write_text('[docker]\nimage = "mux-test/remote-engine"\npull = "never"\n')
    missing = mux("doctor", "--context", "box")
    assert missing.returncode == 1
    assert "FAIL  image       mux-test/remote-engine is not on the engine" in missing.stdout
    here = json.loads(mux("doctor", "--json").stdout)["checks"]
    assert [c["ok"] for c in here if c["name"] == "image"] == [True]  # locally it is there
