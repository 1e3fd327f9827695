"""`[docker] cli = "podman"` / $MUX_DOCKER_CLI: the podman argv each command issues, with
output recorded from Debian's rootless podman 4.3.1 (mux/engine/clis.py holds the differences)."""

from __future__ import annotations

import json

import pytest

from mux.engine import clis as engine_cli
from mux.engine.runner import quote
from mux.session.sessions import PS_FORMAT
from tests.cli.muxcli import BASE_CONFIG, CID, NEW_ID, TOP_STARTED, Home, placeholder_steps, run, run_argv
from tests.cli.test_new import account_writes

PODMAN_PS_ALL = engine_cli.translate(["docker", "ps", "-a", "--no-trunc", "--filter", "label=mux.session",
                                      "--format", PS_FORMAT])
# `podman ps` in PODMAN_PS_ALL's format, recorded (only the id shortened to the tests' CID).
RECORDED_RUNNING = ('{"id":"CID","container":"mux-t3","state":"running","docker_image":'
                    '"localhost/mux-test/busybox:latest","docker_status":"Up 1 second ago","session":"t3",'
                    '"backend":"docker","workdir":"/tmp/pm-measure/w","image":"mux-test/busybox","created":'
                    '"2026-12-07T23:43:17Z","version":"0.1.0","repo":"","branch":"","agent":"","egress":"",'
                    '"instance":""}\n').replace("CID", CID)
RECORDED_EXITED = RECORDED_RUNNING.replace('"running"', '"exited"').replace(
    "Up 1 second ago", "Exited (137) Less than a second ago").replace("t3", "t4")
NAME_IN_USE = ('Error: creating container storage: the container name "mux-s1" is already in use by '
               "7950961f6f0e95c94abfdd234de05b3292623f21e1067e487a8107ec68dfa3d8. You have to remove that container "
               "to be able to reuse that name: that name is already in use\n")
NOT_FOUND = 'Error: no container with name or ID "mux-nope" found: no such container\n'


@pytest.fixture(params=["env", "config"])
def podman(request: pytest.FixtureRequest, home: Home, monkeypatch: pytest.MonkeyPatch) -> Home:
    """podman chosen by $MUX_DOCKER_CLI or by the config; rootless on cgroup v1, like this machine."""
    if request.param == "env":
        monkeypatch.setenv("MUX_DOCKER_CLI", "podman")
    else:
        monkeypatch.delenv("MUX_DOCKER_CLI", raising=False)
        home.write_config(BASE_CONFIG.replace("[docker]\n", '[docker]\ncli = "podman"\n'))
    monkeypatch.setattr(engine_cli, "rootless", lambda: True)
    monkeypatch.setattr(engine_cli, "cgroup_v2", lambda: False)
    return home


def podman_run(home: Home, middle: list[str] | None = None) -> list[str]:
    # a podman session's mux.backend label says podman (the docker run's says docker)
    argv = [("mux.backend=podman" if a == "mux.backend=docker" else a) for a in run_argv(home, middle=middle)]
    out = engine_cli.translate(argv, is_rootless=True, drop_limits=True)
    return out


def test_list_reads_podman_ps(podman: Home, fp) -> None:  # type: ignore[no-untyped-def]
    fp.register(PODMAN_PS_ALL, stdout=RECORDED_RUNNING + RECORDED_EXITED)
    result = run("list", "--json")
    assert result.code == 0, result.err
    rows = {r["name"]: (r["status"], r["exit_code"]) for r in json.loads(result.out)}
    assert rows == {"t3": ("running", None), "t4": ("stopped", 137)}
    assert list(fp.calls) == [PODMAN_PS_ALL]


def test_new_runs_podman_with_keep_id_and_the_backend_label(podman: Home, fp) -> None:  # type: ignore[no-untyped-def]
    expected = podman_run(podman)
    assert expected[11:16] == ["--label", "mux.session=s1", "--userns=keep-id", "--label", "mux.backend=podman"]
    fp.register(expected, stdout=NEW_ID + "\n")
    fp.register(["podman", "top", NEW_ID], stdout=TOP_STARTED)
    result = run("new", "s1")
    assert result.code == 0, result.err
    assert list(fp.calls) == [expected, ["podman", "top", NEW_ID]]


def test_dry_run_prints_podman_lines(podman: Home, fp) -> None:  # type: ignore[no-untyped-def]
    result = run("new", "--dry-run", "s1")
    assert result.code == 0, result.err
    assert result.out.splitlines() == [
        f"mkdir -p -m 700 {podman.session_dir('s1')}/home",
        *account_writes(podman, "s1"),
        *placeholder_steps(podman.proj, podman.session_dir("s1")),
        quote(podman_run(podman)),
    ]
    assert list(fp.calls) == []


def test_limits_dropped_with_one_warning(podman: Home, fp) -> None:  # type: ignore[no-untyped-def]
    result = run("new", "--dry-run", "s1", "--memory", "1g", "--cpus", "1")
    assert result.code == 0, result.err
    line = result.out.splitlines()[-1]
    assert line.startswith("podman run ") and "--memory" not in line and "--cpus" not in line
    assert result.err.count("mux: warning: podman ignores --memory and --cpus") == 1


def test_limits_kept_on_cgroup_v2(podman: Home, fp, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(engine_cli, "cgroup_v2", lambda: True)
    result = run("new", "--dry-run", "s1", "--memory", "1g")
    assert "--memory 1g" in result.out.splitlines()[-1] and "warning" not in result.err


def test_docker_argv_unchanged_without_the_setting(home: Home, fp, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("MUX_DOCKER_CLI", raising=False)
    result = run("new", "--dry-run", "s1")
    assert result.out.splitlines()[-1] == quote(run_argv(home))


def test_name_in_use_is_read_from_podman_wording(podman: Home, fp) -> None:  # type: ignore[no-untyped-def]
    fp.register(podman_run(podman), returncode=125, stderr=NAME_IN_USE)
    fp.register(engine_cli.translate(["docker", "ps", "-a", "--no-trunc", "--filter", "label=mux.session",
                                      "--filter", "label=mux.session=s1", "--format", PS_FORMAT]), stdout="")
    result = run("new", "s1")
    assert result.code == 1
    assert result.err.splitlines() == [
        "mux: error: container mux-s1 already exists but is not a mux session",
        "mux: hint: mux leaves it alone; rename or remove it yourself (`podman rename mux-s1 NEW`), "
        "or choose another NAME"]
    assert not podman.session_dir("s1").exists()


def test_missing_podman_is_named(podman: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(podman.root))
    result = run("list")
    assert result.code == 4
    assert result.err.splitlines()[0] == "mux: error: the podman command was not found on PATH"


def test_context_is_refused_with_podman(podman: Home, fp) -> None:  # type: ignore[no-untyped-def]
    result = run("--context", "box", "list")
    assert result.code == 2
    assert "--context is docker's" in result.err


def test_bad_cli_setting_is_a_config_error(home: Home, fp, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MUX_DOCKER_CLI", "nerdctl")
    result = run("list")
    assert result.code == 2
    assert result.err.splitlines()[0] == "mux: error: $MUX_DOCKER_CLI: must be one of docker, podman, got 'nerdctl'"
