"""Sessions on a real Docker engine, driven through the real `mux` command line."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import BUSYBOX, DEBIAN, docker, mux, session_dir

pytestmark = pytest.mark.docker


def inspect(container: str) -> dict:
    return json.loads(docker("container", "inspect", container).stdout)[0]


@pytest.fixture
def session(images, mux_home, unique_name, cleanup_containers, tmp_path):
    """A running busybox session over a workdir holding one file."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "hello.txt").write_text("hello from the host\n")
    cleanup_containers.append(f"mux-{unique_name}")
    result = mux("new", unique_name, cwd=work)
    assert result.returncode == 0, result.stderr
    return {"name": unique_name, "work": work, "container": f"mux-{unique_name}"}


def test_lifecycle_create_list_exec_stop_start_delete(session) -> None:
    name = session["name"]
    listed = json.loads(mux("list", "--json", check=True).stdout)
    mine = [s for s in listed if s["name"] == name]
    assert mine == [{
        "name": name, "backend": "docker", "status": "running", "created": mine[0]["created"],
        "workdir": str(session["work"]), "image": BUSYBOX, "container": session["container"],
        "repo": "", "branch": "", "agent": "", "egress": "", "exit_code": None, "workdir_exists": True,
        "context": "default", "push_prefix": {},  # {}: not through the proxy, no credential to push with
    }]
    out = mux("exec", name, "--", "cat", "/workspace/hello.txt", check=True).stdout
    assert out == "hello from the host\n"
    assert mux("exec", name, "--", "pwd", check=True).stdout == "/workspace\n"

    assert mux("stop", name).returncode == 0
    assert inspect(session["container"])["State"]["Running"] is False
    assert name in mux("list", "--stopped", check=True).stdout
    assert name not in mux("list", "--running", check=True).stdout
    code = inspect(session["container"])["State"]["ExitCode"]
    assert [s["exit_code"] for s in json.loads(mux("list", "--json", check=True).stdout)] == [code]
    stopped = mux("exec", name, "--", "true")
    assert stopped.returncode == 1 and "mux start" in stopped.stderr

    assert mux("start", name).returncode == 0
    assert inspect(session["container"])["State"]["Running"] is True
    refused = mux("delete", name)
    assert refused.returncode == 1 and "running" in refused.stderr
    assert mux("delete", "--force", name).returncode == 0
    assert docker("container", "inspect", session["container"], check=False).returncode != 0
    assert not session_dir(name).exists()
    assert mux("stop", name).returncode == 3


def test_stop_is_acted_on_not_killed(session) -> None:
    """The idle shell ends on the stop signal; 137 would mean docker had to SIGKILL it."""
    info = inspect(session["container"])
    assert info["Config"]["StopSignal"] == "SIGHUP"
    assert info["Config"]["StopTimeout"] == 10
    assert mux("stop", session["name"]).returncode == 0
    assert inspect(session["container"])["State"]["ExitCode"] != 137


def test_busy_session_is_killed_after_its_grace_period(images, mux_home, unique_name, cleanup_containers) -> None:
    config = Path(os.environ["MUX_CONFIG"])
    config.write_text(config.read_text() + "stop_timeout = 1\n")
    cleanup_containers.append(f"mux-{unique_name}")
    busy = ["sh", "-c", "trap '' HUP TERM; while :; do sleep 1; done"]
    assert mux("new", unique_name, "--", *busy).returncode == 0
    assert inspect(f"mux-{unique_name}")["Config"]["StopTimeout"] == 1
    assert mux("stop", unique_name).returncode == 0
    assert inspect(f"mux-{unique_name}")["State"]["ExitCode"] == 137


def test_image_without_bash_falls_back_to_sh(session) -> None:
    info = inspect(session["container"])
    assert info["Config"]["Cmd"][-1] == "/bin/bash"
    ps = mux("exec", session["name"], "--", "ps", "-o", "pid,args", check=True).stdout
    assert "/bin/sh" in ps.splitlines()[2]  # pid 1 is docker-init, then the shell it execs
    logs = subprocess.run([sys.executable, "-m", "mux", "logs", session["name"]],
                          capture_output=True, text=True)
    assert "/bin/bash is not in this image, using /bin/sh" in logs.stdout + logs.stderr


def test_env_volumes_and_limits_reach_the_container(
    images, mux_home, unique_name, cleanup_containers, tmp_path
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "data").write_text("shared data")
    Path(os.environ["MUX_CONFIG"]).write_text(
        f'[docker]\nimage = "{DEBIAN}"\npull = "never"\n'
        f'volumes = ["{shared}:/shared:ro"]\nenv = ["TERM=xterm-256color", "FROM_HOST"]\n'
        '[docker.limits]\nmemory = "96m"\ncpus = "0.5"\nmemory_swap = "96m"\n'
    )
    odd = "spaces and 'quotes' \"double\" $HOME `tick` ünïcode\nnew line"
    cleanup_containers.append(f"mux-{unique_name}")
    (tmp_path / "proj").mkdir()  # tmp_path holds mux's data dir and config: never a workdir
    result = mux("new", "--env", f"ODD={odd}", unique_name, cwd=tmp_path / "proj",
                 env={"FROM_HOST": "by reference"})
    assert result.returncode == 0, result.stderr
    run = lambda *cmd: mux("exec", unique_name, "--", *cmd, check=True).stdout  # noqa: E731
    assert run("printenv", "ODD") == odd + "\n"
    assert run("printenv", "TERM") == "xterm-256color\n"
    assert run("printenv", "FROM_HOST") == "by reference\n"
    assert run("cat", "/shared/data") == "shared data"
    denied = mux("exec", unique_name, "--", "touch", "/shared/new")
    assert denied.returncode != 0  # mounted read-only
    assert run("cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes") == f"{96 * 1024 * 1024}\n"
    assert run("cat", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us") == "50000\n"
    info = inspect(f"mux-{unique_name}")["HostConfig"]
    assert (info["Memory"], info["MemorySwap"], info["NanoCpus"]) == (96 << 20, 96 << 20, 500_000_000)


def test_flags_override_config(images, mux_home, unique_name, cleanup_containers, tmp_path) -> None:
    cleanup_containers.append(f"mux-{unique_name}")
    work = tmp_path / "proj"  # tmp_path holds mux's data dir and config: never a workdir
    work.mkdir()
    result = mux("new", "--image", DEBIAN, "--network", "none", "--memory", "64m",
                 "--workdir", str(work), unique_name)
    assert result.returncode == 0, result.stderr
    info = inspect(f"mux-{unique_name}")
    assert info["Config"]["Image"] == DEBIAN
    assert info["HostConfig"]["NetworkMode"] == "none"
    assert info["HostConfig"]["Memory"] == 64 << 20
    assert f"{work}:/workspace" in info["HostConfig"]["Binds"]


def test_name_conflict_names_the_holder_and_leaves_it_alone(session) -> None:
    before = inspect(session["container"])["Id"]
    again = mux("new", session["name"])
    assert again.returncode == 1
    assert f"container {session['container']}" in again.stderr
    assert again.stderr.count("\n") <= 2  # one error line and one hint
    assert inspect(session["container"])["Id"] == before
    assert inspect(session["container"])["State"]["Running"] is True
    home = session_dir(session["name"]) / "home"
    assert home.is_dir()  # the winner's files are untouched


def test_a_container_holding_the_name_outside_mux(images, mux_home, unique_name, cleanup_containers) -> None:
    cleanup_containers.append(f"mux-{unique_name}")
    docker("run", "-d", "--pull", "never", "--name", f"mux-{unique_name}",
           "--label", f"mux.instance={os.environ['MUX_INSTANCE']}", BUSYBOX, "sleep", "600")
    result = mux("new", unique_name)
    assert result.returncode == 1
    assert f"mux-{unique_name}" in result.stderr
    assert not session_dir(unique_name).exists()


def test_missing_image_with_pull_never_leaves_nothing(images, mux_home, unique_name) -> None:
    result = mux("new", "--image", "mux-test/not-built:never", "--pull", "never", unique_name)
    assert result.returncode == 4
    assert "not available locally" in result.stderr
    assert docker("container", "inspect", f"mux-{unique_name}", check=False).returncode != 0
    assert not session_dir(unique_name).exists()
    assert unique_name not in mux("list").stdout


def test_dry_run_printed_commands_make_the_same_container(images, mux_home, cleanup_containers, tmp_path) -> None:
    """Run what --dry-run printed by hand: the container equals the one mux makes."""
    by_mux, by_hand = "dry-a", "dry-b"
    cleanup_containers.extend([f"mux-{by_mux}", f"mux-{by_hand}"])
    (tmp_path / "proj").mkdir()  # tmp_path holds mux's data dir and config: never a workdir
    flags = ["--memory", "80m", "--env", "A=1 2", "--workdir", str(tmp_path / "proj")]
    printed = mux("new", "--dry-run", *flags, by_hand, "--", "sleep", "3600", check=True).stdout
    assert docker("container", "inspect", f"mux-{by_hand}", check=False).returncode != 0  # ran nothing
    lines = printed.splitlines()
    assert lines[-1].startswith("docker run ")
    for line in lines:
        subprocess.run(shlex.split(line), check=True, capture_output=True)
    assert mux("new", *flags, by_mux, "--", "sleep", "3600").returncode == 0
    a, b = inspect(f"mux-{by_mux}"), inspect(f"mux-{by_hand}")

    def normal(info: dict, name: str) -> dict:
        labels = {k: v for k, v in info["Config"]["Labels"].items() if k != "mux.created"}
        return {
            "labels": {**labels, "mux.session": labels["mux.session"].replace(name, "NAME")},
            "env": sorted(info["Config"]["Env"]), "cmd": info["Config"]["Cmd"],
            "image": info["Config"]["Image"], "user": info["Config"]["User"],
            "binds": sorted(b.replace(f"/{name}/", "/NAME/") for b in info["HostConfig"]["Binds"]),
            "memory": info["HostConfig"]["Memory"], "init": info["HostConfig"]["Init"],
            "tty": info["Config"]["Tty"], "workdir": info["Config"]["WorkingDir"],
        }

    assert normal(a, by_mux) == normal(b, by_hand)
    names = {s["name"] for s in json.loads(mux("list", "--json", check=True).stdout)}
    assert {by_mux, by_hand} <= names  # the hand-made one is a session like any other


def test_delete_all_removes_only_stopped_without_force(images, mux_home, cleanup_containers) -> None:
    cleanup_containers.extend(["mux-all-run", "mux-all-stop"])
    for name in ("all-run", "all-stop"):
        assert mux("new", name).returncode == 0
    assert mux("stop", "all-stop").returncode == 0
    result = mux("delete", "--all")
    assert result.returncode == 1 and "all-run: it is running" in result.stderr
    assert [s["name"] for s in json.loads(mux("list", "--json").stdout)] == ["all-run"]
    assert mux("delete", "--all", "--force").returncode == 0
    assert json.loads(mux("list", "--json").stdout) == []


def test_engine_not_answering(mux_home) -> None:
    result = mux("list", env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert result.returncode == 4
    assert "not answering" in result.stderr and "docker info" in result.stderr


def test_docker_cli_missing(mux_home, tmp_path) -> None:
    result = mux("list", env={"PATH": str(tmp_path)})
    assert result.returncode == 4
    assert "docker command was not found" in result.stderr
