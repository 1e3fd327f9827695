"""--context and [docker] context reach every docker command of a mux command;
a remote engine refuses a local working directory before anything runs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from mux.sessions import PS_FORMAT
from tests.cli.muxcli import Home, ps_line, run


def make_context(home: Home, name: str, host: str) -> None:
    meta = home.root / "docker-config" / "contexts" / "meta" / hashlib.sha256(name.encode()).hexdigest()
    meta.mkdir(parents=True)
    (meta / "meta.json").write_text(json.dumps({"Name": name, "Endpoints": {"docker": {"Host": host}}}))


def ps_on(context: str, name: str | None = None) -> list[str]:
    argv = ["docker", "--context", context, "ps", "-a", "--no-trunc", "--filter", "label=mux.session"]
    if name:
        argv += ["--filter", f"label=mux.session={name}"]
    return argv + ["--format", PS_FORMAT]


@pytest.mark.parametrize("how", ["flag", "config"])
def test_every_docker_call_goes_to_the_chosen_context(home: Home, fp, how: str) -> None:  # type: ignore[no-untyped-def]
    make_context(home, "box", "ssh://me@box.test")
    flags = ["--context", "box"] if how == "flag" else []
    if how == "config":
        home.write_config(home.config.read_text().replace("[docker]\n", '[docker]\ncontext = "box"\n'))
    fp.register(ps_on("box", "s1"), stdout=ps_line("s1", state="exited"))
    fp.register(["docker", "--context", "box", "start", "mux-s1"])
    fp.register(["docker", "--context", "box", "attach", "mux-s1"])
    result = run(*flags, "attach", "--dry-run", "s1")
    assert result.code == 0, result.err
    assert result.out.splitlines() == ["docker --context box start mux-s1", "docker --context box attach mux-s1"]


def test_local_workdir_on_remote_engine_is_exit_2_and_runs_nothing(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    make_context(home, "box", "ssh://me@box.test")
    result = run("--context", "box", "new", "s1")
    assert result.code == 2
    assert result.err.splitlines()[0] == (
        f"mux: error: the working directory {home.proj} is on this machine, but the engine is context 'box' "
        "(ssh://me@box.test, from --context), on another: a bind mount there would be an empty directory")
    assert "--copy" in result.err.splitlines()[1]
    assert list(fp.calls) == []
    assert not home.session_dir("s1").exists()


def test_unknown_context_is_exit_2(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    result = run("--context", "nosuch", "list")
    assert result.code == 2
    assert result.err.splitlines()[0] == "mux: error: --context: there is no docker context named 'nosuch'"
    assert list(fp.calls) == []


def test_docker_failure_names_the_command_not_the_context(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    make_context(home, "box", "ssh://me@box.test")
    fp.register(ps_on("box"), returncode=1, stderr="error during connect: ssh: connect to host box.test port 22: "
                "Connection refused\n")
    result = run("--context", "box", "list")
    assert result.code == 4
    assert result.err.splitlines()[0].startswith("mux: error: docker ps failed: error during connect")


def test_copy_dry_run_on_local_engine_prints_volume_steps(home: Home, fp, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = run("new", "--copy", "--dry-run", "s1")
    assert result.code == 0, result.err
    first = [line.split()[:3] for line in result.out.splitlines()]
    assert first[:3] == [["docker", "volume", "create"], ["docker", "volume", "create"], ["docker", "create", "-it"]]
    assert "-v mux-s1-workspace:/workspace" in result.out
    assert "-v mux-s1-home:/home/mux" in result.out
    assert f"docker cp -L {home.session_dir('s1')}/engine/workspace mux-s1:/" in result.out
