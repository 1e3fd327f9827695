"""VM engines recognised from `docker info`: three outputs recorded on this machine
(the host's engine, the test's second engine in a container, and the rootless
engine of tests/integration/rootless), the others written from each product's
documented values (only the fields mux reads)."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest

from mux.config import Limits
from mux.engine import vm as vmengine
from mux.engine.choice import Engine
from mux.engine.runner import Runner
from mux.errors import ConfigError, ProxyError

INFO = Path(__file__).parent / "docker_info"


def info(name: str) -> dict[str, object]:
    data: dict[str, object] = json.loads((INFO / name).read_text())
    return data


@pytest.mark.parametrize(("recording", "kind", "host"), [
    ("debian-docker.io-20.10-recorded.json", None, None),
    ("docker-in-container-20.10-recorded.json", None, None),
    ("docker-desktop-reconstructed.json", "Docker Desktop", "host.docker.internal"),
    ("orbstack-reconstructed.json", "OrbStack", "host.docker.internal"),
    ("colima-reconstructed.json", "colima", "host.lima.internal"),
    ("colima-profile-reconstructed.json", "colima", "host.lima.internal"),
    ("rancher-desktop-reconstructed.json", "Rancher Desktop", "host.docker.internal"),
    ("rootless-reconstructed.json", "rootless Docker", None),
    ("rootless-20.10-recorded.json", "rootless Docker", None),
])
def test_recognise(recording: str, kind: str | None, host: str | None) -> None:
    found = vmengine.recognise(info(recording))
    assert (None if found is None else (found.kind, found.host_name)) == (None if kind is None else (kind, host))


def test_override_wins_and_needs_no_docker_call() -> None:
    assert vmengine.proxy_host(Runner(), "10.0.2.2") == "10.0.2.2"


def test_remote_engine_needs_no_docker_info() -> None:
    runner = Runner(engine=Engine("box", "ssh://me@box.test", "--context", pass_context=True))
    assert vmengine.proxy_host(runner, None) is None  # the tunnel's end is host.docker.internal there


def test_cached_per_engine_and_rootless_is_refused(fp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MUX_DATA_DIR", str(tmp_path))
    argv = ["docker", "info", "--format", "{{json .}}"]
    fp.register(argv, stdout=json.dumps(info("docker-desktop-reconstructed.json")))
    assert vmengine.proxy_host(Runner(), None) == "host.docker.internal"
    assert vmengine.proxy_host(Runner(), None) == "host.docker.internal"  # from the cache
    assert [list(c) for c in fp.calls] == [argv]
    desk = Runner(engine=Engine("rl", "unix:///run/user/1000/docker.sock", "--context", pass_context=True))
    fp.register(["docker", "--context", "rl", *argv[1:]], stdout=json.dumps(info("rootless-reconstructed.json")))
    with pytest.raises(ConfigError, match="rootless Docker") as caught:
        vmengine.proxy_host(desk, None)
    assert "[proxy] host_address" in (caught.value.hint or "")


INFO_ARGV = ["docker", "--context", "rl", "info", "--format", "{{json .}}"]


def rootless_runner(socket: Path) -> Runner:
    return Runner(engine=Engine("rl", f"unix://{socket}", "--context", pass_context=True))


@pytest.mark.parametrize(("recording", "expected"), [
    ("rootless-20.10-recorded.json", True),
    ("debian-docker.io-20.10-recorded.json", False),
])
def test_your_own_socket_asks_docker_info_once(fp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
                                               recording: str, expected: bool) -> None:
    monkeypatch.setenv("MUX_DATA_DIR", str(tmp_path / "data"))
    socket = tmp_path / "docker.sock"
    socket.touch()
    if os.geteuid() == 0:
        os.chown(socket, 1000, -1)  # the suite runs as root here: the socket is a user's
    owner = socket.stat().st_uid
    monkeypatch.setattr(vmengine.os, "getuid", lambda: owner)
    fp.register(INFO_ARGV, stdout=json.dumps(info(recording)))
    found = vmengine.rootless_info(rootless_runner(socket))
    assert (found is not None) is expected
    assert vmengine.rootless_info(rootless_runner(socket)) == found  # from the cache
    assert [list(c) for c in fp.calls] == [INFO_ARGV]


@pytest.mark.parametrize("case", ["root runs mux", "socket is not yours", "no socket", "remote"])
def test_no_docker_info_unless_the_socket_is_yours(fp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
                                                   case: str) -> None:
    """A rootful engine's socket is root's: users of the docker group never pay the call."""
    socket = tmp_path / "docker.sock"
    socket.touch()
    owner = socket.stat().st_uid
    uid = {"root runs mux": 0, "socket is not yours": owner + 1}.get(case, owner or 1000)
    monkeypatch.setattr(vmengine.os, "getuid", lambda: uid)
    runner = rootless_runner(tmp_path / "absent.sock" if case == "no socket" else socket)
    if case == "remote":
        runner = Runner(engine=Engine("box", "ssh://me@box.test", "--context", pass_context=True))
    assert vmengine.rootless_info(runner) is None
    assert list(fp.calls) == []


def test_proxy_only_needs_an_ipv4_host_address(fp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """The egress relay connects to an address: a host name there is exit 2 before
    anything is made (no docker call at all)."""
    from mux.egress.wiring import proxy_only_network
    from mux.proxy.settings import default_settings

    monkeypatch.setenv("MUX_DATA_DIR", str(tmp_path))
    settings = replace(default_settings(), host_address="host.docker.internal")
    with pytest.raises(ConfigError, match="IPv4") as caught:
        proxy_only_network(Runner(), settings)
    assert caught.value.exit_code == 2
    assert list(fp.calls) == []


@pytest.mark.parametrize(("recording", "limits", "refused"), [
    ("rootless-20.10-recorded.json", Limits(memory="256m"), True),  # cgroup v1 host: no cgroups
    ("rootless-20.10-recorded.json", Limits(cpus="1.5"), True),
    ("rootless-20.10-recorded.json", Limits(), False),
    ("debian-docker.io-20.10-recorded.json", Limits(memory="256m", cpus="2"), False),
], ids=["memory-no-cgroups", "cpus-no-cgroups", "no-limits", "rootful"])
def test_limits_an_engine_would_drop_are_refused(recording: str, limits: Limits, refused: bool) -> None:
    if not refused:
        vmengine.check_limits(info(recording), limits)
        return
    with pytest.raises(ConfigError, match="without cgroups") as caught:
        vmengine.check_limits(info(recording), limits)
    assert caught.value.exit_code == 2


def test_proxy_only_on_podman_without_a_docker_bridge_says_so(fp, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """No docker0: the relay would forward to an address nobody has (it used to fall back
    to 172.17.0.1); exit 5 naming the way out, before anything is made."""
    from mux.egress import netinfo
    from mux.egress.wiring import proxy_only_network
    from mux.proxy.settings import default_settings

    monkeypatch.setenv("MUX_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(netinfo, "bridge_gateway", lambda runner=None: None)
    fp.register(["podman", "info", "--format", "{{json .}}"], stdout="{}")
    podman = Runner(engine=Engine("default", "unix:///run/user/1000/podman/podman.sock", "default", kind="podman"))
    with pytest.raises(ProxyError, match="no Docker bridge") as caught:
        proxy_only_network(podman, default_settings())
    assert caught.value.exit_code == 5 and "--egress open" in (caught.value.hint or "")
    assert [c for c in fp.calls if "network" in c or "create" in c] == []
