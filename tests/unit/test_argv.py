"""mux.engine.argv: typed spec in, whole docker argv out."""

from __future__ import annotations

from pathlib import Path

import pytest

from mux.config import Limits
from mux.engine import argv as A
from mux.spec import Mount, RunPolicy, SessionSpec

SHELL = ["/bin/sh", "-c", A.SHELL_FALLBACK, "mux-session"]


def minimal(**overrides: object) -> SessionSpec:
    fields: dict[str, object] = dict(
        name="s1", image="ubuntu:22.04", workdir=Path("/home/u/proj"),
        labels=(("mux.session", "s1"), ("mux.backend", "docker")),
    )
    fields.update(overrides)
    return SessionSpec(**fields)  # type: ignore[arg-type]


def test_run_minimal() -> None:
    assert A.run_argv(minimal()) == [
        "run", "-d", "-it", "--init", "--name", "mux-s1",
        "--label", "mux.session=s1", "--label", "mux.backend=docker",
        "-v", "/home/u/proj:/workspace", "-w", "/workspace",
        "--security-opt", "no-new-privileges", "--cap-drop", "NET_RAW", "--cap-drop", "MKNOD",
        "--cap-drop", "SETFCAP", "--cap-drop", "AUDIT_WRITE", "--cap-drop", "SETPCAP",
        "--stop-signal", "SIGHUP", "--stop-timeout", "10",
        "ubuntu:22.04", *SHELL, "/bin/bash",
    ]


def test_run_all_options() -> None:
    spec = minimal(  # noqa: S604 (a spec field, not a subprocess)
        shell="/usr/bin/zsh",
        env=(("A", "1"), ("EMPTY", ""), ("BYREF", None), ("SPACED", "a b=c")),
        env_files=(Path("/run/mux/s1.env"),),
        mounts=(Mount("/data", "/data", read_only=True), Mount("cache", "/cache")),
        network="host",
        limits=Limits(memory="4g", cpus="1.5", memory_swap="8g"),
        policy=RunPolicy(user="1000:1000", pids_limit=100),
        home=Path("/d/sessions/s1/home"),
        stop_timeout=3,
        pull="never",
        extra_hosts=("host.docker.internal:host-gateway",),
    )
    assert A.run_argv(spec) == [
        "run", "-d", "-it", "--init", "--name", "mux-s1",
        "--label", "mux.session=s1", "--label", "mux.backend=docker",
        "-v", "/home/u/proj:/workspace", "-w", "/workspace",
        "-u", "1000:1000",
        "-v", "/d/sessions/s1/home:/home/mux", "-e", "HOME=/home/mux",
        "-v", "/data:/data:ro", "-v", "cache:/cache",
        "--env-file", "/run/mux/s1.env",
        "-e", "A=1", "-e", "EMPTY=", "-e", "BYREF", "-e", "SPACED=a b=c",
        "--network", "host",
        "--add-host", "host.docker.internal:host-gateway",
        "--memory", "4g", "--memory-swap", "8g", "--cpus", "1.5", "--pids-limit", "100",
        "--security-opt", "no-new-privileges", "--cap-drop", "NET_RAW", "--cap-drop", "MKNOD",
        "--cap-drop", "SETFCAP", "--cap-drop", "AUDIT_WRITE", "--cap-drop", "SETPCAP",
        "--stop-signal", "SIGHUP", "--stop-timeout", "3",
        "--pull", "never",
        "ubuntu:22.04", *SHELL, "/usr/bin/zsh",
    ]


def test_run_command_after_double_dash_replaces_shell() -> None:
    spec = minimal(command=("claude", "--dangerously-skip-permissions", "-p", "fix it"),  # noqa: S604
                   shell="/bin/zsh")
    argv = A.run_argv(spec)
    assert argv[argv.index("ubuntu:22.04"):] == [
        "ubuntu:22.04", "claude", "--dangerously-skip-permissions", "-p", "fix it",
    ]
    assert "/bin/zsh" not in argv


def test_run_as_user_off_has_no_user_and_no_home() -> None:
    argv = A.run_argv(minimal(home=None))
    assert "-u" not in argv
    assert not any(a.startswith("HOME=") for a in argv)
    assert argv.count("-v") == 1


def test_env_by_reference_is_a_bare_name() -> None:
    argv = A.run_argv(minimal(env=(("GITHUB_TOKEN", None),)))
    i = argv.index("GITHUB_TOKEN")
    assert argv[i - 1] == "-e"
    assert not any(a.startswith("GITHUB_TOKEN=") for a in argv)


def test_run_argv_is_all_strings() -> None:
    spec = minimal(home=Path("/h"), env_files=(Path("/e"),), stop_timeout=0)
    assert all(type(a) is str for a in A.run_argv(spec))


CID = "c0ffee" * 10 + "abcd"  # lifecycle commands name the container by ID


@pytest.mark.parametrize(("call", "expected"), [
    pytest.param(lambda: A.ps_argv("{{json .}}"),
                 ["ps", "-a", "--no-trunc", "--filter", "label=mux.session", "--format", "{{json .}}"],
                 id="ps-all"),
    pytest.param(lambda: A.ps_argv("F", name="s1"),
                 ["ps", "-a", "--no-trunc", "--filter", "label=mux.session",
                  "--filter", "label=mux.session=s1", "--format", "F"], id="ps-one"),
    pytest.param(lambda: A.inspect_argv(CID, "{{.State.Status}}"),
                 ["container", "inspect", "--format", "{{.State.Status}}", CID], id="inspect"),
    pytest.param(lambda: A.start_argv(CID), ["start", CID], id="start"),
    pytest.param(lambda: A.stop_argv(CID), ["stop", CID], id="stop"),
    pytest.param(lambda: A.rm_argv(["c1"]), ["rm", "c1"], id="rm"),
    pytest.param(lambda: A.rm_argv(["c1", "c2"], force=True), ["rm", "-f", "c1", "c2"],
                 id="rm-force-many"),
    pytest.param(lambda: A.attach_argv(CID), ["attach", CID], id="attach"),
    pytest.param(lambda: A.exec_argv(CID, ["git", "status"], tty=True),
                 ["exec", "-i", "-t", CID, "git", "status"], id="exec-tty"),
    pytest.param(lambda: A.exec_argv(CID, ["ls"], tty=False), ["exec", "-i", CID, "ls"],
                 id="exec-no-tty"),
    pytest.param(lambda: A.logs_argv(CID), ["logs", CID], id="logs"),
    pytest.param(lambda: A.logs_argv(CID, follow=True), ["logs", "-f", CID], id="logs-follow"),
    pytest.param(lambda: A.logs_argv(CID, tail=5), ["logs", "--tail", "5", CID], id="logs-tail"),
    pytest.param(lambda: A.top_argv(CID), ["top", CID], id="top"),
    pytest.param(lambda: A.cleanup_argv("img:1", "/d/sessions/s1", ["repo", "-x"], labels=[("mux.helper", "c")]),
                 ["run", "--rm", "--pull", "never", "--network", "none", "-u", "0:0",
                  "--label", "mux.helper=c", "-v", "/d/sessions/s1:/x", "--entrypoint", "rm", "img:1",
                  "-rf", "--", "/x/repo", "/x/-x"], id="cleanup-as-root"),
])
def test_other_argv(call, expected) -> None:  # type: ignore[no-untyped-def]
    built = call()
    assert built == expected and isinstance(built, A.EngineArgv)  # verb first: the Runner adds the engine


@pytest.mark.parametrize(("flag", "value", "expected"), [
    pytest.param("--x", None, [], id="none-skipped"),
    pytest.param("--x", "", ["--x", ""], id="empty-string-kept"),
    pytest.param("--x", 0, ["--x", "0"], id="zero-kept"),
    pytest.param("--x", Path("/p"), ["--x", "/p"], id="path"),
])
def test_option_helper(flag: str, value: object, expected: list[str]) -> None:
    assert A.option(flag, value) == expected


def test_repeated_and_env_helpers() -> None:
    assert A.repeated("-v", ["a", "b"]) == ["-v", "a", "-v", "b"]
    assert A.repeated("-v", []) == []
    assert A.env_args([("A", "1"), ("B", None)]) == ["-e", "A=1", "-e", "B"]


def test_ps_argv_scopes_to_an_instance_when_one_is_set() -> None:
    from mux.engine.argv import ps_argv

    assert ps_argv("{{.ID}}", name="s", instance="ci") == [
        "ps", "-a", "--no-trunc", "--filter", "label=mux.session",
        "--filter", "label=mux.session=s", "--filter", "label=mux.instance=ci", "--format", "{{.ID}}",
    ]
    assert "label=mux.instance" not in " ".join(ps_argv("{{.ID}}"))
