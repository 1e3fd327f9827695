"""The engine seam: an Engine value carries its kind, base argv and locality; the Runner
puts the base in front of every verb-first engine command (EngineArgv) and translates for
podman; nothing outside mux/engine/ names the container CLI as a command's argv[0]."""

from __future__ import annotations

import ast
import io
from pathlib import Path

import pytest

from mux.engine import clis
from mux.engine.argv import EngineArgv, ps_argv, start_argv
from mux.engine.choice import LOCAL, Engine
from mux.engine.failures import docker_failure
from mux.engine.runner import Runner
from mux.errors import MuxError

PLAIN = Engine("default", "unix:///var/run/docker.sock", "default")
BOX = Engine("box", "ssh://me@box.test", "--context", pass_context=True)
PODMAN = Engine("default", "unix:///run/user/1000/podman/podman.sock", "[docker] cli", kind="podman")
MUX = Path(__file__).resolve().parents[2] / "mux"


@pytest.mark.parametrize(("engine", "base", "remote", "socket"), [
    pytest.param(PLAIN, ("docker",), False, "/var/run/docker.sock", id="docker"),
    pytest.param(BOX, ("docker", "--context", "box"), True, None, id="docker-context"),
    pytest.param(Engine("default", "tcp://127.0.0.1:2375", "DOCKER_HOST"), ("docker",), True, None, id="tcp"),
    pytest.param(PODMAN, ("podman",), False, "/run/user/1000/podman/podman.sock", id="podman"),
])
def test_the_engine_value(engine: Engine, base: tuple[str, ...], remote: bool, socket: str | None) -> None:
    assert (engine.base, engine.remote, engine.socket) == (base, remote, socket)
    assert engine == Engine(engine.name, engine.host, engine.source, engine.pass_context, engine.kind)
    assert len({engine, Engine(engine.name, engine.host, engine.source, engine.pass_context, engine.kind)}) == 1
    with pytest.raises(AttributeError):
        engine.remote = not remote  # type: ignore[misc]


def test_a_hint_shows_the_command_on_its_engine() -> None:
    assert BOX.shown(["volume", "rm", "a b"]) == "docker --context box volume rm 'a b'"
    assert PLAIN.shown(["pull", "img"]) == "docker pull img" and PODMAN.shown([]) == "podman"


@pytest.mark.parametrize(("engine", "expected"), [
    pytest.param(None, ["docker", "start", "c1"], id="no-engine"),
    pytest.param(PLAIN, ["docker", "start", "c1"], id="docker"),
    pytest.param(BOX, ["docker", "--context", "box", "start", "c1"], id="docker-context"),
    pytest.param(PODMAN, ["podman", "start", "c1"], id="podman"),
])
def test_the_runner_puts_the_engine_in_front(engine: Engine | None, expected: list[str]) -> None:
    assert Runner(engine=engine).argv(start_argv("c1")) == expected


def test_podman_commands_are_translated_after_the_base(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clis, "rootless", lambda: True)
    out = Runner(engine=PODMAN).argv(ps_argv('{{.Label "mux.session"}}'))
    assert out == ["podman", "ps", "-a", "--no-trunc", "--filter", "label=mux.session",
                   "--format", '{{index .Labels "mux.session"}}']
    assert Runner(engine=PODMAN).argv(EngineArgv(["version", "--format", "{{.Server.Arch}}"])) == \
        ["podman", "info", "--format", "{{.Host.Arch}}"]


@pytest.mark.parametrize("engine", [PLAIN, BOX, PODMAN], ids=["docker", "docker-context", "podman"])
def test_a_host_command_runs_as_it_is(engine: Engine) -> None:
    assert Runner(engine=engine).argv(["git", "start", Path("/x")]) == ["git", "start", "/x"]
    assert Runner(engine=engine).argv(["docker", "ps"]) == ["docker", "ps"]  # a plain list is never the engine's


def test_dry_run_prints_the_engine_command(fp) -> None:  # type: ignore[no-untyped-def]
    out = io.StringIO()
    Runner(dry_run=True, engine=BOX, out=out).run(start_argv("c1"))
    assert out.getvalue() == "docker --context box start c1\n" and list(fp.calls) == []


def test_adding_words_keeps_an_engine_command() -> None:
    argv = EngineArgv(["ps", Path("/p")]) + ["-a"]
    assert isinstance(argv, EngineArgv) and argv == ["ps", "/p", "-a"]
    argv += ["-q"]
    assert isinstance(argv, EngineArgv)


@pytest.mark.parametrize(("engine", "argv", "message"), [
    pytest.param(None, ["docker", "start", "c1"], "docker start failed: boom", id="docker"),
    pytest.param(BOX, ["docker", "--context", "box", "start", "c1"], "docker start failed: boom", id="context"),
    pytest.param(PODMAN, ["podman", "start", "c1"], "podman start failed: boom", id="podman"),
])
def test_a_failure_names_the_cli_and_the_verb(engine: Engine | None, argv: list[str], message: str) -> None:
    assert docker_failure(argv, 1, "Error: boom\n", engine).message == message


def test_missing_cli_is_named_by_the_engine_kind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # neither podman nor git here
    with pytest.raises(MuxError) as engine_missing:
        Runner(engine=PODMAN).run(start_argv("c1"))
    assert engine_missing.value.message == "the podman command was not found on PATH"
    assert engine_missing.value.exit_code == 4
    with pytest.raises(MuxError) as host_missing:
        Runner(engine=PODMAN).run(["git", "status"])
    assert host_missing.value.message == "git was not found on PATH"


def test_local_is_plain_docker() -> None:
    assert (LOCAL.kind, LOCAL.base, LOCAL.remote) == ("docker", ("docker",), False)


def _cli_as_argv0(tree: ast.AST) -> list[int]:
    """Lines where a list or tuple literal starts with "docker" or "podman", or code
    compares something with those words (argv[0] == "docker")."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.List, ast.Tuple)) and node.elts:
            first = node.elts[0]
            if isinstance(first, ast.Constant) and first.value in clis.CLIS:
                found.append(node.lineno)
        if isinstance(node, ast.Compare) and any(
                isinstance(n, ast.Subscript) for n in [node.left, *node.comparators]) and any(
                isinstance(n, ast.Constant) and n.value in clis.CLIS for n in [node.left, *node.comparators]):
            found.append(node.lineno)
    return found


def test_only_mux_engine_names_the_cli_as_a_command() -> None:
    offenders = [f"{path.relative_to(MUX.parent)}:{line}" for path in sorted(MUX.rglob("*.py"))
                 if "engine" not in path.relative_to(MUX).parts[:1]
                 for line in _cli_as_argv0(ast.parse(path.read_text(), str(path)))]
    assert offenders == [], "build engine commands verb first (mux.engine.argv.EngineArgv)"
