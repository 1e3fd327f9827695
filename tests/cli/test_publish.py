"""`mux new -p`: docker's -p with the address written out, a warning for every
interface, and bad specs refused (exit 2) before anything runs."""

from __future__ import annotations

import pytest

from mux.egress import loopback
from mux.engine.runner import quote
from tests.cli.muxcli import BASE_CONFIG, Home, register_run, run, run_argv, top

VERSION = ["docker", *loopback.VERSION]  # engine commands are verb first
CHECK, INSTALL = list(loopback.CHECK), list(loopback.INSTALL)


def test_publish_flags_and_config_ports_reach_docker_run(home: Home, fp) -> None:  # type: ignore[no-untyped-def]
    home.write_config(BASE_CONFIG.replace('pull = "never"\n', 'pull = "never"\nports = ["8080:80"]\n'))
    expected = run_argv(home, middle=["-p", "127.0.0.1:8080:80", "-p", "127.0.0.1::3000",
                                      "-p", "[::1]:5353:53/udp"])
    fp.register(VERSION, stdout="28.0.1\n")  # guards loopback publishes itself: mux adds nothing
    register_run(fp, expected)
    result = run("new", "-p", "3000", "--publish", "[::1]:5353:53/udp", "s1")
    assert result.code == 0, result.err
    assert list(fp.calls) == [VERSION, expected, top()]
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

    fp.register(VERSION, stdout="28.1.0\n")
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


@pytest.mark.parametrize("spec", ["[::0]:8080:80", "[0:0::0]:8080:80", "[::]:8080:80", "0.0.0.0:8080:80"])
def test_every_spelling_of_every_interface_warns(home: Home, fp, spec: str) -> None:  # type: ignore[no-untyped-def]
    result = run("new", "--dry-run", "-p", spec, "s1")
    assert result.code == 0, result.err
    assert result.err == (f"mux: warning: -p {spec} publishes on every interface of this host: "
                          "other machines can reach it\n")


@pytest.fixture
def as_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("mux.egress.loopback.os.geteuid", lambda: 0)
    monkeypatch.setattr("mux.egress.loopback.shutil.which", lambda name: f"/usr/sbin/{name}")


def test_an_old_engine_gets_the_guard_installed_once_before_the_run(home: Home, fp, as_root) -> None:  # type: ignore[no-untyped-def]
    expected = run_argv(home, middle=["-p", "127.0.0.1::3000"])
    fp.register(VERSION, stdout="20.10.24+dfsg1\n")
    fp.register(CHECK, returncode=1, stderr="iptables: Bad rule (does a matching rule exist in that chain?).\n")
    fp.register(INSTALL)
    register_run(fp, expected)
    result = run("-v", "new", "-p", "3000", "s1")
    assert result.code == 0, result.err
    assert list(fp.calls) == [VERSION, CHECK, INSTALL, expected, top()]
    assert "+ " + quote(INSTALL) in result.err.splitlines()


def test_an_installed_guard_is_left_alone(home: Home, fp, as_root) -> None:  # type: ignore[no-untyped-def]
    expected = run_argv(home, middle=["-p", "127.0.0.1:8080:80"])
    fp.register(VERSION, stdout="27.5.1\n")
    fp.register(CHECK)
    register_run(fp, expected)
    result = run("new", "-p", "127.0.0.1:8080:80", "s1")
    assert result.code == 0, result.err
    assert list(fp.calls) == [VERSION, CHECK, expected, top()]


def test_dry_run_prints_the_guard_it_would_install(home: Home, fp, as_root) -> None:  # type: ignore[no-untyped-def]
    fp.register(VERSION, stdout="20.10.24\n")
    fp.register(CHECK, returncode=1)
    result = run("new", "--dry-run", "-p", "3000", "s1")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0] == quote(INSTALL)
    assert quote(run_argv(home, middle=["-p", "127.0.0.1::3000"])) in lines
    assert list(fp.calls) == [VERSION, CHECK]


REFUSAL = ("mux: error: -p 127.0.0.1::3000: Docker 20.10.24+dfsg1 (before 28) lets other machines on the "
           "network reach ports published on 127.0.0.1, and mux cannot block that ({why}): run once as root "
           "on the engine's host `iptables -t raw -I PREROUTING -d 127.0.0.0/8 '!' -i lo -j DROP` (then set "
           "[docker] loopback_guarded = true), or use `mux forward s1 3000`, or publish on an address you "
           "choose (-p ADDRESS:HOST:CONTAINER)")


def test_not_root_on_an_old_engine_is_refused_naming_the_version_and_the_fixes(home: Home, fp, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr("mux.egress.loopback.os.geteuid", lambda: 1000)
    fp.register(VERSION, stdout="20.10.24+dfsg1\n")
    result = run("new", "-p", "3000", "s1")
    assert result.code == 2
    assert result.err.splitlines() == [REFUSAL.format(why="not root")]
    assert list(fp.calls) == [VERSION]
    assert not home.session_dir("s1").exists()


def test_no_iptables_is_refused(home: Home, fp, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr("mux.egress.loopback.os.geteuid", lambda: 0)
    monkeypatch.setattr("mux.egress.loopback.shutil.which", lambda name: None)
    fp.register(VERSION, stdout="20.10.24+dfsg1\n")
    result = run("new", "-p", "3000", "s1")
    assert (result.code, result.err.splitlines()) == (2, [REFUSAL.format(why="no iptables here")])


def test_a_failing_install_is_refused_with_iptables_reason(home: Home, fp, as_root) -> None:  # type: ignore[no-untyped-def]
    fp.register(VERSION, stdout="20.10.24+dfsg1\n")
    fp.register(CHECK, returncode=2, stderr="iptables v1.8.9: can't initialize iptables table `raw'\n")
    fp.register(INSTALL, returncode=2, stderr="iptables v1.8.9: can't initialize iptables table `raw'\n")
    result = run("new", "-p", "3000", "s1")
    assert result.code == 2
    assert result.err.splitlines() == [REFUSAL.format(
        why="iptables -t raw failed: iptables v1.8.9: can't initialize iptables table `raw'")]


@pytest.mark.parametrize(("config", "args"), [
    pytest.param("loopback_guarded = true\n", ["-p", "3000"], id="guarded-in-config"),
    pytest.param("", ["-p", "172.17.0.1:3000:3000"], id="another-address"),
    pytest.param("", ["-p", "[::1]:3000:3000"], id="ipv6-loopback"),
    pytest.param("", [], id="no-ports"),
])
def test_no_version_asked_when_no_guard_is_needed(home: Home, fp, monkeypatch, config: str,  # type: ignore[no-untyped-def]
                                                 args: list[str]) -> None:
    monkeypatch.setattr("mux.egress.loopback.os.geteuid", lambda: 1000)
    home.write_config(BASE_CONFIG.replace('pull = "never"\n', 'pull = "never"\n' + config))
    result = run("new", "--dry-run", *args, "s1")
    assert result.code == 0, result.err
    assert list(fp.calls) == []
