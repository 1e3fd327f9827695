"""Docker's habits on mux's command line: short options, aliases, several names,
and `--` that needs a NAME before it."""

from __future__ import annotations

import pytest

from mux.cli import global_verbose
from tests.cli.muxcli import CID, TOP_STARTED, Home, mounts, probe, ps_line, ps_one, run, top
from tests.cli.test_sessions_cmds import no_such


@pytest.mark.parametrize(("args", "verbose"), [
    pytest.param(["-v", "list"], True, id="before"),
    pytest.param(["--verbose", "list"], True, id="long"),
    pytest.param(["-qv", "list"], True, id="cluster"),
    pytest.param(["--config", "c.toml", "-v", "new", "x"], True, id="after-config-value"),
    pytest.param(["new", "-v", "/a:/b", "x"], False, id="new-volume"),
    pytest.param(["--config", "-v", "new", "x"], False, id="config-value-looks-like-v"),
    pytest.param(["new", "x", "--", "sh", "-v"], False, id="in-command"),
    pytest.param(["--version"], False, id="version"),
])
def test_global_verbose_only_before_the_command(args: list[str], verbose: bool) -> None:
    assert global_verbose(args) is verbose


def test_new_v_is_a_volume_and_e_an_env(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    (home.proj / "data").mkdir()
    result = run("new", "--dry-run", "-v", "./data:/data:ro", "-e", "A=1", "s1")
    assert result.code == 0, result.err
    argv = result.out.splitlines()[-1].split()
    assert f"{home.proj}/data:/data:ro" in argv and argv[argv.index(f"{home.proj}/data:/data:ro") - 1] == "-v"
    assert argv[argv.index("A=1") - 1] == "-e"
    assert "+ docker" not in result.err  # not verbose


def test_global_v_still_verbose_with_a_volume(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    fp.register(ps_one("s1"), stdout=ps_line("s1"))
    result = run("-v", "list")
    assert "+ docker ps" in result.err


@pytest.mark.parametrize(("spec", "noted"), [
    pytest.param("data:/data", True, id="bare-name-with-a-dir-here"),
    pytest.param("cache:/cache", False, id="bare-name-no-dir"),
    pytest.param("./data:/data", False, id="dot-slash"),
])
def test_bare_volume_name_beside_a_directory_is_noted(home: Home, fp, spec: str, noted: bool) -> None:  # type: ignore[no-untyped-def]
    (home.proj / "data").mkdir()
    result = run("new", "--dry-run", "-v", spec, "s1")
    assert result.code == 0, result.err
    note = (f"mux: note: volume {spec!r}: 'data' is a named volume, not the directory "
            f"'{home.proj}/data'; write ./data to mount the directory")
    assert (note in result.err.splitlines()) is noted
    argv = result.out.splitlines()[-1].split()
    assert spec in argv or f"{home.proj}/data:/data" in argv


@pytest.mark.parametrize("args", [
    pytest.param(["new", "--", "echo", "hi"], id="new"),
    pytest.param(["new", "--image", "img", "--", "echo", "hi"], id="new-option-value"),
    pytest.param(["new", "-e", "A=1", "--dry-run", "--", "echo"], id="new-flags"),
    pytest.param(["exec", "--", "ls"], id="exec"),
    pytest.param(["exec", "-it", "--", "ls"], id="exec-it"),
])
def test_dash_dash_without_a_name_is_a_usage_error(home: Home, fp, args: list[str]) -> None:  # type: ignore[no-untyped-def]
    result = run(*args)
    assert result.code == 2
    assert f"give the session NAME before `--`: mux {args[0]} NAME -- COMMAND..." in result.err
    assert list(fp.calls) == []
    assert not (home.data / "sessions").exists() or not any((home.data / "sessions").iterdir())


@pytest.mark.parametrize(("args", "command"), [
    pytest.param(["-it", "s1", "bash"], ["bash"], id="it"),
    pytest.param(["-i", "-t", "s1", "--", "ls", "-t"], ["ls", "-t"], id="i-t-dash"),
    pytest.param(["s1", "ls", "-t", "--dry-run"], ["ls", "-t", "--dry-run"], id="after-name-is-command"),
])
def test_exec_takes_docker_flags_before_the_name(home: Home, fp, execs, args: list[str], command: list[str]) -> None:  # type: ignore[no-untyped-def]
    fp.register(ps_one("s1"), stdout=ps_line("s1"))
    result = run("exec", *args)
    assert result.code == 0, result.err
    assert execs == [["docker", "exec", "-i", CID, *command]]  # mux decides -t: no terminal here


@pytest.mark.parametrize(("verb", "said"), [("start", "Started"), ("stop", "Stopped")])
def test_start_stop_several_names(home: Home, fp, verb: str, said: str) -> None:  # type: ignore[no-untyped-def]
    for name, cid in (("a", "a" * 64), ("b", "b" * 64)):
        fp.register(ps_one(name), stdout=ps_line(name, "exited" if verb == "start" else "running", id=cid))
        fp.register(["docker", verb, cid], stdout=f"{cid}\n")
        if verb == "start":
            fp.register(mounts(cid), stdout="")
            fp.register(top(cid), stdout=TOP_STARTED)
    result = run(verb, "a", "b")
    assert result.code == 0, result.err
    assert result.out == f"{said} session a.\n{said} session b.\n"
    assert [c for c in fp.calls if c[1] == verb] == [["docker", verb, "a" * 64], ["docker", verb, "b" * 64]]


def test_stop_several_goes_on_past_a_missing_one(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    fp.register(ps_one("gone"), stdout="")
    fp.register(probe("gone"), returncode=1, stderr=no_such("gone", "inspect"))
    fp.register(ps_one("b"), stdout=ps_line("b"))
    fp.register(["docker", "stop", CID], stdout=f"{CID}\n")
    result = run("stop", "gone", "b")
    assert result.code == 3  # the failure's own code, like `docker stop` reports each
    assert result.err.splitlines()[0] == "mux: error: no session named 'gone'"
    assert result.out == "Stopped session b.\n"


def test_delete_and_rm_take_several_names(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    for name, cid in (("a", "a" * 64), ("b", "b" * 64)):
        fp.register(ps_one(name), stdout=ps_line(name, "exited", id=cid))
        fp.register(["docker", "rm", cid], stdout=f"{cid}\n")
    result = run("rm", "a", "b")
    assert result.code == 0, result.err
    assert result.out == "Deleted session a.\nDeleted session b.\n"


def test_ls_is_list(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    from tests.cli.muxcli import PS_ALL

    fp.register(PS_ALL, stdout=ps_line("s1"), occurrences=2)
    listed, aliased = run("list"), run("ls")
    assert aliased.code == 0 and aliased.out == listed.out and "s1" in aliased.out


def test_help_names_the_aliases(home: Home) -> None:
    out = run("--help").out
    assert any(line.split()[:2] == ["list,", "ls"] for line in out.splitlines())
    assert any(line.split()[:2] == ["delete,", "rm"] for line in out.splitlines())


def test_volume_help_states_docker_rule(home: Home) -> None:
    out = " ".join(run("new", "--help").out.split())
    assert "-v, --volume SPEC" in out and "else a named volume (docker's rule)" in out


@pytest.mark.parametrize("verb", ["attach", "exec", "logs"])
def test_commands_run_on_the_terminal_go_to_the_chosen_engine(home: Home, fp, verb: str) -> None:  # type: ignore[no-untyped-def]
    from tests.cli.test_engine_cli import make_context, ps_on

    make_context(home, "box", "ssh://me@box.test")
    fp.register(ps_on("box", "s1"), stdout=ps_line("s1"), occurrences=2)
    tail = {"attach": [], "exec": ["-i", CID, "ls"], "logs": []}[verb]
    expected = ["docker", "--context", "box", verb, *(tail or [CID])]
    fp.register(expected)
    result = run("--context", "box", verb, "s1", *(["ls"] if verb == "exec" else []))
    assert result.code == 0, result.err
    assert expected in list(fp.calls)
