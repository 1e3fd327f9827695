"""`mux new -p`: docker's -p with the address written out, a warning for every
interface, and bad specs refused (exit 2) before anything runs."""

from __future__ import annotations

import pytest

from mux.runner import quote
from tests.cli.muxcli import BASE_CONFIG, Home, register_run, run, run_argv, top


def test_publish_flags_and_config_ports_reach_docker_run(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    home.write_config(BASE_CONFIG.replace('pull = "never"\n', 'pull = "never"\nports = ["8080:80"]\n'))
    expected = run_argv(home, middle=["-p", "127.0.0.1:8080:80", "-p", "127.0.0.1::3000",
                                      "-p", "[::1]:5353:53/udp"])
    register_run(fp, expected)
    result = run("new", "-p", "3000", "--publish", "[::1]:5353:53/udp", "s1")
    assert result.code == 0, result.err
    assert list(fp.calls) == [expected, top()]
    assert "warning" not in result.err


def test_every_interface_is_published_with_a_warning(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    result = run("new", "--dry-run", "-p", "0.0.0.0:8080:80", "s1")
    assert result.code == 0, result.err
    assert quote(run_argv(home, middle=["-p", "0.0.0.0:8080:80"])) in result.out.splitlines()
    assert result.err == ("mux: warning: -p 0.0.0.0:8080:80 publishes on every interface of this host: "
                          "other machines can reach it\n")
    assert list(fp.calls) == []


@pytest.mark.parametrize(("args", "message"), [
    pytest.param(["-p", "70000"], "--publish: invalid container port '70000'", id="out-of-range"),
    pytest.param(["-p", "0"], "--publish: invalid container port '0'", id="zero"),
    pytest.param(["-p", "8080:80/http"], "--publish: invalid protocol 'http'", id="protocol"),
    pytest.param(["-p", "localhost:8080:80"], "--publish: invalid address 'localhost'", id="host-name"),
    pytest.param(["-p", "80", "-p", "x"], "--publish: invalid container port 'x'", id="second-of-two"),
    pytest.param(["-p", ""], "--publish: expected a port like", id="empty"),
])
def test_bad_publish_specs_are_exit_2_and_run_nothing(home: Home, fp, args: list[str], message: str) -> None:  # type: ignore[no-untyped-def]
    result = run("new", *args, "s1")
    assert result.code == 2, result
    assert message in result.err
    assert list(fp.calls) == []
    assert not home.data.exists()


def test_bad_config_port_is_exit_2_naming_the_file(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    home.write_config(BASE_CONFIG.replace('pull = "never"\n', 'pull = "never"\nports = ["1:2:3:4"]\n'))
    result = run("new", "s1")
    assert result.code == 2
    assert result.err.startswith(f"mux: error: {home.config}: [docker] ports: invalid port '1:2:3:4'")
    assert list(fp.calls) == []


def test_port_in_use_removes_the_container_docker_run_left_created(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    from tests.cli.muxcli import ps_line, ps_one

    argv = run_argv(home, middle=["-p", "127.0.0.1:8080:80"])
    def writes_cidfile(process) -> None:  # type: ignore[no-untyped-def]
        (home.session_dir("s1") / "container.id").write_text("0123abcd" * 8)  # as docker run --cidfile does

    fp.register(argv, returncode=125, callback=writes_cidfile, stderr=(
        "docker: Error response from daemon: driver failed programming external connectivity on endpoint "
        "mux-s1 (abc): Error starting userland proxy: listen tcp4 127.0.0.1:8080: bind: address already in use.\n"))
    fp.register(ps_one("s1"), stdout=ps_line("s1", state="created") + ps_line("s1", state="created", id="f" * 64,
                                                                                  created="2025-01-01T00:00:00Z"))
    fp.register(["docker", "rm", "-f", "0123abcd" * 8])
    result = run("new", "-p", "8080:80", "s1")
    assert result.code == 4
    assert result.err.splitlines()[0] == (
        "mux: error: a port published with -p is already in use on this host: 127.0.0.1:8080")
    # Only the container of this run (same mux.created) is removed, by ID.
    assert list(fp.calls)[-1] == ["docker", "rm", "-f", "0123abcd" * 8]
    assert not home.session_dir("s1").exists()
