"""mux.session.agentshell: the agent's wrapper, the session's PATH from the image, login shells."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from mux.engine.runner import Runner
from mux.errors import ConfigError, DockerError
from mux.session import agentshell as S
from mux.spec import SessionSpec

INSPECT = ["docker", *S.image_env_argv("img")]  # as the Runner runs it on the default engine


def spec(**kw: object) -> SessionSpec:
    return SessionSpec(name="s1", image="img", workdir=Path("/w"), labels=(), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("env", "path"), [
    pytest.param(["PATH=/opt/conda/bin:/usr/bin", "LANG=C"], "/opt/mux/bin:/opt/conda/bin:/usr/bin", id="image-own"),
    pytest.param(None, "/opt/mux/bin:" + S.DEFAULT_PATH, id="none-set"),
    pytest.param(["PATH=/opt/mux/bin:/bin"], "/opt/mux/bin:/bin", id="already-there-once"),
    pytest.param(["PATH=/bin\n:/x"], "/opt/mux/bin:" + S.DEFAULT_PATH, id="control-character"),
    pytest.param(["PATH=" + "/a" * 3000], "/opt/mux/bin:" + S.DEFAULT_PATH, id="too-long"),
    pytest.param({"PATH": "/x"}, "/opt/mux/bin:" + S.DEFAULT_PATH, id="not-a-list"),
])
def test_session_path_is_the_image_s_behind_the_wrapper(fp, env: object, path: str) -> None:  # type: ignore[no-untyped-def]
    fp.register(INSPECT, stdout=json.dumps(env) + "\n")
    out = S.with_path(Runner(), spec(env=(("A", "1"),)))
    assert out.env == (("PATH", path), ("A", "1"))


def test_missing_image_is_pulled_first_unless_never(fp) -> None:  # type: ignore[no-untyped-def]
    fp.register(INSPECT, returncode=1, stderr="Error: No such image: img\n")
    fp.register(["docker", "pull", "img"])
    fp.register(INSPECT, stdout='["PATH=/p"]\n')
    assert S.with_path(Runner(), spec()).env == (("PATH", "/opt/mux/bin:/p"),)
    fp.register(INSPECT, returncode=1, stderr="Error: No such image: img\n")
    # --pull never: no PATH of ours; `docker run` then says the image is missing, in its words.
    assert S.with_path(Runner(), spec(pull="never")).env == ()
    assert fp.call_count(["docker", "pull", "img"]) == 1


def test_dry_run_prints_the_pull_and_the_default_path(fp, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    fp.register(INSPECT, returncode=1, stderr="Error: No such image: img\n")
    fp.register(INSPECT, returncode=1, stderr="Error: No such image: img\n")
    assert S.with_path(Runner(dry_run=True), spec()).env == (("PATH", "/opt/mux/bin:" + S.DEFAULT_PATH),)
    assert capsys.readouterr().out == "docker pull img\n"


def test_unreadable_image_after_a_pull_is_a_docker_error(fp) -> None:  # type: ignore[no-untyped-def]
    fp.register(INSPECT, returncode=1, stderr="boom\n")
    fp.register(["docker", "pull", "img"])
    fp.register(INSPECT, returncode=1, stderr="still boom\n")
    with pytest.raises(DockerError, match="cannot read image 'img' after pulling it: still boom"):
        S.with_path(Runner(), spec())


def test_a_user_path_takes_the_image_s_place(fp) -> None:  # type: ignore[no-untyped-def]
    # No inspect: fp refuses any command not registered.
    out = S.with_path(Runner(), spec(env=(("PATH", "/mine:/bin"), ("B", "2"))))
    assert out.env == (("PATH", "/opt/mux/bin:/mine:/bin"), ("B", "2"))
    passed = spec(env=(("PATH", None),))  # --env PATH: the host's own, by choice
    assert S.with_path(Runner(), passed) == passed


def run_wrapper(tmp_path: Path, text: str, path: str, *args: str) -> subprocess.CompletedProcess[str]:
    wrapper = tmp_path / "wrapper"
    wrapper.write_text(text)
    wrapper.chmod(0o555)
    return subprocess.run(["/bin/sh", str(wrapper), *args], capture_output=True, text=True,
                          env={"PATH": path})


def program(path: Path, tag: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'#!/bin/sh\nprintf "%s\\n" {tag} "$@"\n')
    path.chmod(0o755)
    return path


HOSTILE = ("-c", "x=$(touch pwned)", "it's \"quoted\"", "two\nlines", "*", "$HOME", "")


def test_wrapper_runs_the_image_s_program_first_with_the_agent_s_arguments(tmp_path: Path) -> None:
    own = program(tmp_path / "image" / "codex", "image")
    program(tmp_path / "agents" / "codex", "host")
    text = S.wrapper("codex", HOSTILE, str(tmp_path / "agents"), "codex is missing")
    done = run_wrapper(tmp_path, text, f"/opt/mux/bin::{own.parent}:/bin", "exec", "--", "a b")
    assert done.stdout.split("\n")[:-1] == ["image", *"\n".join(HOSTILE).split("\n"), "exec", "--", "a b"]
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()
    # Not in the image: the host's binary, the same arguments.
    done = run_wrapper(tmp_path, text, "/bin", "x")
    assert done.stdout.split("\n")[:2] == ["host", "-c"] and done.stdout.endswith("x\n")
    # Neither: the hint, exit 2.
    missing = S.wrapper("codex", (), str(tmp_path / "none"), "codex is not in this image: install it")
    done = run_wrapper(tmp_path, missing, "/bin")
    assert (done.returncode, done.stderr) == (2, "mux: codex is not in this image: install it\n")


def test_wrapper_never_finds_itself(tmp_path: Path) -> None:
    # The wrapper's own directory first on PATH is skipped: no loop, the real one runs.
    text = S.wrapper("mine", (), str(tmp_path / "none"), "mine is missing")
    done = run_wrapper(tmp_path, text, "/opt/mux/bin:/bin")
    assert done.returncode == 2 and "mine is missing" in done.stderr


def test_an_absolute_command_is_only_that(tmp_path: Path) -> None:
    own = program(tmp_path / "x" / "tool", "absolute")
    text = S.wrapper(str(own), ("--a",), str(tmp_path / "none"), "missing")
    assert run_wrapper(tmp_path, text, "/bin", "b").stdout == "absolute\n--a\nb\n"


@pytest.mark.parametrize("bad", ["a\0b", "a\rb", "a\u2028b"])
def test_arguments_the_wrapper_cannot_hold_are_refused(bad: str) -> None:
    with pytest.raises(ConfigError, match="wrapper script cannot hold") as info:
        S.wrapper("codex", ("-c", bad), "/opt/mux/agents", "hint")
    assert info.value.exit_code == 2


def test_login_snippet_puts_the_wrapper_dir_first_once(tmp_path: Path) -> None:
    snippet = tmp_path / "mux-agent.sh"
    snippet.write_text(S.PROFILE_TEXT)
    out = subprocess.run(["/bin/sh", "-c", '. "$1"; . "$1"; echo "$PATH"', "sh", str(snippet)],
                         capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}).stdout
    assert out == "/opt/mux/bin:/usr/bin:/bin\n"


def test_files_are_written_as_printed_and_not_writable(tmp_path: Path) -> None:
    text = S.wrapper("codex", HOSTILE, "/opt/mux/agents", "hint")
    from mux.engine.runner import write_argv

    assert write_argv(tmp_path / "x", text)[1] == text  # the printed write holds exactly this text
    scripts = S.files(tmp_path / "s1", "codex", text)
    (tmp_path / "s1").mkdir(mode=0o700)
    S.write_files(Runner(), spec(scripts=scripts))
    wrapper, profile = (tmp_path / "s1" / "bin" / "codex"), (tmp_path / "s1" / "bin" / ".profile")
    assert (wrapper.read_text(), profile.read_text()) == (text, S.PROFILE_TEXT)
    modes = [p.stat().st_mode & 0o777 for p in (wrapper, profile, wrapper.parent)]
    assert modes == [0o555, 0o444, 0o755]  # readable by the agent's uid; only mux's user may change them
