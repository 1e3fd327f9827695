"""mux/egress/reach.py: reading where a remote host listens, and the lines that name sshd's settings."""

from __future__ import annotations

import pytest

from mux.egress import reach
from mux.engine.choice import Engine

HEADER = ("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n")
# Port 47123 (B813): bound to 127.0.0.1 (GatewayPorts no), to 172.18.0.1, and an
# established connection on that port that is no listener.
LOOPBACK = "   0: 0100007F:B813 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1\n"
GATEWAY = "   1: 010012AC:B813 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1\n"
ANY = "   2: 00000000:B813 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3 1\n"
CONNECTED = "   3: 030012AC:B813 020012AC:9594 01 00000000:00000000 00:00000000 00000000     0        0 4 1\n"
OTHER_PORT = "   4: 010012AC:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5 1\n"
ENGINE = Engine("box", "ssh://me@box", "--context")


@pytest.mark.parametrize(("rows", "found", "ok"), [
    pytest.param([LOOPBACK], {"127.0.0.1"}, False, id="gateway-ports-no"),
    pytest.param([GATEWAY], {"172.18.0.1"}, True, id="clientspecified"),
    pytest.param([ANY], {"0.0.0.0"}, True, id="every-interface"),
    pytest.param([CONNECTED, OTHER_PORT], set(), False, id="no-listener-on-the-port"),
    pytest.param([LOOPBACK, GATEWAY, CONNECTED], {"127.0.0.1", "172.18.0.1"}, True, id="both"),
])
def test_listening_addresses_come_from_listen_rows_on_the_port(rows: list[str], found: set[str], ok: bool) -> None:
    bound = reach.parse_listening(HEADER + "".join(rows), 47123)
    assert bound == found
    assert reach.reachable(bound, "172.18.0.1") is ok


@pytest.mark.parametrize("text", ["", "sh: cat: not found\n", "\x1b]52;c;bad\x07\n" + LOOPBACK])
def test_what_is_not_proc_net_tcp_says_nothing(text: str) -> None:
    assert reach.parse_listening(text, 47123) is None  # then the container check decides


def test_garbage_rows_are_skipped() -> None:
    text = HEADER + "   9: ZZZZZZZZ:B813 x 0A\n   1: 0100007F\n" + GATEWAY
    assert reach.parse_listening(text, 47123) == {"172.18.0.1"}


def test_the_lines_name_the_setting_to_change() -> None:
    loop = reach.loopback_only(ENGINE, "172.18.0.1", 47123).message
    assert "GatewayPorts clientspecified" in loop and "loopback" in loop and "\n" not in loop
    refused = reach.refused(ENGINE, "172.18.0.1", 47123, in_use=False).message
    assert "AllowTcpForwarding yes" in refused and "GatewayPorts clientspecified" in refused
    taken = reach.refused(ENGINE, "172.18.0.1", 47123, in_use=True).message
    assert "holds that port" in taken and "AllowTcpForwarding" not in taken
    for error in (loop, refused, taken):
        assert reach.ProxyError.exit_code == 5 and "box" in error


def test_the_probe_is_a_labelled_short_lived_container_with_values_as_arguments() -> None:
    argv = reach.probe_argv("img", "mux-egress", ["h.test:1.2.3.4"], "mux-proxy-47123:47123",
                            [("mux.helper", "reach")], pull="never")
    assert argv[:4] == ["run", "--rm", "--label", "mux.helper=reach"]
    assert argv[argv.index("--network") + 1] == "mux-egress" and argv[argv.index("--add-host") + 1] == "h.test:1.2.3.4"
    assert argv[argv.index("--pull") + 1] == "never"
    assert argv[-5:] == ["img", "-c", reach.PROBE_SCRIPT, "mux-proxy-47123", "47123"]


@pytest.mark.parametrize(("said", "answered"), [
    ("HTTP/1.1 407", True),  # curl's -w, bash's or nc's first bytes
    ("wget: server returned error: HTTP/1.1 407 Proxy Authentication Required", True),
    ("Proxy request sent, awaiting response... 407 Proxy Authentication Required", True),
    ("HTTP/1.1 000", False),  # curl: no answer
    ("nc: can't connect to remote host (172.18.0.1): Connection refused", False),
    ("", False),
])
def test_only_an_http_answer_counts(said: str, answered: bool) -> None:
    assert bool(reach.ANSWERED.search(said)) is answered


def test_the_probe_from_inside_a_session_is_a_docker_exec() -> None:
    assert reach.exec_argv("mux-s1", "host.docker.internal:47123") == [
        "exec", "mux-s1", "sh", "-c", reach.PROBE_SCRIPT, "host.docker.internal", "47123"]
