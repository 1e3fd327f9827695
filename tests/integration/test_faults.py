"""Faults, races and sessions changed behind mux's back, on a real engine."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import docker, mux, session_dir

pytestmark = pytest.mark.docker


def sessions_dir() -> Path:
    return session_dir("x").parent


def listed() -> dict[str, dict]:
    return {s["name"]: s for s in json.loads(mux("list", "--json", check=True).stdout)}


def spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "mux", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_two_news_with_one_name_exactly_one_wins(images, mux_home, unique_name, cleanup_containers) -> None:
    cleanup_containers.append(f"mux-{unique_name}")
    procs = [spawn("new", unique_name) for _ in range(2)]
    results = [(p.wait(timeout=60), p.communicate()[1]) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 1], results
    loser = next(err for code, err in results if code == 1)
    assert unique_name in loser and "Traceback" not in loser
    assert listed()[unique_name]["status"] == "running"
    assert (sessions_dir() / unique_name / "home").is_dir()  # the winner's files survive


def test_parallel_creates_of_different_sessions_all_succeed(images, mux_home, cleanup_containers,
                                                           unique_name) -> None:
    names = [f"{unique_name}-{i}" for i in range(4)]
    cleanup_containers.extend(f"mux-{n}" for n in names)
    procs = [spawn("new", n) for n in names]
    results = [(p.wait(timeout=60), p.communicate()[1]) for p in procs]
    assert [code for code, _ in results] == [0] * 4, results
    assert {n: listed()[n]["status"] for n in names} == dict.fromkeys(names, "running")


def test_delete_all_during_a_new_leaves_no_half_session(images, mux_home, cleanup_containers,
                                                        unique_name) -> None:
    keep, racer_name = f"{unique_name}-keep", f"{unique_name}-racer"  # unique: names are engine-wide
    cleanup_containers.extend([f"mux-{keep}", f"mux-{racer_name}"])
    assert mux("new", keep).returncode == 0
    racer = spawn("new", racer_name)
    deleter = mux("delete", "--all", "--force")
    assert racer.wait(timeout=60) == 0 and deleter.returncode == 0
    has_container = docker("container", "inspect", f"mux-{racer_name}", check=False).returncode == 0
    assert has_container == (sessions_dir() / racer_name).is_dir()  # all or nothing
    assert keep not in listed()


def test_container_removed_by_hand_is_reported_and_cleaned(images, mux_home, unique_name) -> None:
    assert mux("new", unique_name).returncode == 0
    (cid,) = docker("ps", "-aq", "--filter", f"label=mux.session={unique_name}",
                    "--filter", f"label=mux.instance={os.environ['MUX_INSTANCE']}").stdout.split()
    docker("rm", "-f", cid)  # by ID: only the container this test made
    assert listed()[unique_name]["status"] == "missing"
    again = mux("new", unique_name)
    assert again.returncode == 1 and "but no container" in again.stderr and f"mux delete {unique_name}" in again.stderr
    doctor = mux("doctor")
    assert doctor.returncode == 1 and f"session files with no container: {unique_name}" in doctor.stdout
    assert mux("delete", unique_name).returncode == 0
    assert unique_name not in listed()
    assert not (sessions_dir() / unique_name).exists()
    assert mux("delete", unique_name).returncode == 3


def test_container_renamed_by_hand_is_still_the_session(images, mux_home, unique_name, cleanup_containers) -> None:
    cleanup_containers.append(f"renamed-{unique_name}")
    assert mux("new", unique_name).returncode == 0
    docker("rename", f"mux-{unique_name}", f"renamed-{unique_name}")
    assert listed()[unique_name]["container"] == f"renamed-{unique_name}"
    assert mux("delete", "--force", unique_name).returncode == 0
    assert docker("container", "inspect", f"renamed-{unique_name}", check=False).returncode != 0
    assert not (sessions_dir() / unique_name).exists()


def test_engine_going_away_during_new_undoes_the_session_dir(images, mux_home, unique_name, tmp_path) -> None:
    """A docker whose `run` finds the engine gone: mux removes what it made."""
    fake = tmp_path / "bin"
    fake.mkdir()
    real = shutil.which("docker")
    (fake / "docker").write_text(
        "#!/bin/sh\n"
        'if [ "$1" = run ]; then\n'
        '  echo "docker: Cannot connect to the Docker daemon at unix:///var/run/docker.sock. '
        'Is the docker daemon running?" >&2; exit 125\n'
        "fi\n"
        f'exec {real} "$@"\n'
    )
    (fake / "docker").chmod(0o755)
    result = mux("new", unique_name, env={"PATH": f"{fake}:{os.environ['PATH']}"})
    assert result.returncode == 4
    assert "not answering" in result.stderr
    assert not (sessions_dir() / unique_name).exists()
    assert unique_name not in listed()


def test_disk_full_data_dir_is_one_clear_line(images, mux_home, unique_name, tmp_path) -> None:
    full = tmp_path / "full"
    full.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,nr_inodes=3", "tmpfs", str(full)],
                             capture_output=True)
    assert mounted.returncode == 0, mounted.stderr  # tests run as root (CI)
    try:
        (full / "d").mkdir()  # the last free inode: the data dir exists, nothing fits in it
        result = mux("new", unique_name, env={"MUX_DATA_DIR": str(full / "d")})
        assert result.returncode == 1
        assert result.stderr.startswith("mux: error: cannot create")
        assert "No space left on device" in result.stderr and "Traceback" not in result.stderr
        assert docker("container", "inspect", f"mux-{unique_name}", check=False).returncode != 0
    finally:
        subprocess.run(["umount", str(full)], check=True)


def impostors_on_the_engine() -> list[str]:
    """Containers someone else (not this suite) named mux-*: the shared engine may hold some."""
    fmt = '{{.Names}}\t{{.Label "mux.session"}}{{.Label "mux.egress-relay"}}{{.Label "mux.helper"}}'
    out = docker("ps", "-a", "--filter", "name=mux-", "--format", fmt).stdout
    return [n for n, _, label in (ln.partition("\t") for ln in out.splitlines()) if n.startswith("mux-") and not label]


def test_doctor_passes_on_a_healthy_setup_and_names_failures(images, mux_home) -> None:
    healthy = mux("doctor", "--json")
    report = json.loads(healthy.stdout)
    checks = {c["name"]: c for c in report["checks"]}
    assert set(checks) >= {"docker CLI", "socket", "engine", "containers", "names", "config", "data dir"}
    strangers = impostors_on_the_engine()
    assert [n for n, c in checks.items() if not c["ok"]] == (["names"] if strangers else [])
    assert all(s in checks["names"]["detail"] for s in strangers)
    assert healthy.returncode == (1 if strangers else 0)
    broken = mux("doctor", env={"DOCKER_HOST": "unix:///nonexistent/docker.sock", "MUX_CONFIG": "/nonexistent"})
    assert broken.returncode == 1
    fails = [line for line in broken.stdout.splitlines() if line.startswith("FAIL")]
    assert [line.split()[1] for line in fails] == ["socket", "engine", "config"]
    assert "fix: " in broken.stdout


def test_clone_deleted_behind_muxs_back_is_reported_and_cleaned(images, mux_home, tmp_path, unique_name) -> None:
    origin = tmp_path / "origin"
    origin.mkdir()
    for args in (["init", "-q"], ["commit", "-q", "--allow-empty", "-m", "first"]):
        subprocess.run(["git", "-c", "user.name=T", "-c", "user.email=t@e", *args], cwd=origin, check=True)
    assert mux("new", "--repo", str(origin), unique_name).returncode == 0
    shutil.rmtree(sessions_dir() / unique_name / "repo")
    assert listed()[unique_name]["workdir_exists"] is False
    assert "(workdir missing)" in mux("list").stdout
    assert mux("delete", "--force", unique_name).returncode == 0
    assert unique_name not in listed() and not (sessions_dir() / unique_name).exists()


def test_doctor_names_each_failure_with_its_fix(images, mux_home, tmp_path, unique_name, cleanup_containers) -> None:
    cleanup_containers.append(f"mux-{unique_name}")
    docker("run", "-d", "--pull", "never", "--name", f"mux-{unique_name}",
           "--label", f"mux.instance={os.environ['MUX_INSTANCE']}", "mux-test/busybox", "sleep", "600")
    relay = f"mux-{unique_name}-relay"  # mux's own, not a session: labelled as the egress relay is
    cleanup_containers.append(relay)
    docker("create", "--name", relay, "--label", "mux.egress-relay=net",
           "--label", f"mux.instance={os.environ['MUX_INSTANCE']}", "mux-test/busybox", "true")
    config = tmp_path / "doctor.toml"
    config.write_text('[proxy]\nport = 18491\n[docker.rust]\nsccache = true\nbinary = "/nonexistent/sccache"\n')
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    result = mux("doctor", "--json", env={"MUX_CONFIG": str(config), "MUX_DATA_DIR": str(not_a_dir / "data")})
    assert result.returncode == 1
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    failed = sorted(name for name, c in checks.items() if not c["ok"])
    assert failed == ["data dir", "names", "proxy", "sccache"]
    assert f"mux-{unique_name}" in checks["names"]["detail"]
    assert relay not in checks["names"]["detail"]
    assert "mux proxy start" in checks["proxy"]["fix"]
    assert "sccache" in checks["sccache"]["detail"] and checks["sccache"]["fix"]
    assert "MUX_DATA_DIR" in checks["data dir"]["fix"]
    assert all(c["fix"] for c in checks.values() if not c["ok"])
