"""Docker command lines as podman's (mux/engine/clis.py): each difference, pinned."""

from __future__ import annotations

import pytest

from mux.engine import argv as A
from mux.engine import clis as E
from mux.errors import ConfigError
from mux.session.sessions import PS_FORMAT

RUN_HEAD = ["docker", "run", "-d", "-it", "--init", "--name", "mux-s1", "--label", "mux.session=s1",
            "--label", "mux.backend=docker"]


@pytest.mark.parametrize(("env", "configured", "want"), [
    ({}, None, "docker"),
    ({}, "podman", "podman"),
    ({"MUX_DOCKER_CLI": "podman"}, None, "podman"),
    ({"MUX_DOCKER_CLI": "docker"}, "podman", "docker"),  # the environment wins
])
def test_choose(env: dict[str, str], configured: str | None, want: str) -> None:
    assert E.choose(configured, env) == want


@pytest.mark.parametrize(("env", "configured", "message"), [
    ({"MUX_DOCKER_CLI": "nerdctl"}, None, "$MUX_DOCKER_CLI: must be one of docker, podman, got 'nerdctl'"),
    ({}, "Podman", "[docker] cli: must be one of docker, podman, got 'Podman'"),
], ids=["env", "config"])
def test_choose_rejects(env: dict[str, str], configured: str | None, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("$", r"\$").replace("[", r"\[")):
        E.choose(configured, env)


def test_ps_labels_and_raw_state() -> None:
    out = E.translate(["podman", *A.ps_argv(PS_FORMAT)])
    assert out[:6] == ["podman", "ps", "-a", "--no-trunc", "--filter", "label=mux.session"]
    fmt = out[-1]
    assert '{{json (index .Labels "mux.session")}}' in fmt and ".Label " not in fmt
    assert '"state":{{json .ListContainer.State}}' in fmt
    assert '{{json .Status}}' in fmt  # prose on both: only the exit code is read from it


def test_plain_label_template() -> None:
    fmt = '{{.Names}}\t{{.Label "mux.session"}}{{.Label "mux.helper"}}'
    assert E.translate(["docker", "ps", "-a", "--format", fmt])[-1] == \
        '{{.Names}}\t{{index .Labels "mux.session"}}{{index .Labels "mux.helper"}}'


def test_inspect_state_is_left_alone() -> None:
    argv = A.inspect_argv("abc", "{{.State.Running}} {{.State.ExitCode}}")
    assert E.translate(argv) == ["podman", *argv[1:]]


def test_server_version_and_arch() -> None:
    assert E.translate(["docker", "info", "--format", "{{.ServerVersion}}"]) == \
        ["podman", "info", "--format", "{{.Version.Version}}"]
    assert E.translate(["docker", "version", "--format", "{{.Server.Arch}}"]) == \
        ["podman", "info", "--format", "{{.Host.Arch}}"]


def test_network_members() -> None:
    argv = ["docker", "network", "inspect", "--format", "{{range .Containers}}{{.Name}} {{end}}", "mux-egress"]
    assert E.translate(argv) == ["podman", "ps", "-a", "--filter", "network=mux-egress", "--format", "{{.Names}} "]


def test_run_records_cli_and_keeps_id_rootless() -> None:
    argv = [*RUN_HEAD, "-u", "1000:1000", "mux-test/busybox", "sh", "-c", "--label mux.session=x"]
    assert E.translate(argv, is_rootless=True) == [
        "podman", "run", "-d", "-it", "--init", "--name", "mux-s1", "--label", "mux.session=s1",
        "--label", "mux.cli=podman", "--userns=keep-id", "--label", "mux.backend=docker", "-u", "1000:1000",
        "mux-test/busybox", "sh", "-c", "--label mux.session=x"]
    rootful = E.translate(argv)
    assert "--userns=keep-id" not in rootful and "mux.cli=podman" in rootful


def test_explicit_userns_is_kept() -> None:
    argv = [*RUN_HEAD, "--userns", "host", "img"]
    assert "--userns=keep-id" not in E.translate(argv, is_rootless=True)


def test_host_gateway_becomes_the_slirp_loopback_address() -> None:
    argv = ["docker", "run", "--rm", "--add-host", "host.docker.internal:host-gateway", "img", "wget",
            "--add-host", "x:host-gateway"]
    assert E.translate(argv, is_rootless=True) == [
        "podman", "run", "--rm", "--network", "slirp4netns:allow_host_loopback=true",
        "--add-host", "host.docker.internal:10.0.2.2", "img", "wget",
        "--add-host", "x:host-gateway"]  # the command's own words are never rewritten
    chosen = ["docker", "run", "--network", "mynet", "--add-host", "h:host-gateway", "img"]
    assert E.translate(chosen, is_rootless=True) == ["podman", "run", "--network", "mynet", "--add-host",
                                                     "h:10.0.2.2", "img"]


def test_limits_dropped_only_when_ignored() -> None:
    argv = [*RUN_HEAD, "--memory", "4g", "--memory-swap=4g", "--cpus", "2", "--pids-limit", "512", "img", "--cpus", "1"]
    dropped = E.translate(argv, is_rootless=True, drop_limits=True)
    assert "--memory" not in dropped and "--memory-swap=4g" not in dropped
    assert dropped[-5:] == ["--pids-limit", "512", "img", "--cpus", "1"]
    assert E.translate(argv)[-9:] == ["--memory", "4g", "--memory-swap=4g", "--cpus", "2", "--pids-limit", "512",
                                     "img", "--cpus", "1"][-9:]


def test_exec_command_formats_untouched() -> None:
    argv = ["docker", "exec", "abc", "git", "log", "--format", '{{.Label "x"}}']
    assert E.translate(argv) == ["podman", *argv[1:]]


# Recorded from Debian's podman 4.3.1, rootless, on this machine.
NAME_IN_USE = ('Error: creating container storage: the container name "mux-t3" is already in use by '
               "7950961f6f0e95c94abfdd234de05b3292623f21e1067e487a8107ec68dfa3d8. You have to remove that container "
               "to be able to reuse that name: that name is already in use\n")
NOT_FOUND = 'Error: no container with name or ID "nope" found: no such container\n'
INSPECT_NOT_FOUND = "Error: inspecting object: no such container nope\n"
NETWORK_NOT_FOUND = "Error: unable to find network with name or ID nope: network not found\n"
VOLUME_NOT_FOUND = 'Error: no volume with name "nope" found: no such volume\n'
NOISE = 'time="2026-12-07T23:36:12Z" level=warning msg="\\"/\\" is not a shared mount, this could cause issues"\n'


@pytest.mark.parametrize(("podman", "docker"), [
    (NAME_IN_USE, 'Error: Conflict. The container name "/mux-t3" is already in use by container '
                  '"7950961f6f0e95c94abfdd234de05b3292623f21e1067e487a8107ec68dfa3d8". You have to remove '
                  "(or rename) that container to be able to reuse that name.\n"),
    (NOT_FOUND, "Error: No such container: nope\n"),
    (INSPECT_NOT_FOUND, "Error: No such container: nope\n"),
    (NETWORK_NOT_FOUND, "Error: No such network: nope\n"),
    (VOLUME_NOT_FOUND, "Error: No such volume: nope\n"),
    (NOISE + NOT_FOUND, "Error: No such container: nope\n"),
], ids=["name-in-use", "not-found", "inspect", "network", "volume", "mount-warning"])
def test_docker_wording(podman: str, docker: str) -> None:
    assert E.docker_wording(podman) == docker


def test_rootless_failures_get_the_doctor_hint() -> None:
    tun = '/usr/bin/slirp4netns failed: "open(\\"/dev/net/tun\\"): Permission denied\\n"'
    assert E.failure_hint(tun) == E.ROOTLESS_HINT
    assert E.failure_hint("Error: something else") is None


def test_internal_network_without_dockers_inhibit_option() -> None:
    made = ["docker", "network", "create", "--internal", "-o", "com.docker.network.bridge.inhibit_ipv4=true",
            "--label", "mux.egress-network=proxy-only", "mux-egress"]
    assert E.translate(made) == ["podman", "network", "create", "--internal", "--label",
                                 "mux.egress-network=proxy-only", "mux-egress"]
    fmt = ('{{index .Labels "mux.egress-network"}} {{.Internal}} '
           '{{index .Options "com.docker.network.bridge.inhibit_ipv4"}}')
    assert E.translate(["docker", "network", "inspect", "--format", fmt, "mux-egress"])[4] == \
        '{{index .Labels "mux.egress-network"}} {{.Internal}} {{.Internal}}'
