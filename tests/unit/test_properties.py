"""Properties: what mux prints is exactly what it runs, for any valid input."""

from __future__ import annotations

import os
import shlex
import tempfile
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mux import paths
from mux.config import Limits
from mux.engine import argv as A
from mux.engine.runner import quote
from mux.names import SESSION_NAME
from mux.spec import RunPolicy, SessionSpec
from mux.validate import ENV_NAME
from tests.cli.muxcli import placeholder_steps, run

names = st.from_regex(SESSION_NAME, fullmatch=True)
env_names = st.from_regex(ENV_NAME, fullmatch=True)
# Any text a process argument can hold: no NUL, and encodable (no lone surrogates).
texts = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\0"))
# One path component: no '/', and none of the characters docker -v cannot take.
components = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\0/:,"),
                     min_size=1, max_size=40).filter(
    lambda s: s not in (".", "..") and len(s.encode()) <= 200)


@given(name=names, env=st.lists(st.tuples(env_names, st.none() | texts), max_size=4),
       workdir=st.lists(components, min_size=1, max_size=3), command=st.lists(texts, max_size=5),
       shell=texts.map(lambda s: "/" + s))
def test_run_argv_quotes_and_splits_back(name: str, env: list[tuple[str, str | None]], workdir: list[str],
                                         command: list[str], shell: str) -> None:
    spec = SessionSpec(name=name, image="ubuntu:22.04", workdir=Path("/", *workdir),
                       labels=(("mux.session", name), ("mux.workdir", str(Path("/", *workdir)))),
                       env=tuple(env), command=tuple(command), shell=shell,
                       limits=Limits(memory="1g"), policy=RunPolicy(user="1000:1000"), home=Path("/h"))
    argv = A.run_argv(spec)
    assert shlex.split(quote(argv)) == argv


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("prop")
    config = root / "config.toml"
    config.write_text('[docker]\nimage = "busybox"\n[git]\nuser_name = "A"\nuser_email = "a@x"\n')
    env = {"MUX_CONFIG": str(config), "XDG_CONFIG_HOME": str(root / "xdg")}
    with mock.patch.dict(os.environ, env), mock.patch.object(paths, "SYSTEM_CONFIG", str(root / "none")):
        os.environ.pop("MUX_LOG_LEVEL", None)
        yield root


TOP = ("UID PID PPID C STIME TTY TIME CMD\nroot 9 8 0 05:09 ? 00:00:00 /sbin/docker-init -- sh\n"
       "root 10 9 0 05:09 ? 00:00:00 sh\n")


def _fake_popen(calls: list[list[str]]):  # type: ignore[no-untyped-def]
    class Fake:
        returncode = 0

        def __init__(self, args, **kwargs) -> None:  # type: ignore[no-untyped-def]
            calls.append(list(args))
            self.out = TOP if args[1] == "top" else "id\n"

        def communicate(self, input=None, timeout=None):  # type: ignore[no-untyped-def]
            return self.out, ""
    return Fake


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=names, values=st.lists(st.tuples(env_names, texts), max_size=3),
       dirname=components, command=st.lists(texts, max_size=4))
def test_dry_run_prints_what_would_run(sandbox: Path, name: str, values: list[tuple[str, str]],
                                       dirname: str, command: list[str]) -> None:
    workdir = Path(tempfile.mkdtemp(dir=sandbox)) / dirname
    workdir.mkdir()
    args = ["new", "--workdir", str(workdir)]
    for k, v in values:
        args += ["--env", f"{k}={v}"]
    args += [name, "--", *command] if command else [name]
    data = Path(tempfile.mkdtemp(dir=sandbox))
    with mock.patch.dict(os.environ, {"MUX_DATA_DIR": str(data)}), \
            mock.patch("mux.session.create.datetime") as clock:
        from datetime import datetime, timezone

        clock.now.return_value = datetime(2026, 1, 2, tzinfo=timezone.utc)
        dry = run("new", "--dry-run", *args[1:])
        assert dry.code == 0, dry.err
        calls: list[list[str]] = []
        with mock.patch("mux.engine.runner.subprocess.Popen", _fake_popen(calls)):
            real = run(*args)
        assert real.code == 0, real.err
    (docker_run,) = [c for c in calls if c[1] != "top"]  # top: the started check, a query
    mkdir, passwd, group, rest = dry.out.split("\n", 3)
    # The session's own git directory and the protected paths' placeholders (mux/workspace/protect.py).
    made = "".join(f"{line}\n" for line in placeholder_steps(workdir, data / "sessions" / name))
    assert rest.startswith(made)
    docker_text = rest[len(made):]
    assert shlex.split(mkdir) == ["mkdir", "-p", "-m", "700", str(data / "sessions" / name / "home")]
    for line, file in ((passwd, "passwd"), (group, "group")):  # the session's user (mux.session.account)
        assert shlex.split(line)[:4] == ["sh", "-c", 'printf "%s\\n" "$@" > "$0"', str(data / "sessions" / name / file)]
    # A value with a newline makes the quoted command span lines; it is still one command.
    assert shlex.split(docker_text) == docker_run
    assert docker_run[:2] == ["docker", "run"]
    assert docker_run[-len(command):] == command if command else docker_run[-1] == "/bin/bash"
