"""list, start, stop, delete, attach, exec, logs: exact docker argv and exit codes."""

from __future__ import annotations

import json
import time

import pytest

from mux.engine.argv import SHELL_FALLBACK
from tests.cli.muxcli import CID, IMAGE, PS_ALL, TOP_STARTED, Home, mounts, probe, ps_line, ps_one, run, top

SOCK_DENIED = (
    "permission denied while trying to connect to the Docker daemon socket at unix:///var/run/docker.sock: "
    'Get "http://%2Fvar%2Frun%2Fdocker.sock/v1.24/containers/json?all=1": dial unix /var/run/docker.sock: '
    "connect: permission denied\n"
)
NO_ENGINE = "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?\n"


def no_such(name: str, verb: str) -> str:
    return (f"Error response from daemon: No such container: mux-{name}\n"
            f"Error: failed to {verb} containers: mux-{name}\n")


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


# --- list -------------------------------------------------------------------


def test_list_table(home: Home, fp, utc) -> None:  # type: ignore[no-untyped-def]
    web, api = home.root / "web app", home.root / "api"
    web.mkdir()
    api.mkdir()
    rows = (ps_line("web", "exited", workdir=str(web)) + ps_line("api", workdir=str(api))
            + ps_line("gone", workdir="/nonexistent/clone"))
    fp.register(PS_ALL, stdout=rows)
    result = run("list")
    assert result.code == 0, result.err
    assert result.out == (
        "NAME  BACKEND  STATUS                     EXIT  CREATED           WORKING DIRECTORY\n"
        f"api   docker   running                          2026-01-02 03:04  {api}\n"
        "gone  docker   running (workdir missing)        2026-01-02 03:04  /nonexistent/clone\n"
        f"web   docker   stopped                    0     2026-01-02 03:04  {web}\n"
    )
    assert list(fp.calls) == [PS_ALL]
    fp.register(PS_ALL, stdout=rows)
    data = {d["name"]: d["workdir_exists"] for d in json.loads(run("list", "--json").out)}
    assert data == {"api": True, "gone": False, "web": True}


def test_list_json(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    fp.register(PS_ALL, stdout=ps_line("api") + ps_line("web", "exited"))
    result = run("list", "--json")
    assert result.code == 0
    data = json.loads(result.out)
    assert [d["name"] for d in data] == ["api", "web"]
    required = {"name", "backend", "status", "created", "workdir", "image", "container"}
    assert all(required <= set(d) for d in data)
    assert {k: data[1][k] for k in required} == {
        "name": "web", "backend": "docker", "status": "stopped", "created": "2026-01-02T03:04:05Z",
        "workdir": "/home/u/web", "image": IMAGE, "container": "mux-web"}


def test_list_json_empty_is_an_empty_array(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    fp.register(PS_ALL, stdout="")
    result = run("list", "--json")
    assert (result.code, json.loads(result.out)) == (0, [])


def test_list_empty(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    fp.register(PS_ALL, stdout="")
    result = run("list")
    assert (result.code, result.out) == (0, "")
    assert "No sessions" in result.err


@pytest.mark.parametrize(("flag", "names"), [
    pytest.param("--running", ["api"], id="running"), pytest.param("--stopped", ["web"], id="stopped"),
])
def test_list_filters(home: Home, fp, flag: str, names: list[str]) -> None:  # type: ignore[no-untyped-def]
    fp.register(PS_ALL, stdout=ps_line("api") + ps_line("web", "exited"))
    result = run("list", "--json", flag)
    assert [d["name"] for d in json.loads(result.out)] == names


def test_list_running_and_stopped_conflict(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    result = run("list", "--running", "--stopped")
    assert result.code == 2
    assert list(fp.calls) == []


@pytest.mark.parametrize(("stderr", "message", "hint"), [
    pytest.param("Got " + SOCK_DENIED, "permission denied on the Docker socket", "usermod -aG docker",
                 id="permission"),
    pytest.param(NO_ENGINE, "the Docker engine is not answering", "docker info", id="engine-down"),
])
def test_list_docker_unreachable(home: Home, fp, stderr: str, message: str, hint: str) -> None:  # type: ignore[no-untyped-def]
    fp.register(PS_ALL, returncode=1, stderr=stderr)
    result = run("list")
    assert result.code == 4
    assert result.err.splitlines()[0] == f"mux: error: {message}"
    assert hint in result.err.splitlines()[1]
    assert len(result.err.splitlines()) == 2


def test_list_verbose(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    fp.register(PS_ALL, stdout="")
    result = run("-v", "list")
    assert result.err.splitlines()[0].startswith(
        "+ docker ps -a --no-trunc --filter label=mux.session --format '{\"id\":{{json .ID}}")


def test_list_without_docker(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(home.root))
    result = run("list")
    assert result.code == 4
    assert result.err.startswith("mux: error: the docker command was not found on PATH\nmux: hint: ")


# --- start / stop -----------------------------------------------------------


def test_start(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    fp.register(ps_one("s1"), stdout=ps_line("s1", "exited"))
    fp.register(mounts(), stdout=f"{home.proj}\n")
    fp.register(["docker", "start", CID], stdout=CID + "\n")
    fp.register(top(CID), stdout=TOP_STARTED)
    result = run("start", "s1")
    assert result.code == 0, result.err
    assert result.out == "Started session s1.\n"
    assert list(fp.calls) == [ps_one("s1"), mounts(), ["docker", "start", CID], top(CID)]


def test_start_refuses_when_a_mounted_directory_is_gone(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    gone = home.session_dir("s1") / "home"
    fp.register(ps_one("s1"), stdout=ps_line("s1", "exited"))
    fp.register(mounts(), stdout=f"{home.proj}\n{gone}\n")
    result = run("start", "s1")
    assert result.code == 1
    assert result.err.splitlines() == [
        f"mux: error: not starting session 's1': {gone} is gone, and docker would re-create it empty, owned by root",
        "mux: hint: restore it, or `mux delete --force s1` to remove the session"]
    assert list(fp.calls) == [ps_one("s1"), mounts()]  # no docker start


def test_stop(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    fp.register(ps_one("s1"), stdout=ps_line("s1"))
    fp.register(["docker", "stop", CID], stdout=CID + "\n")
    result = run("stop", "s1")
    assert result.code == 0, result.err
    assert result.out == "Stopped session s1.\n"
    assert list(fp.calls) == [ps_one("s1"), ["docker", "stop", CID]]


def test_start_of_a_command_that_ends_at_once_says_so(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    fp.register(ps_one("s1"), stdout=ps_line("s1", "exited"))
    fp.register(mounts(), stdout="")
    fp.register(["docker", "start", CID], stdout=CID + "\n")
    fp.register(top(CID), returncode=1, stderr=f"Error response from daemon: Container {CID} is not running\n")
    fp.register(["docker", "container", "inspect", "--format", "{{.State.Running}} {{.State.ExitCode}}", CID],
                stdout="false 3\n")
    fp.register(["docker", "logs", "--tail", "10", CID], stdout="starting\nconfig missing: /x\n")
    result = run("start", "s1")
    assert result.code == 1
    assert result.err.splitlines() == [
        "mux: error: session 's1' stopped right after starting: its command exited with code 3",
        "mux: hint: its last output: starting | config missing: /x; `mux logs s1` shows all"]
    assert result.out == ""


@pytest.mark.parametrize("verb", ["start", "stop"])
def test_start_stop_missing_is_exit_3(home: Home, fp, verb: str) -> None:  # type: ignore[no-untyped-def]
    fp.register(ps_one("s1"), stdout="")
    fp.register(probe("s1"), returncode=1, stderr=no_such("s1", "inspect"))
    result = run(verb, "s1")
    assert result.code == 3
    assert result.err.splitlines() == ["mux: error: no session named 's1'",
                                       "mux: hint: `mux list` shows the sessions that exist"]


@pytest.mark.parametrize("verb", ["start", "stop", "attach", "exec", "logs", "delete"])
def test_a_container_merely_named_like_the_session_is_left_alone(home: Home, fp, verb: str) -> None:  # type: ignore[no-untyped-def]
    fp.register(ps_one("s1"), stdout="")  # no container carries the session's label
    fp.register(probe("s1"), stdout="9999" * 16 + "\n")  # but one holds the name mux-s1
    result = run(verb, "s1")
    assert result.code == 3
    assert "container mux-s1 exists but is not a mux session" in result.err and "leaves it alone" in result.err
    assert [c[1] for c in fp.calls] == ["ps", "container"]  # looked, touched nothing


@pytest.mark.parametrize("verb", ["start", "stop"])
def test_start_stop_dry_run(home: Home, fp, verb: str) -> None:  # type: ignore[no-untyped-def]
    fp.register(ps_one("s1"), stdout=ps_line("s1", "exited" if verb == "start" else "running"))
    fp.register(mounts(), stdout="")
    result = run(verb, "--dry-run", "s1")
    assert (result.code, result.out) == (0, f"docker {verb} {CID}\n")
    assert list(fp.calls) == [ps_one("s1")] + ([mounts()] if verb == "start" else [])  # queries only


def test_stop_engine_down_is_exit_4(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    fp.register(ps_one("s1"), returncode=1, stderr=NO_ENGINE)
    assert run("stop", "s1").code == 4


def test_a_renamed_session_is_acted_on_by_id(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    fp.register(ps_one("s1"), stdout=ps_line("s1", container="renamed-by-hand"))
    fp.register(["docker", "stop", CID], stdout=CID + "\n")
    assert run("stop", "s1").code == 0
    assert list(fp.calls)[-1] == ["docker", "stop", CID]


# --- delete -----------------------------------------------------------------


def test_delete_running_needs_force(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    home.session_dir("s1").mkdir(parents=True)
    fp.register(ps_one("s1"), stdout=ps_line("s1"))
    result = run("delete", "s1")
    assert result.code == 1
    assert result.err.splitlines()[0] == "mux: error: not deleting session 's1': s1: it is running"
    assert "--force" in result.err
    assert list(fp.calls) == [ps_one("s1")]
    assert home.session_dir("s1").exists()


def test_delete_force(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    (home.session_dir("s1") / "home").mkdir(parents=True)
    fp.register(ps_one("s1"), stdout=ps_line("s1"))
    fp.register(["docker", "rm", "-f", CID], stdout="mux-s1\n")
    result = run("delete", "--force", "s1")
    assert result.code == 0, result.err
    assert list(fp.calls) == [ps_one("s1"), ["docker", "rm", "-f", CID]]
    assert result.out == "Deleted session s1.\n"
    assert not home.session_dir("s1").exists()


def test_delete_stopped_without_force(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    fp.register(ps_one("s1"), stdout=ps_line("s1", "exited"))
    fp.register(["docker", "rm", CID], stdout="mux-s1\n")
    result = run("delete", "s1")
    assert result.code == 0, result.err
    assert list(fp.calls)[-1] == ["docker", "rm", CID]


def test_delete_missing_is_exit_3(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    fp.register(ps_one("s1"), stdout="")
    fp.register(probe("s1"), returncode=1, stderr=no_such("s1", "inspect"))
    result = run("delete", "s1")
    assert result.code == 3
    assert "no session named 's1'" in result.err


def test_delete_leftover_files_without_container(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    (home.session_dir("s1") / "home").mkdir(parents=True)
    fp.register(ps_one("s1"), stdout="")
    result = run("delete", "s1")
    assert result.code == 0
    assert not home.session_dir("s1").exists()
    assert result.out == "Deleted session s1 (its container was gone).\n"


def test_delete_leftover_clone_with_unsaved_work_is_refused(home: Home, fp, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # Its container is gone, so is its image, the git box's: nothing can vouch for it.
    (home.session_dir("s1") / "repo").mkdir(parents=True)
    fp.register(ps_one("s1"), stdout="")
    result = run("delete", "s1")
    assert result.code == 1 and "cannot be checked for unsaved work" in result.err and "--force" in result.err
    assert list(fp.calls) == [ps_one("s1")]  # no git here, no box either
    assert home.session_dir("s1").exists()


def test_delete_leaves_a_session_being_created_alone(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    from mux.session.hostfiles import lock_creation

    home.session_dir("s1").mkdir(parents=True)
    lock_creation(home.session_dir("s1"))  # as a concurrent `mux new` would hold it
    fp.register(ps_one("s1"), stdout="")
    result = run("delete", "s1")
    assert result.code == 1 and "being created" in result.err
    assert home.session_dir("s1").exists()


def test_delete_all(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    fp.register(PS_ALL, stdout=ps_line("a", "exited", id="a" * 64) + ps_line("b")
                + ps_line("c", "created", id="c" * 64))
    fp.register(["docker", "rm", "a" * 64, "c" * 64], stdout="")
    result = run("delete", "--all")
    assert result.code == 1  # b is running: refused, the others go
    assert list(fp.calls) == [PS_ALL, ["docker", "rm", "a" * 64, "c" * 64]]
    assert result.out == "Deleted session a.\nDeleted session c.\n"
    assert result.err.splitlines()[0] == "mux: error: not deleting 1 session(s): b: it is running"


def test_delete_all_force(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    fp.register(PS_ALL, stdout=ps_line("a", "exited", id="a" * 64) + ps_line("b", id="b" * 64))
    fp.register(["docker", "rm", "-f", "a" * 64, "b" * 64], stdout="")
    result = run("delete", "--all", "--force")
    assert result.code == 0, result.err
    assert list(fp.calls)[-1] == ["docker", "rm", "-f", "a" * 64, "b" * 64]


def test_delete_dry_run(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    home.session_dir("s1").mkdir(parents=True)
    fp.register(ps_one("s1"), stdout=ps_line("s1"))
    result = run("delete", "--dry-run", "-f", "s1")
    assert result.code == 0
    assert result.out.splitlines() == [f"docker rm -f {CID}", f"rm -rf {home.session_dir('s1')}"]
    assert list(fp.calls) == [ps_one("s1")]  # the query runs; nothing is removed
    assert home.session_dir("s1").exists()


@pytest.mark.parametrize("args", [pytest.param([], id="neither"), pytest.param(["--all", "s1"], id="both")])
def test_delete_name_xor_all(home: Home, fp, args: list[str]) -> None:  # type: ignore[no-untyped-def]
    result = run("delete", *args)
    assert result.code == 2
    assert "give a session NAME or --all" in result.err


def test_delete_rm_fails_is_exit_4(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    home.session_dir("s1").mkdir(parents=True)
    fp.register(ps_one("s1"), stdout=ps_line("s1", "exited"))
    fp.register(["docker", "rm", CID], returncode=1, stderr=NO_ENGINE)
    assert run("delete", "s1").code == 4
    assert home.session_dir("s1").exists()  # files stay when the container could not be removed


# --- attach / exec / logs (run on the terminal as children: mux keeps the exit code)


def test_attach_running(home: Home, fp, execs) -> None:  # type: ignore[no-untyped-def]
    fp.register(ps_one("s1"), stdout=ps_line("s1"))
    result = run("attach", "s1")
    assert result.code == 0
    assert list(fp.calls) == [ps_one("s1"), ["docker", "attach", CID]]
    assert execs == [["docker", "attach", CID]]
    assert "detach with Ctrl-P Ctrl-Q" in result.err


@pytest.mark.parametrize(("state_after", "code"), [
    pytest.param("running", 0, id="detached"),
    pytest.param("exited", 1, id="session-ended-with-1"),
])
def test_attach_exit_code_after_docker_attach_returns_1(home: Home, fp, state_after: str, code: int) -> None:  # type: ignore[no-untyped-def]
    """docker attach exits 1 on a detach (Ctrl-P Ctrl-Q) and when the session's
    shell exits 1: a session still running means a detach, which is success."""
    fp.register(ps_one("s1"), stdout=ps_line("s1"))
    fp.register(["docker", "attach", CID], returncode=1)
    fp.register(ps_one("s1"), stdout=ps_line("s1", state_after))
    assert run("attach", "s1").code == code


def test_attach_starts_a_stopped_session(home: Home, fp, execs) -> None:  # type: ignore[no-untyped-def]
    fp.register(ps_one("s1"), stdout=ps_line("s1", "exited"))
    fp.register(mounts(), stdout="")
    fp.register(["docker", "start", CID], stdout=CID + "\n")
    fp.register(top(CID), stdout=TOP_STARTED)
    assert run("attach", "s1").code == 0
    assert list(fp.calls) == [ps_one("s1"), mounts(), ["docker", "start", CID], top(CID), ["docker", "attach", CID]]
    assert execs == [["docker", "attach", CID]]


def test_attach_dry_run(home: Home, fp, execs) -> None:  # type: ignore[no-untyped-def]
    fp.register(ps_one("s1"), stdout=ps_line("s1", "exited"))
    fp.register(mounts(), stdout="")
    result = run("attach", "--dry-run", "s1")
    assert (result.code, result.out) == (0, f"docker start {CID}\ndocker attach {CID}\n")
    assert execs == []


def test_attach_missing(home: Home, fp, execs) -> None:  # type: ignore[no-untyped-def]
    fp.register(ps_one("s1"), stdout="")
    fp.register(probe("s1"), returncode=1)
    assert run("attach", "s1").code == 3
    assert execs == []


def test_attach_verbose(home: Home, fp, execs) -> None:  # type: ignore[no-untyped-def]
    fp.register(ps_one("s1"), stdout=ps_line("s1"))
    assert f"+ docker attach {CID}" in run("-v", "attach", "s1").err.splitlines()


@pytest.mark.parametrize(("args", "command"), [
    pytest.param(["--", "git", "status"], ["git", "status"], id="double-dash"),
    pytest.param(["--", "ls", "-la", "--color"], ["ls", "-la", "--color"], id="options-after-dash"),
    pytest.param([], ["/bin/sh", "-c", SHELL_FALLBACK, "mux-session", "/bin/bash"], id="default-shell"),
])
def test_exec(home: Home, fp, execs, args: list[str], command: list[str]) -> None:  # type: ignore[no-untyped-def]
    fp.register(ps_one("s1"), stdout=ps_line("s1"))
    result = run("exec", "s1", *args)
    assert result.code == 0, result.err
    assert execs == [["docker", "exec", "-i", CID, *command]]  # no terminal here: no -t


def test_exec_uses_configured_shell(home: Home, fp, execs) -> None:  # type: ignore[no-untyped-def]
    home.write_config('[docker]\nshell = "/bin/zsh"\n[git]\ninject_config = false\n')
    fp.register(ps_one("s1"), stdout=ps_line("s1"))
    assert run("exec", "s1").code == 0
    assert execs[0][-1] == "/bin/zsh"


def test_exec_stopped(home: Home, fp, execs) -> None:  # type: ignore[no-untyped-def]
    fp.register(ps_one("s1"), stdout=ps_line("s1", "exited"))
    result = run("exec", "s1", "--", "ls")
    assert result.code == 1
    assert result.err.splitlines() == ["mux: error: session 's1' is stopped", "mux: hint: `mux start s1` first"]
    assert execs == []


def test_exec_missing(home: Home, fp, execs) -> None:  # type: ignore[no-untyped-def]
    fp.register(ps_one("s1"), stdout="")
    fp.register(probe("s1"), returncode=1)
    assert run("exec", "s1", "--", "ls").code == 3


@pytest.mark.parametrize(("args", "argv"), [
    pytest.param([], ["docker", "logs", CID], id="plain"),
    pytest.param(["-f"], ["docker", "logs", "-f", CID], id="follow"),
])
def test_logs(home: Home, fp, execs, args: list[str], argv: list[str]) -> None:  # type: ignore[no-untyped-def]
    fp.register(ps_one("s1"), stdout=ps_line("s1", "exited"))
    assert run("logs", *args, "s1").code == 0
    assert execs == [argv]


def test_logs_missing(home: Home, fp, execs) -> None:  # type: ignore[no-untyped-def]
    fp.register(ps_one("s1"), stdout="")
    fp.register(probe("s1"), returncode=1)
    assert run("logs", "s1").code == 3
    assert execs == []


def test_exec_docker_missing_at_exec_time(home: Home, fp, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    fp.register(ps_one("s1"), stdout=ps_line("s1"))

    fp.allow_unregistered(True)  # `docker attach` really runs, on a PATH without docker
    monkeypatch.setenv("PATH", str(home.root / "no-docker-here"))
    result = run("attach", "s1")
    assert result.code == 4
    assert "the docker command was not found on PATH" in result.err


def test_list_shows_a_session_being_created_as_nothing_missing(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    from mux.session.hostfiles import lock_creation

    (home.session_dir("born")).mkdir(parents=True)
    lock_creation(home.session_dir("born"))  # a `mux new` still at work on it
    (home.session_dir("left")).mkdir(parents=True)  # container removed by hand
    fp.register(PS_ALL, stdout="")
    data = json.loads(run("list", "--json").out)
    assert [(d["name"], d["status"]) for d in data] == [("left", "missing")]


def test_delete_all_of_repo_sessions_runs_one_git_box_and_no_git_here(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    for name in ("a", "b"):
        (home.session_dir(name) / "repo").mkdir(parents=True)
    fp.register(PS_ALL, stdout=ps_line("a", "exited", id="a" * 64, repo="/src/app")
                + ps_line("b", "exited", id="b" * 64, repo="/src/app"))
    box = ["docker", "run", "--rm", fp.any()]
    fp.register(box, stdout="0 changes 0 0\n0 heads 0\n0 stash 0\n0 end\n"
                "1 changes 0 1\n1 heads 0\n1 stash 0\n1 end\n")
    fp.register(["docker", "rm", "a" * 64], stdout="")
    result = run("delete", "--all")
    calls = [list(c) for c in fp.calls]
    runs = [c for c in calls if c[:2] == ["docker", "run"]]
    assert len(runs) == 1 and not any(c[0] == "git" for c in calls)
    argv = runs[0]
    for flag in ("--network none", "--cap-drop ALL", "--read-only", "--security-opt no-new-privileges"):
        assert flag in " ".join(argv)
    assert argv[-2:] == ["/r/0", "/r/1"]
    assert result.code == 1 and "b: 1 untracked file" in result.err
    assert not home.session_dir("a").exists() and home.session_dir("b").exists()


def test_delete_refuses_when_the_git_box_prints_garbage(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    (home.session_dir("s1") / "repo").mkdir(parents=True)
    fp.register(ps_one("s1"), stdout=ps_line("s1", "exited", repo="/src/app"))
    fp.register(["docker", "run", "--rm", fp.any()], stdout="0 changes 0 0\n\x1b]0;owned\x07\n0 end\n")
    result = run("delete", "s1")
    assert result.code == 1 and "not a check" in result.err and "\x1b" not in result.err
    assert home.session_dir("s1").exists()
