"""Reading sessions back from `docker ps` output, and the list table."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from mux import paths
from mux import table as T
from mux.engine.runner import Result
from mux.errors import MuxError
from mux.session import sessions as S


def ps_line(name: str, state: str = "running", **labels: str) -> str:
    row = {"id": "c0ffee" + name, "container": f"mux-{name}", "state": state, "docker_image": "sha256:abc",
           "docker_status": "Exited (3) 2 minutes ago" if state == "exited" else "Up 2 minutes",
           "session": name, "backend": "docker", "workdir": f"/w/{name}", "image": "ubuntu:22.04",
           "created": "2026-01-02T03:04:05Z", "version": "0.1.0", "repo": "", "branch": "", "instance": ""}
    row.update(labels)
    return json.dumps(row)


def test_ps_format_reads_every_label() -> None:
    for key in S.LABELS:
        assert f'"{key}":{{{{json (.Label "mux.{key}")}}}}' in S.PS_FORMAT
    # Each line must be one JSON object once docker fills it in.
    filled = S.PS_FORMAT.replace("{{json .ID}}", '"x"').replace("{{json .Names}}", '"x"')
    filled = filled.replace("{{json .State}}", '"x"').replace("{{json .Image}}", '"x"')
    filled = filled.replace("{{json .Status}}", '"x"')
    for key in S.LABELS:
        filled = filled.replace(f'{{{{json (.Label "mux.{key}")}}}}', '"v"')
    assert set(json.loads(filled)) == {"id", "container", "state", "docker_image", "docker_status", *S.LABELS}


@pytest.mark.parametrize(("state", "status", "running"), [
    pytest.param("running", "running", True, id="running"),
    pytest.param("exited", "stopped", False, id="exited"),
    pytest.param("created", "stopped", False, id="created"),
    pytest.param("paused", "paused", True, id="paused"),
    pytest.param("restarting", "restarting", True, id="restarting"),
    pytest.param("dead", "dead", False, id="dead"),
])
def test_status(state: str, status: str, running: bool) -> None:
    (session,) = S.parse_ps(ps_line("a", state)).sessions
    assert session.status == status
    assert session.running is running


def test_parse_sorts_and_fills_defaults() -> None:
    out = "\n".join([ps_line("b"), "", ps_line("a", backend="", image="")]) + "\n"
    a, b = S.parse_ps(out).sessions
    assert (a.name, b.name) == ("a", "b")
    assert a.backend == "docker"
    assert a.image == "sha256:abc"  # no mux.image label: docker's own idea of the image
    assert a.public() == {"name": "a", "backend": "docker", "status": "running",
                          "created": "2026-01-02T03:04:05Z", "workdir": "/w/a", "image": "sha256:abc",
                          "container": "mux-a", "repo": "", "branch": "", "agent": "", "egress": "",
                          "exit_code": None}


def test_workdir_with_comma_and_equals_survives() -> None:
    (s,) = S.parse_ps(ps_line("a", workdir="/w/a,b=c")).sessions
    assert s.workdir == "/w/a,b=c"


@pytest.mark.parametrize(("status", "code"), [
    pytest.param("Exited (0) 3 seconds ago", 0, id="zero"),
    pytest.param("Exited (127) About a minute ago", 127, id="not-found"),
    pytest.param("Exited (137) 2 hours ago", 137, id="killed"),
])
def test_exit_code_of_an_exited_session(status: str, code: int) -> None:
    (s,) = S.parse_ps(ps_line("a", "exited", docker_status=status)).sessions
    assert s.exit_code == code and s.public()["exit_code"] == code


@pytest.mark.parametrize("state", ["running", "created", "paused"])
def test_no_exit_code_unless_exited(state: str) -> None:
    (s,) = S.parse_ps(ps_line("a", state, docker_status="Up 3 seconds")).sessions
    assert s.exit_code is None


@pytest.mark.parametrize("label", [
    pytest.param("..", id="dotdot"), pytest.param(".", id="dot"), pytest.param("", id="empty"),
    pytest.param("a/../..", id="traversal"), pytest.param("/etc", id="absolute"),
    pytest.param("-rf", id="option"), pytest.param("a" * 64, id="too-long"), pytest.param("a b", id="space"),
])
def test_a_label_that_is_no_name_is_foreign(label: str) -> None:
    scan = S.parse_ps(ps_line("x", session=label) + "\n" + ps_line("ok"))
    assert [s.name for s in scan.sessions] == ["ok"]
    assert [(f.label, f.container) for f in scan.foreign] == [(label, "mux-x")]
    assert scan.foreign[0].public()["status"] == "foreign"


def test_only_the_current_instance_is_seen() -> None:
    out = "\n".join([ps_line("mine", instance="a"), ps_line("theirs", instance="b"), ps_line("plain")])
    assert [s.name for s in S.parse_ps(out, "a").sessions] == ["mine"]
    assert [s.name for s in S.parse_ps(out, None).sessions] == ["plain"]  # no instance: unlabelled only
    assert S.parse_ps(ps_line("x", session="..", instance="b"), None).foreign == []

class FakeRunner:
    def __init__(self, stdout: str) -> None:
        self.stdout = stdout
        self.calls: list[list[str]] = []

    def query(self, argv: list[str], **kwargs: object) -> Result:
        self.calls.append(list(argv))
        return Result(list(argv), 0, self.stdout, "")


@pytest.mark.parametrize("stdout", [pytest.param("not json\n", id="garbage"),
                                    pytest.param('{"id": "x"}\n', id="missing-keys")])
def test_unreadable_ps_output(stdout: str) -> None:
    with pytest.raises(MuxError, match="could not read `docker ps` output"):
        S.list_sessions(FakeRunner(stdout))  # type: ignore[arg-type]


def test_find_prefers_the_exact_container(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MUX_INSTANCE", raising=False)
    runner = FakeRunner("\n".join([ps_line("a", container="renamed"), ps_line("a")]))
    assert S.find(runner, "a").container == "mux-a"  # type: ignore[arg-type]
    assert runner.calls == [["ps", "-a", "--no-trunc", "--filter", "label=mux.session",
                             "--filter", "label=mux.session=a", "--format", S.PS_FORMAT]]


def test_find_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MUX_INSTANCE", raising=False)
    runner = FakeRunner("")
    with pytest.raises(MuxError, match="no session named 'x'") as info:
        S.find(runner, "x")  # type: ignore[arg-type]
    assert info.value.exit_code == 3
    assert runner.calls[-1] == ["container", "inspect", "--format", "{{.Id}}", "mux-x"]


def test_find_checks_the_name() -> None:
    runner = FakeRunner("")
    with pytest.raises(MuxError, match="invalid session name") as info:
        S.find(runner, "../x")  # type: ignore[arg-type]
    assert info.value.exit_code == 2 and runner.calls == []


def test_render() -> None:
    assert T.render(["NAME", "STATUS"], [["long-name", "running"], ["b", "stopped"]]) == (
        "NAME       STATUS\n"
        "long-name  running\n"
        "b          stopped"
    )
    assert T.render(["A", "B"], []) == "A  B"


def test_created_local(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    try:
        assert T.created_local("2026-01-02T03:04:05Z") == "2026-01-02 08:34"
    finally:
        monkeypatch.undo()
        time.tzset()
    assert T.created_local("") == ""
    assert T.created_local("yesterday") == "yesterday"


def test_all_sessions_roots_takes_only_valid_instance_directories(tmp_path: Path) -> None:
    instances = tmp_path / "instances"
    for name in ("a1", "-rf", ".hidden"):
        (instances / name / "sessions").mkdir(parents=True)
    (instances / "linked").symlink_to(instances / "a1")
    assert paths.all_sessions_roots(tmp_path) == [(None, str(tmp_path / "sessions")),
                                                  ("a1", str(instances / "a1" / "sessions"))]
