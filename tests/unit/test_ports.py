"""What `mux port` reads: docker's port tables, and the records of running forwards."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mux.engine.runner import Runner
from mux.session import ports as P

ID = "ab" * 32


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MUX_DATA_DIR", str(tmp_path))
    return tmp_path


def forward(port: int) -> P.Port:
    return P.Port("forward", port, "tcp", "127.0.0.1", 40000 + port)


def test_a_running_forward_is_listed_for_its_container_only(data: Path) -> None:
    path = P.record_forwards("app", ID, [forward(5173), forward(9229)])
    assert path == data / "forwards" / "app" / f"{os.getpid()}.json"
    assert P.active_forwards("app", ID) == [
        P.Port("forward", 5173, "tcp", "127.0.0.1", 45173, os.getpid()),
        P.Port("forward", 9229, "tcp", "127.0.0.1", 49229, os.getpid())]
    assert P.active_forwards("app", "cd" * 32) == []  # a same-named session on another engine
    assert P.active_forwards("other", ID) == []


def test_the_record_of_a_dead_forward_is_dropped(data: Path) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    directory = data / "forwards" / "app"
    directory.mkdir(parents=True)
    (directory / f"{gone}.json").write_text(json.dumps({"container": ID, "ports": [forward(80).public()]}))
    (directory / f"{os.getpid()}.json").write_text("not json")  # alive, but unreadable: skipped, kept
    assert P.active_forwards("app", ID) == []
    assert sorted(p.name for p in directory.iterdir()) == [f"{os.getpid()}.json"]


@pytest.mark.parametrize(("inspected", "expected"), [
    pytest.param({"bound": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}], "443/tcp": None},
                  "asked": {}},
                 [P.Port("published", 80, "tcp", "127.0.0.1", 8080)], id="running"),
    pytest.param({"bound": {}, "asked": {"3000/udp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}},
                 [P.Port("published", 3000, "udp", "127.0.0.1", None)], id="stopped-any-host-port"),
    pytest.param({"bound": None, "asked": None}, [], id="nothing-published"),
    pytest.param({"bound": {"80/tcp": [{"HostIp": "", "HostPort": "80"}]}, "asked": {}},
                 [P.Port("published", 80, "tcp", "0.0.0.0", 80)], id="docker-default-address"),
])
def test_published_ports_from_inspect(fp, inspected: dict, expected: list[P.Port]) -> None:  # type: ignore[no-untyped-def]
    fp.register(["docker", "container", "inspect", "--format", P.INSPECT_FORMAT, ID],
                stdout=json.dumps(inspected) + "\n")
    assert P.published(Runner(), ID) == expected


def test_unexpected_inspect_output_is_one_clear_error(fp) -> None:  # type: ignore[no-untyped-def]
    fp.register(["docker", "container", "inspect", "--format", P.INSPECT_FORMAT, ID],
                stdout=json.dumps({"bound": {"http": []}, "asked": {}}) + "\n")
    with pytest.raises(P.MuxError, match="could not read the ports of"):
        P.published(Runner(), ID)
