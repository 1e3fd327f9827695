"""The remote tunnel fails closed and ends with the proxy: the ssh commands mux runs
(a fake ssh; the real one is in tests/integration/remote/test_remote_tunnel_check.py)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

from mux.egress import tunnel
from mux.engine.choice import Engine
from mux.engine.runner import Runner
from mux.errors import ProxyError
from mux.proxy import control
from tests.cli.muxcli import Home, run

BOX = Engine("box", "ssh://me@box.test", "--context", pass_context=True)
TARGET = ["-l", "me", "--", "box.test"]
GATEWAY = "172.30.0.1"
FORWARD = f"{GATEWAY}:18080:127.0.0.1:18080"
HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
ON_LOOPBACK = HEADER + "   0: 0100007F:46A0 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1 1\n"
ON_GATEWAY = HEADER + "   0: 01001EAC:46A0 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1 1\n"


@pytest.fixture
def sockets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the control sockets' directory
    return tmp_path


@pytest.fixture
def proxy_on(monkeypatch: pytest.MonkeyPatch) -> None:
    running = control.ProxyStatus(True, 4242, ("127.0.0.1",), 18080, "ca.pem", "audit.log", ports=(18080,))
    monkeypatch.setattr(control, "status", lambda files=None: running)


def register_gateway(fp) -> None:  # type: ignore[no-untyped-def]
    fp.register(["docker", "--context", "box", "network", "inspect", "--format", "{{json .IPAM.Config}}", "bridge"],
                stdout=f'[{{"Subnet":"172.30.0.0/16","Gateway":"{GATEWAY}"}}]\n')


def cat(sock: Path) -> list[str]:
    return ["ssh", "-S", str(sock), "-o", "BatchMode=yes", *TARGET, "cat", "/proc/net/tcp"]


def ops(fp) -> list[str]:  # type: ignore[no-untyped-def]
    return [" ".join(str(a) for a in c[3:5]) for c in fp.calls if c[0] == "ssh" and c[3] != "BatchMode=yes"]


def test_a_forward_bound_to_the_remote_loopback_is_cancelled_and_named(home: Home, fp, sockets: Path,  # type: ignore[no-untyped-def]
                                                                        proxy_on: None) -> None:
    sock, state, _ = tunnel._files(BOX)
    register_gateway(fp)
    fp.register(["ssh", "-S", str(sock), "-O", "check", *TARGET], returncode=0)  # another session's master is up
    fp.register(["ssh", "-S", str(sock), "-O", "forward", "-R", FORWARD, *TARGET])
    fp.register(cat(sock), stdout=ON_LOOPBACK)
    fp.register(["ssh", "-S", str(sock), "-O", "cancel", "-R", FORWARD, *TARGET])
    sock.touch()
    with pytest.raises(ProxyError) as caught:
        tunnel.ensure(Runner(engine=BOX), BOX, 18080)
    assert "bound the tunnel's forward to its own loopback" in caught.value.message
    assert "`GatewayPorts clientspecified`" in caught.value.message and caught.value.hint is None
    assert ["-O cancel"] == [o for o in ops(fp) if o in ("-O cancel", "-O exit")]  # the master stays: not ours
    assert not state.exists()


def test_a_forward_on_the_gateway_is_recorded(home: Home, fp, sockets: Path, proxy_on: None) -> None:  # type: ignore[no-untyped-def]
    sock, state, _ = tunnel._files(BOX)
    register_gateway(fp)
    fp.register(["ssh", "-S", str(sock), "-O", "check", *TARGET], returncode=0)
    fp.register(["ssh", "-S", str(sock), "-O", "forward", "-R", FORWARD, *TARGET])
    fp.register(cat(sock), stdout=ON_GATEWAY)
    assert tunnel.ensure(Runner(engine=BOX), BOX, 18080) == f"{GATEWAY}:18080"
    assert json.loads(state.read_text())["forwards"] == [FORWARD]


def test_a_refused_forward_names_allow_tcp_forwarding_and_ends_the_master_it_made(home: Home, fp, sockets: Path,  # type: ignore[no-untyped-def]
                                                                                    proxy_on: None) -> None:
    sock, state, _ = tunnel._files(BOX)
    register_gateway(fp)
    check = ["ssh", "-S", str(sock), "-O", "check", *TARGET]
    fp.register(check, returncode=255)  # down: mux starts the master
    fp.register(["ssh", "-N", "-M", fp.any()])
    fp.register(check, returncode=0)
    fp.register(["ssh", "-S", str(sock), "-O", "forward", "-R", FORWARD, *TARGET], returncode=255,
                stderr="mux_client_forward: forwarding request failed: remote port forwarding failed for listen "
                "port 18080\n")
    fp.register(cat(sock), stdout=HEADER)  # nothing holds the port there: the sshd refused
    fp.register(["ssh", "-S", str(sock), "-O", "exit", *TARGET])
    with pytest.raises(ProxyError) as caught:
        tunnel.ensure(Runner(engine=BOX), BOX, 18080)
    assert "refused the proxy's tunnel forward" in caught.value.message
    assert "`AllowTcpForwarding yes`" in caught.value.message and caught.value.hint is None
    assert "-O exit" in ops(fp) and not state.exists()


def test_no_tunnel_to_a_port_where_the_proxy_does_not_run(home: Home, fp, sockets: Path,  # type: ignore[no-untyped-def]
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    stopped = control.ProxyStatus(False, None, (), None, "ca.pem", "audit.log")
    monkeypatch.setattr(control, "status", lambda files=None: stopped)
    register_gateway(fp)
    with pytest.raises(ProxyError, match="the proxy is not running on port 18080"):
        tunnel.ensure(Runner(engine=BOX), BOX, 18080)
    assert [c for c in fp.calls if c[0] == "ssh"] == []


def test_proxy_stop_ends_every_tunnel_of_the_data_dir(home: Home, fp, sockets: Path) -> None:  # type: ignore[no-untyped-def]
    other = Engine("default", "ssh://me@other.test:2222", "tunnel state")
    (home.data / "tunnels").mkdir(parents=True)
    for engine in (BOX, other):
        tunnel._files(engine)[1].write_text(json.dumps({"host": engine.host, "forwards": [FORWARD]}))
    sock = tunnel._files(BOX)[0]
    sock.touch()  # other.test's master is gone already: nothing to end there, only its state
    dry = run("proxy", "stop", "--dry-run")
    assert dry.code == 0 and dry.out.splitlines() == [f"ssh -S {sock} -O exit -l me -- box.test"]
    assert all(tunnel._files(e)[1].exists() for e in (BOX, other))
    fp.register(["ssh", "-S", str(sock), "-O", "exit", *TARGET], stderr="Exit request sent.\n")
    done = run("proxy", "stop")
    assert done.code == 0 and done.out == "mux proxy was not running\n"
    assert [c for c in fp.calls if c[0] == "ssh"] == [["ssh", "-S", str(sock), "-O", "exit", *TARGET]]
    assert not any(tunnel._files(e)[1].exists() for e in (BOX, other))


def test_doctor_fails_on_a_tunnel_that_outlived_the_proxy(home: Home, fp, sockets: Path,  # type: ignore[no-untyped-def]
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from mux import doctor

    stopped = control.ProxyStatus(False, None, (), None, "ca.pem", "audit.log")
    monkeypatch.setattr(control, "status", lambda files=None: stopped)
    sock, state, _ = tunnel._files(BOX)
    state.parent.mkdir(parents=True)
    state.write_text(json.dumps({"host": BOX.host, "context": "box", "forwards": [FORWARD]}))
    sock.touch()
    fp.register(["ssh", "-S", str(sock), "-O", "check", *TARGET], returncode=0)
    cfg = SimpleNamespace(proxy=SimpleNamespace(enabled=True))
    [check] = doctor._reach(Runner(engine=BOX), cfg, doctor.MuxError("unused"))  # type: ignore[arg-type]
    assert (check.name, check.ok) == ("tunnel", False)
    assert check.detail.startswith(f"up while the proxy is not running: it forwards {GATEWAY}:18080 there")
    assert check.fix.startswith("`mux proxy stop` ends it")
