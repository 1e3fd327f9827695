"""`mux forward` and `mux port` against a fake docker: the exact commands, and refusals."""

from __future__ import annotations

import json

import pytest

from mux.engine.runner import quote
from mux.errors import ConfigError
from mux.session import forward as F
from tests.cli.muxcli import Home, probe, ps_line, ps_one, run

ID = "0123abcd" * 8
ARCH = ["docker", "version", "--format", "{{.Server.Arch}}"]


@pytest.mark.parametrize(("text", "local", "remote"), [
    pytest.param("5173", 5173, 5173, id="same-port"),
    pytest.param("8080:80", 8080, 80, id="local-and-remote"),
    pytest.param(":80", 0, 80, id="any-free-local"),
    pytest.param("0:80", 0, 80, id="zero-local"),
])
def test_parse_mapping(text: str, local: int, remote: int) -> None:
    assert F.parse_mapping(text) == F.Mapping(local, remote)


@pytest.mark.parametrize("text", [
    pytest.param("", id="empty"), pytest.param("0", id="remote-zero"), pytest.param("65536", id="too-big"),
    pytest.param("a:80", id="letters"), pytest.param("80:", id="no-remote"), pytest.param("1:2:3", id="three"),
    pytest.param("80/udp", id="udp-is-not-forwarded"), pytest.param("70000:80", id="local-too-big"),
])
def test_parse_mapping_bad(text: str) -> None:
    with pytest.raises(ConfigError, match="invalid port"):
        F.parse_mapping(text)


def test_dry_run_prints_the_copy_and_the_tunnel(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    fp.register(ps_one("s1"), stdout=ps_line("s1"))
    fp.register(ARCH, stdout="amd64\n")
    result = run("forward", "--dry-run", "s1", "5173")
    assert result.code == 0, result.err
    binary = F.HELPERS / "mux-forward-amd64"
    target = F.helper_target(binary)
    assert result.out.splitlines() == [
        quote(["docker", "cp", str(binary), f"{ID}:{target}"]),
        quote(["docker", "exec", "-i", ID, target, "-m"]),
    ]
    assert [c[:2] for c in fp.calls] == [["docker", "ps"], ["docker", "version"]]


def test_helper_is_named_for_its_content() -> None:
    amd, arm = (F.helper_target(F.HELPERS / f"mux-forward-{a}") for a in ("amd64", "arm64"))
    assert amd != arm and amd.startswith("/.mux-forward-") and len(amd) == len("/.mux-forward-") + 12


def test_engine_of_another_architecture_is_refused(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    fp.register(ps_one("s1"), stdout=ps_line("s1"))
    fp.register(ARCH, stdout="s390x\n")
    result = run("forward", "s1", ":5173")
    assert result.code == 1
    assert result.err.splitlines()[0] == "mux: error: mux forward has no helper for this engine's architecture 's390x'"


def test_stopped_session_is_refused_before_docker_exec(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    fp.register(ps_one("s1"), stdout=ps_line("s1", state="exited"))
    result = run("forward", "s1", "5173")
    assert result.code == 1
    assert "session 's1' is stopped" in result.err and "mux start s1" in result.err
    assert len(fp.calls) == 1


def test_port_lists_published_ports(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    from mux.session.ports import INSPECT_FORMAT

    fp.register(ps_one("s1"), stdout=ps_line("s1"))
    bound = {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}],
             "9000/udp": [{"HostIp": "::1", "HostPort": "9000"}], "443/tcp": None}
    fp.register(["docker", "container", "inspect", "--format", INSPECT_FORMAT, ID],
                stdout=json.dumps({"bound": bound, "asked": {}}) + "\n")
    result = run("port", "s1")
    assert result.code == 0, result.err
    assert result.out.splitlines() == [
        "CONTAINER PORT  HOST ADDRESS    VIA",
        "80/tcp          127.0.0.1:8080  published",
        "9000/udp        [::1]:9000      published",
    ]


def test_port_of_unknown_session_is_exit_3(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    fp.register(ps_one("nope"), stdout="")
    fp.register(probe("nope"), returncode=1)
    assert run("port", "nope").code == 3


def test_every_interface_is_a_warning(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    fp.register(ps_one("s1"), stdout=ps_line("s1"))
    fp.register(ARCH, stdout="arm64\n")
    result = run("forward", "--dry-run", "--address", "0.0.0.0", "s1", "5173")
    assert result.code == 0, result.err
    assert result.err == "mux: warning: forwarding on 0.0.0.0: other machines can reach these ports\n"
    assert "mux-forward-arm64" in result.out.splitlines()[0]


@pytest.mark.parametrize(("args", "message"), [
    pytest.param(["s1", "http"], "invalid port 'http'", id="name-not-port"),
    pytest.param(["s1", "0"], "ports are 1-65535", id="zero"),
    pytest.param(["--address", "my-laptop", "s1", "80"], "--address: invalid address 'my-laptop'", id="address"),
])
def test_bad_arguments_are_exit_2_before_any_docker_call(home: Home, fp, args: list[str], message: str) -> None:  # type: ignore[no-untyped-def]
    result = run("forward", *args)
    assert result.code == 2
    assert message in result.err
    assert list(fp.calls) == []


def test_docker_failing_the_probe_is_not_taken_for_an_idle_port(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    """docker exec exits 1 as the helper does for "nothing listens": only the helper's own words count."""
    fp.register(ps_one("s1"), stdout=ps_line("s1"))
    fp.register(ARCH, stdout="amd64\n")
    target = F.helper_target(F.HELPERS / "mux-forward-amd64")
    fp.register(["docker", "exec", ID, target, "-z", "5173"], returncode=1,
                stderr=f"Error response from daemon: Container {ID} is not running\n")
    result = run("forward", "s1", ":5173")
    assert result.code == 4
    assert result.err.splitlines()[0] == (
        f"mux: error: the forward helper does not run in container {ID[:12]}: "
        f"Error response from daemon: Container {ID} is not running")


class FakeHelper:
    """A helper process whose stdout is the given bytes (what a hostile helper sends)."""

    def __init__(self, out: bytes) -> None:
        import io

        self.stdout, self.stderr, self.stdin = io.BytesIO(out), io.BytesIO(b""), io.BytesIO()
        self.killed = False

    def kill(self) -> None:
        self.killed = True

    def wait(self, timeout: float | None = None) -> int:
        return 0

    def poll(self) -> int:
        return 0


def demux(out: bytes, capsys) -> tuple[FakeHelper, F.Tunnel, str]:  # type: ignore[no-untyped-def]
    import itertools
    import threading

    tunnel = F.Tunnel.__new__(F.Tunnel)
    helper = FakeHelper(out)
    tunnel.proc, tunnel.conns, tunnel.ended = helper, {}, False  # type: ignore[assignment]
    tunnel.lock, tunnel.ids = threading.Lock(), itertools.count(1)
    tunnel._demux()
    return helper, tunnel, capsys.readouterr().err


@pytest.mark.parametrize(("frame", "words"), [
    pytest.param(F.HEADER.pack(1, F.DATA, 0xFFFFFFFF), "type 2, 4294967295 bytes", id="4-GiB"),
    pytest.param(F.HEADER.pack(1, F.DATA, F.MAX_FRAME + 1), f"type 2, {F.MAX_FRAME + 1} bytes", id="one-over"),
    pytest.param(F.HEADER.pack(1, 99, 0), "type 99, 0 bytes", id="unknown-type"),
    pytest.param(F.HEADER.pack(1, F.ACK, 8) + b"\0" * 8, "type 5, 8 bytes", id="long-ack"),
])
def test_a_bad_frame_ends_the_tunnel_without_reading_it(frame: bytes, words: str, capsys) -> None:  # type: ignore[no-untyped-def]
    # The payload is never read or buffered: one 4 GiB header once made the host side grow to 314 MB.
    helper, tunnel, err = demux(frame + b"x" * 1000, capsys)
    assert tunnel.ended and helper.killed
    assert f"mux: the forward tunnel sent a bad frame ({words}); closing it" in err
    assert helper.stdout.tell() == F.HEADER.size


def test_helper_close_reason_is_escaped(capsys) -> None:  # type: ignore[no-untyped-def]
    import socket

    a, b = socket.socketpair()
    conn = F.Connection.__new__(F.Connection)
    F.Connection.__init__(conn, None, 1, a, 80)  # type: ignore[arg-type]
    conn.receive(F.CLOSE, b"refused \x1b]0;owned\x07")
    assert capsys.readouterr().err == "mux: port 80: refused \\x1b]0;owned\\x07\n"
    a.close()
    b.close()


def test_data_past_the_window_closes_that_connection() -> None:
    import socket

    sent: list[tuple[int, int]] = []

    class Tunnel:
        def send(self, conn_id: int, kind: int, payload: bytes = b"") -> None:
            sent.append((conn_id, kind))

    a, b = socket.socketpair()
    conn = F.Connection(Tunnel(), 7, a, 80)  # type: ignore[arg-type]
    chunk = b"x" * F.MAX_FRAME
    for _ in range(F.WINDOW // F.MAX_FRAME):  # a whole window, never acknowledged: still fine
        conn.receive(F.DATA, chunk)
    assert not conn.closed and sent == []
    conn.receive(F.DATA, b"x")  # one byte more than the helper may send unacknowledged
    assert conn.closed and sent == [(7, F.CLOSE)]
    assert conn.inbox.qsize() == F.WINDOW // F.MAX_FRAME + 1  # nothing more was queued
    a.close()
    b.close()
