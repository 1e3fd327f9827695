"""`mux new`: the exact `docker run`, dry-run output, and how failures are reported."""

from __future__ import annotations

import os
import stat

import pytest

from mux import __version__
from mux.engine import argv as A
from mux.engine.argv import SHELL_FALLBACK
from mux.engine.runner import quote, write_argv
from mux.session import account
from tests.cli.muxcli import (
    IMAGE,
    NEW_ID,
    Home,
    placeholder_steps,
    protected_mounts,
    ps_line,
    ps_one,
    register_run,
    run,
    run_argv,
    top,
)

CONFLICT = (
    'docker: Error response from daemon: Conflict. The container name "/mux-s1" is already in use by container '
    '"0123abcd0123abcd0123abcd0123abcd0123abcd0123abcd0123abcd0123abcd". You have to remove (or rename) that '
    "container to be able to reuse that name.\nSee 'docker run --help'.\n"
)
SOCK_DENIED = (
    "docker: permission denied while trying to connect to the Docker daemon socket at "
    'unix:///var/run/docker.sock: Post "http://%2Fvar%2Frun%2Fdocker.sock/v1.24/containers/create?name=mux-s1": '
    "dial unix /var/run/docker.sock: connect: permission denied.\nSee 'docker run --help'.\n"
)
NO_ENGINE = (
    "docker: Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
    "Is the docker daemon running?.\nSee 'docker run --help'.\n"
)
GIT_IDENTITY = ["git", "-C", "/", "config", "--show-scope", "--get-regexp", r"^user\.(name|email)$"]


def test_new_runs_one_docker_run(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    expected = run_argv(home)
    register_run(fp, expected)
    result = run("new", "s1")
    assert result.code == 0, result.err
    assert list(fp.calls) == [expected, top()]
    assert result.out == "Created session s1 (container mux-s1).\nAttach with: mux attach s1\n"
    session_home = home.session_dir("s1") / "home"
    assert session_home.is_dir()
    assert stat.S_IMODE(home.session_dir("s1").stat().st_mode) == 0o700
    assert stat.S_IMODE(session_home.stat().st_mode) == 0o700


def test_new_quiet(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    register_run(fp, run_argv(home))
    result = run("-q", "new", "s1")
    assert (result.code, result.out) == (0, "")


def test_new_reads_git_identity_from_host(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    home.write_config(f'[docker]\nimage = "{IMAGE}"\npull = "never"\n')
    # Only the global scope counts: a repository's config (an agent's, in a workdir) never does.
    fp.register(GIT_IDENTITY, stdout="system\tuser.name Sys\nglobal\tuser.name Grace Hopper\n"
                "global\tuser.email grace@example.com\nlocal\tuser.name evil\nlocal\tuser.email e@x.test\n")
    env = ["-e", "GIT_CONFIG_COUNT=3", "-e", "GIT_CONFIG_KEY_0=safe.directory", "-e", "GIT_CONFIG_VALUE_0=/workspace",
           "-e", "GIT_CONFIG_KEY_1=user.name", "-e", "GIT_CONFIG_VALUE_1=Grace Hopper",
           "-e", "GIT_CONFIG_KEY_2=user.email", "-e", "GIT_CONFIG_VALUE_2=grace@example.com"]
    expected = run_argv(home, env=env)
    register_run(fp, expected)
    assert run("new", "s1").code == 0
    assert list(fp.calls) == [GIT_IDENTITY, expected, top()]


def test_new_without_host_git_identity(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    home.write_config(f'[docker]\nimage = "{IMAGE}"\npull = "never"\n')
    fp.register(GIT_IDENTITY, returncode=1)  # git config exits 1 when nothing matches
    expected = run_argv(home, env=["-e", "GIT_CONFIG_COUNT=1", "-e", "GIT_CONFIG_KEY_0=safe.directory",
                                   "-e", "GIT_CONFIG_VALUE_0=/workspace"])
    register_run(fp, expected)
    assert run("new", "s1").code == 0
    assert list(fp.calls) == [GIT_IDENTITY, expected, top()]


def account_writes(home: Home, name: str) -> list[str]:
    """The printed writes of the session's passwd and group (their text: tests/unit/test_account.py)."""
    login, group = account.host_names(os.getuid(), os.getgid(), os.environ)
    texts = account.files(login, os.getuid(), group, os.getgid(), "/bin/bash")
    return [quote(write_argv(home.session_dir(name) / f, texts[f])[0]) for f in ("passwd", "group")]


def test_new_every_flag(home: Home, fp, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("GH_TOKEN", "secret")
    (home.proj / "sub").mkdir()
    other = home.root / "other"
    other.mkdir()
    expected = [
        "docker", "run", "-d", "-it", "--init", "--name", "mux-s1",
        "--cidfile", f"{home.session_dir('s1')}/container.id", "--hostname", "s1",
        "--label", "mux.session=s1", "--label", "mux.backend=docker", "--label", f"mux.workdir={other}",
        "--label", "mux.image=alpine:3.19", "--label", "mux.created=2026-01-02T03:04:05Z",
        "--label", f"mux.version={__version__}",
        "-v", f"{other}:/workspace", "-w", "/workspace", "-u", f"{os.getuid()}:{os.getgid()}",
        "-v", f"{home.session_dir('s1')}/home:/home/mux", "-e", "HOME=/home/mux",
        "-v", f"{home.session_dir('s1')}/passwd:/etc/passwd:ro", "-v", f"{home.session_dir('s1')}/group:/etc/group:ro",
        "-v", f"{home.proj}/sub:/sub:ro", "-v", "cache:/cache", *protected_mounts(other, home.session_dir("s1")),
        "-e", "GIT_CONFIG_COUNT=3", "-e", "GIT_CONFIG_KEY_0=safe.directory", "-e", "GIT_CONFIG_VALUE_0=/workspace",
        "-e", "GIT_CONFIG_KEY_1=user.name", "-e", "GIT_CONFIG_VALUE_1=Ada Lovelace",
        "-e", "GIT_CONFIG_KEY_2=user.email", "-e", "GIT_CONFIG_VALUE_2=ada@example.com",
        "-e", "A=1", "-e", "GH_TOKEN",
        "--network", "none", "--memory", "1g", "--memory-swap", "2g", "--cpus", "0.5",
        "--pids-limit", "4096", *A.SECURITY, "--stop-signal", "SIGHUP", "--stop-timeout", "10", "--pull", "always",
        "alpine:3.19", "claude", "--dangerously-skip-permissions", "-p", "do it",
    ]
    register_run(fp, expected)
    # Relative --volume paths resolve against the current directory, not --workdir.
    result = run("new", "--workdir", str(other), "--image", "alpine:3.19", "--env", "A=1", "-e", "GH_TOKEN",
                 "--volume", "./sub:/sub:ro", "--volume", "cache:/cache", "--network", "none",
                 "--memory", "1g", "--memory-swap", "2g", "--cpus", "0.5", "--pull", "always",
                 "s1", "--", "claude", "--dangerously-skip-permissions", "-p", "do it")
    assert result.code == 0, result.err
    assert list(fp.calls) == [expected, top()]


def test_config_values_reach_docker_run(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    (home.root / "ssh").mkdir()
    home.write_config(f"""
[docker]
image = "{IMAGE}"
pull = "never"
volumes = ["./ssh:/root/.ssh:ro"]
env = ["TERM=xterm-256color"]
network = "host"
shell = "/bin/zsh"
run_as_user = false
stop_timeout = 2
[docker.limits]
memory = "512m"
cpus = 2
[git]
inject_config = false
""")
    expected = [
        "docker", "run", "-d", "-it", "--init", "--name", "mux-s1",
        "--cidfile", f"{home.session_dir('s1')}/container.id", "--hostname", "s1",
        "--label", "mux.session=s1", "--label", "mux.backend=docker", "--label", f"mux.workdir={home.proj}",
        "--label", f"mux.image={IMAGE}", "--label", "mux.created=2026-01-02T03:04:05Z",
        "--label", f"mux.version={__version__}",
        "-v", f"{home.proj}:/workspace", "-w", "/workspace",
        "-v", f"{home.root}/ssh:/root/.ssh:ro", *protected_mounts(home.proj, home.session_dir("s1")),
        "-e", "TERM=xterm-256color", "--network", "host",
        "--memory", "512m", "--cpus", "2", "--pids-limit", "4096", *A.SECURITY,
        "--stop-signal", "SIGHUP", "--stop-timeout", "2", "--pull", "never",
        IMAGE, "/bin/sh", "-c", SHELL_FALLBACK, "mux-session", "/bin/zsh",
    ]
    register_run(fp, expected)
    result = run("new", "s1")
    assert result.code == 0, result.err
    assert list(fp.calls) == [expected, top()]
    assert not (home.session_dir("s1") / "home").exists()


def test_dry_run_prints_and_runs_nothing(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    result = run("new", "--dry-run", "s1", "--", "sh", "-c", "echo 'hi there'")
    assert result.code == 0, result.err
    expected = run_argv(home, tail=["sh", "-c", "echo 'hi there'"])
    assert result.out.splitlines() == [
        f"mkdir -p -m 700 {home.session_dir('s1')}/home",
        *account_writes(home, "s1"),
        *placeholder_steps(home.proj, home.session_dir("s1")),
        quote(expected),
    ]
    assert result.err == ""
    assert list(fp.calls) == []
    assert not home.data.exists()


def test_verbose_echoes_commands_to_stderr(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    expected = run_argv(home)
    register_run(fp, expected)
    result = run("-v", "new", "s1")
    assert result.code == 0
    assert result.err.splitlines() == [f"+ mkdir -p -m 700 {home.session_dir('s1')}/home",
                                       *("+ " + line for line in account_writes(home, "s1")),
                                       *("+ " + line for line in placeholder_steps(home.proj, home.session_dir("s1"))),
                                       "+ " + quote(expected), "+ " + quote(top())]
    assert "+ docker" not in result.out


def test_log_level_debug_is_verbose(home: Home, fp, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MUX_LOG_LEVEL", "debug")
    register_run(fp, run_argv(home))
    assert "+ docker run -d -it --init --name mux-s1 " in run("new", "s1").err


def test_name_held_by_another_container(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    fp.register(run_argv(home), returncode=125, stderr=CONFLICT)
    fp.register(ps_one("s1"), stdout="")
    result = run("new", "s1")
    assert result.code == 1
    assert result.err.splitlines() == [
        "mux: error: container mux-s1 already exists but is not a mux session",
        "mux: hint: mux leaves it alone; rename or remove it yourself (`docker rename mux-s1 NEW`), "
        "or choose another NAME",
    ]
    assert not home.session_dir("s1").exists()


def test_name_held_by_a_session(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    fp.register(run_argv(home), returncode=125, stderr=CONFLICT)
    fp.register(ps_one("s1"), stdout=ps_line("s1", "exited"))
    result = run("new", "s1")
    assert result.code == 1
    assert result.err.splitlines()[0] == "mux: error: session 's1' already exists (container mux-s1, stopped)"
    assert "mux attach s1" in result.err


def test_existing_session_dir_means_taken_without_docker_run(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    home.session_dir("s1").mkdir(parents=True)
    (home.session_dir("s1") / "keep").write_text("x")
    fp.register(ps_one("s1"), stdout=ps_line("s1"))
    result = run("new", "s1")
    assert result.code == 1
    assert "session 's1' already exists (container mux-s1, running)" in result.err
    assert list(fp.calls) == [ps_one("s1")]
    assert (home.session_dir("s1") / "keep").exists()


@pytest.mark.parametrize(("stderr", "message", "hint_parts"), [
    pytest.param(SOCK_DENIED, "permission denied on the Docker socket", ["usermod -aG docker", "newgrp docker"],
                 id="socket-permission"),
    pytest.param(NO_ENGINE, "the Docker engine is not answering", ["docker info"], id="engine-down"),
])
def test_docker_unreachable(home: Home, fp, stderr: str, message: str, hint_parts: list[str]) -> None:  # type: ignore[no-untyped-def]
    fp.register(run_argv(home), returncode=1, stderr=stderr)
    result = run("new", "s1")
    assert result.code == 4
    lines = result.err.splitlines()
    assert lines[0] == f"mux: error: {message}"
    assert len(lines) == 2 and lines[1].startswith("mux: hint: ")
    assert all(part in lines[1] for part in hint_parts)
    assert "Traceback" not in result.err
    assert not home.session_dir("s1").exists()


def test_image_missing_with_pull_never(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    fp.register(run_argv(home), returncode=125, stderr=(
        f"docker: Error response from daemon: No such image: {IMAGE}:latest.\nSee 'docker run --help'.\n"))
    result = run("new", "s1")
    assert result.code == 4
    assert result.err.splitlines()[0] == (
        f"mux: error: image '{IMAGE}' is not available locally, and the pull policy forbids pulling")


def test_other_docker_failure_is_one_line_with_docker_reason(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    fp.register(run_argv(home), returncode=125, stderr=(
        "docker: Error response from daemon: failed to create task for container: OCI runtime create failed.\n"
        "See 'docker run --help'.\n"))
    result = run("new", "s1")
    assert result.code == 4
    assert result.err == ("mux: error: docker run failed: failed to create task for container: "
                          "OCI runtime create failed.\n")


def test_verbose_failure_shows_traceback(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    fp.register(run_argv(home), returncode=1, stderr=NO_ENGINE)
    result = run("-v", "new", "s1")
    assert result.code == 4
    assert "Traceback" in result.err
    assert result.err.rstrip().splitlines()[-2] == "mux: error: the Docker engine is not answering"


def test_docker_not_on_path(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = home.root / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    result = run("new", "s1")
    assert result.code == 4
    assert result.err.splitlines()[0] == "mux: error: the docker command was not found on PATH"
    assert "apt-get install docker.io" in result.err
    assert not home.session_dir("s1").exists()


@pytest.mark.parametrize(("args", "message"), [
    pytest.param(["new", "-bad"], "No such option", id="dash-name-is-an-option"),
    pytest.param(["new", "bad/name"], "invalid session name 'bad/name'", id="bad-name"),
    pytest.param(["new", "--memory", "lots", "s1"], "--memory: invalid memory size 'lots'", id="memory"),
    pytest.param(["new", "--cpus", "-1", "s1"], "--cpus: invalid CPU count", id="cpus"),
    pytest.param(["new", "--volume", "/tmp", "s1"], "a container path is required", id="volume"),
    pytest.param(["new", "--env", "=x", "s1"], "invalid environment entry '=x'", id="env"),
    pytest.param(["new", "--env", "MUX_TEST_UNSET_VAR", "s1"], "MUX_TEST_UNSET_VAR is not set on the host",
                 id="env-by-reference-absent"),
    pytest.param(["new", "--workdir", "/nonexistent/dir", "s1"], "does not exist", id="workdir"),
    pytest.param(["new", "--backend", "k8s", "s1"], "Invalid value for '--backend'", id="backend"),
    pytest.param(["new", "--memory", "4g", "--memory-swap", "1g", "s1"], "is smaller than memory", id="swap"),
    pytest.param(["new", "--branch", "main", "s1"], "--branch needs --repo", id="branch-without-repo"),
])
def test_usage_errors_are_exit_2_and_run_nothing(home: Home, fp, args: list[str], message: str) -> None:  # type: ignore[no-untyped-def]
    result = run(*args)
    assert result.code == 2, result
    assert message in result.err
    assert list(fp.calls) == []
    assert not home.data.exists()


def test_bad_config_is_exit_2_naming_file_and_key(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    home.write_config('[docker]\nimage = "ubuntu"\nmemroy = "4g"\n')
    result = run("new", "s1")
    assert result.code == 2
    assert result.err.splitlines()[0] == (
        f"mux: error: {home.config}: [docker] memroy: unknown key 'memroy' (allowed: image, volumes, env, "
        "network, shell, run_as_user, run_as_root, stop_timeout, pull, limits, rust, ports, context, contexts, "
        "protect, cp_limit, loopback_guarded, cli)")
    assert list(fp.calls) == []


def test_missing_config_from_env_is_exit_2(home: Home, fp, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MUX_CONFIG", str(home.root / "nope.toml"))
    result = run("new", "s1")
    assert result.code == 2
    assert "(from $MUX_CONFIG) does not exist" in result.err


def test_env_value_is_never_printed_for_by_reference(home: Home, fp, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("GH_TOKEN", "s3cr3t-value")
    result = run("new", "--dry-run", "-e", "GH_TOKEN", "s1")
    assert result.code == 0
    assert " -e GH_TOKEN " in result.out
    assert "s3cr3t-value" not in result.out
    assert os.environ["GH_TOKEN"] == "s3cr3t-value"


# --- all or nothing: what docker made is removed when the session cannot be whole --


def writes_cidfile(home: Home, cid: str = NEW_ID):  # type: ignore[no-untyped-def]
    """As docker run --cidfile does once the container exists (before starting it)."""
    def callback(process) -> None:  # type: ignore[no-untyped-def]
        (home.session_dir("s1") / "container.id").write_text(cid)
    return callback


STATE = ["docker", "container", "inspect", "--format", "{{.State.Running}} {{.State.ExitCode}}", NEW_ID]
LOGS = ["docker", "logs", "--tail", "10", NEW_ID]
NOT_RUNNING = f"Error response from daemon: Container {NEW_ID} is not running\n"
MINE = {"id": NEW_ID, "created": "2026-01-02T03:04:05Z"}


def test_a_command_that_cannot_start_is_a_failed_new(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    expected = run_argv(home, tail=["nosuchcmd"])
    fp.register(expected, stdout=NEW_ID + "\n", callback=writes_cidfile(home))
    fp.register(top(), returncode=1, stderr=NOT_RUNNING)
    fp.register(STATE, stdout="false 127\n")
    fp.register(LOGS, stderr="[FATAL tini (7)] exec nosuchcmd failed: No such file or directory\n")
    fp.register(ps_one("s1"), stdout=ps_line("s1", "exited", **MINE))
    fp.register(["docker", "rm", "-f", NEW_ID], stdout=NEW_ID + "\n")
    result = run("new", "s1", "--", "nosuchcmd")
    assert result.code == 1, result.err
    assert result.err.splitlines()[0] == (
        "mux: error: the command of session 's1' cannot start: exec nosuchcmd failed: No such file or directory")
    assert list(fp.calls) == [expected, top(), STATE, LOGS, ps_one("s1"), ["docker", "rm", "-f", NEW_ID]]
    assert result.out == "" and not home.session_dir("s1").exists()


def test_a_command_that_runs_and_ends_is_a_session(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    expected = run_argv(home, tail=["true"])
    fp.register(expected, stdout=NEW_ID + "\n")
    fp.register(top(), returncode=1, stderr=NOT_RUNNING)
    fp.register(STATE, stdout="false 0\n")
    fp.register(LOGS, stdout="")
    result = run("new", "s1", "--", "true")
    assert result.code == 0, result.err
    assert "has already ended (exit code 0)" in result.err
    assert home.session_dir("s1").is_dir()


def test_docker_failing_after_create_removes_what_it_made(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    expected = run_argv(home)
    fp.register(expected, returncode=125, callback=writes_cidfile(home), stderr=(
        "docker: Error response from daemon: network no-such-net not found.\nSee 'docker run --help'.\n"))
    fp.register(ps_one("s1"), stdout=ps_line("s1", "created", **MINE))
    fp.register(["docker", "rm", "-f", NEW_ID], stdout=NEW_ID + "\n")
    result = run("new", "s1")
    assert result.code == 4
    assert result.err == "mux: error: docker run failed: network no-such-net not found.\n"
    assert list(fp.calls)[-1] == ["docker", "rm", "-f", NEW_ID]
    assert not home.session_dir("s1").exists()


def test_undo_never_removes_a_container_it_did_not_make(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    """The cidfile names a container, but docker says it is no session of ours: left alone."""
    expected = run_argv(home)
    fp.register(expected, returncode=125, callback=writes_cidfile(home), stderr="docker: oops.\n")
    fp.register(ps_one("s1"), stdout=ps_line("s1", "created", id=NEW_ID, created="2020-01-01T00:00:00Z"))
    result = run("new", "s1")
    assert result.code == 4
    assert list(fp.calls) == [expected, ps_one("s1")]  # no rm


def test_a_link_in_the_way_of_the_session_dir_is_left_alone(home: Home, fp, tmp_path) -> None:  # type: ignore[no-untyped-def]
    elsewhere = tmp_path / "precious"
    elsewhere.mkdir()
    (elsewhere / "keep").write_text("x")
    home.session_dir("s1").parent.mkdir(parents=True)
    home.session_dir("s1").symlink_to(elsewhere)
    fp.register(ps_one("s1"), stdout="")
    result = run("new", "s1")
    assert result.code == 1
    assert "is in the way: it is not a session's directory" in result.err
    assert (elsewhere / "keep").exists() and home.session_dir("s1").is_symlink()
    fp.register(ps_one("s1"), stdout="")
    fp.register(["docker", "container", "inspect", "--format", "{{.Id}}", "mux-s1"], returncode=1)
    assert run("delete", "--force", "s1").code == 3  # not a session: delete never follows it
    assert (elsewhere / "keep").exists()


@pytest.mark.parametrize("step", ["claimed", "dirs"])
def test_a_signal_between_a_step_and_its_undo_leaves_nothing(home: Home, fp, monkeypatch, step: str) -> None:  # type: ignore[no-untyped-def]
    """The session directory exists before the undo knows of it ("claimed"): only the
    signal deferral keeps a SIGTERM landing there from leaving it behind."""
    from mux import interrupts

    monkeypatch.setattr(interrupts, "_INJECT", f"{step}:TERM")
    monkeypatch.setattr(interrupts, "_fired", set())
    result = run("new", "s1")
    assert result.code == 130, result.err
    assert f"mux: test: boundary {step}" in result.err
    assert not home.session_dir("s1").exists()
    assert not [c for c in fp.calls if list(c)[:2] == ["docker", "run"]]  # it never got that far
