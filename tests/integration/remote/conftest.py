"""A second Docker engine, on "another machine": dockerd in a container here,
reached over ssh like a real remote (tests/images/remote-engine).

Started once per test run. The ssh client setup (key, known_hosts) and the
docker context "box" live in a temp dir: an `ssh` wrapper first on PATH adds
`-F` with that dir's config (what a user's ~/.ssh/config does), DOCKER_CONFIG
points the docker CLI at that dir's contexts. Root's ~/.ssh and ~/.docker are
not touched. Only the engine container this run made is removed.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import BUSYBOX, DEBIAN, mux
from tests.integration.proxy.conftest import api, gateway, pki  # noqa: F401 - fixtures
from tests.integration.proxy.harness import free_port
from tests.integration.proxy.servers import Pki

ENGINE_IMAGE = "mux-test/remote-engine"
TOKEN = "tok-remote-7d41e0-never-on-the-box"
CONTEXT = "box"
# What running dockerd inside a container needs on this machine (--privileged
# fails: no CAP_SYS_RESOURCE here); see DESIGN.md's field notes.
ENGINE_FLAGS = [
    "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
    "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
    "--security-opt", "systempaths=unconfined",
    "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--tmpfs", "/var/lib/docker:exec",
]


@dataclass(frozen=True)
class RemoteEngine:
    container: str  # the engine's container on the local engine
    host: str  # ssh://root@127.0.0.1:PORT
    env: dict[str, str]  # PATH (ssh wrapper) and DOCKER_CONFIG (context "box")
    context: str = CONTEXT

    def docker(self, *args: str, check: bool = True, **kwargs: object) -> subprocess.CompletedProcess[str]:
        """A docker command run on the remote engine (through its ssh context)."""
        return subprocess.run(["docker", "--context", self.context, *args], capture_output=True, text=True,
                              check=check, env={**os.environ, **self.env}, **kwargs)  # type: ignore[call-overload]

    def inside(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """A command run on the remote machine itself (not in one of its containers)."""
        return subprocess.run(["docker", "exec", self.container, *args], capture_output=True, text=True,
                              check=check)


def _local(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True, **kwargs)  # type: ignore[call-overload]


def _wait_for_engine(container: str) -> None:
    for _ in range(120):
        if subprocess.run(["docker", "exec", container, "docker", "info"], capture_output=True).returncode == 0:
            return
        time.sleep(0.5)
    log = subprocess.run(["docker", "exec", container, "tail", "-20", "/var/log/dockerd.log"],
                         capture_output=True, text=True)
    pytest.fail(f"the remote engine did not start; its dockerd log ends:\n{log.stdout}{log.stderr}")


@pytest.fixture(scope="session")
def remote_engine(images: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[RemoteEngine]:
    base = tmp_path_factory.mktemp("remote-engine")
    container = f"muxtest-engine-{uuid.uuid4().hex[:8]}"  # not mux-*: doctor would flag it
    _local("run", "-d", "--name", container, "--label", "mux.test.remote-engine=1",
           *ENGINE_FLAGS, "-p", "127.0.0.1::22", ENGINE_IMAGE)
    try:
        _wait_for_engine(container)
        port = _local("port", container, "22/tcp").stdout.split()[0].rsplit(":", 1)[1]
        key = base / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        _local("exec", "-i", container, "sh", "-c", "cat > /root/.ssh/authorized_keys",
               input=(base / "id_ed25519.pub").read_text())
        host_key = _local("exec", container, "cat", "/etc/ssh/ssh_host_ed25519_key.pub").stdout.split()[:2]
        (base / "known_hosts").write_text(f"[127.0.0.1]:{port} {' '.join(host_key)}\n")
        (base / "ssh_config").write_text(
            f"Host 127.0.0.1\n  IdentityFile {key}\n  IdentitiesOnly yes\n"
            f"  UserKnownHostsFile {base / 'known_hosts'}\n  StrictHostKeyChecking yes\n"
            "  BatchMode yes\n  ConnectTimeout 10\n")
        bindir = base / "bin"
        bindir.mkdir()
        wrapper = bindir / "ssh"
        wrapper.write_text(f'#!/bin/sh\nexec /usr/bin/ssh -F {base / "ssh_config"} "$@"\n')
        wrapper.chmod(0o755)
        env = {"PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}", "DOCKER_CONFIG": str(base / "docker")}
        host = f"ssh://root@127.0.0.1:{port}"
        subprocess.run(["docker", "context", "create", CONTEXT, "--docker", f"host={host}"],
                       capture_output=True, text=True, check=True, env={**os.environ, **env})
        save = subprocess.Popen(["docker", "save", BUSYBOX, DEBIAN], stdout=subprocess.PIPE)
        subprocess.run(["docker", "exec", "-i", container, "docker", "load", "-q"], stdin=save.stdout,
                       capture_output=True, check=True)
        save.wait()
        yield RemoteEngine(container=container, host=host, env=env)
    finally:
        subprocess.run(["docker", "rm", "-f", "-v", container], capture_output=True)


@pytest.fixture
def remote(remote_engine: RemoteEngine, monkeypatch: pytest.MonkeyPatch, own_instance: str) -> Iterator[RemoteEngine]:
    """The remote engine, with this test's environment able to reach it (context
    "box"); what the test left there (its MUX_INSTANCE label) is removed after it."""
    for key, value in remote_engine.env.items():
        monkeypatch.setenv(key, value)
    yield remote_engine
    label = f"label=mux.instance={own_instance}"
    for kind in ("container", "volume", "network"):  # networks last: containers use them
        ids = remote_engine.docker(kind, "ls", "-aq" if kind == "container" else "-q",
                                   "--filter", label, check=False).stdout.split()
        if ids:
            remote_engine.docker(kind, "rm", *(["-f"] if kind != "network" else []), *ids, check=False)


@pytest.fixture
def remote_home(mux_home: Path, remote: RemoteEngine) -> Path:
    """mux_home (own data dir and config), the Debian image, and the remote engine reachable."""
    (mux_home / "config.toml").write_text(f'[docker]\nimage = "{DEBIAN}"\npull = "never"\n')
    return mux_home


@pytest.fixture
def proxied_remote(remote_home: Path, remote: RemoteEngine, pki: Pki, gateway: str,  # noqa: F811
                   monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    port = free_port()
    Path(os.environ["MUX_CONFIG"]).write_text(
        '[docker]\nimage = "mux-test/debian"\npull = "never"\n'
        f"[proxy]\nport = {port}\ntimeout = 30\n"
        f'[proxy.filters]\nallowed_networks = ["{gateway}/32"]\n'
        f'[credentials.api]\ndomains = ["{gateway}"]\nauth_type = "bearer"\nvalue = "${{API_TOKEN}}"\n')
    monkeypatch.setenv("MUX_PROXY_UPSTREAM_CA", str(pki.ca))
    yield {"API_TOKEN": TOKEN}
    mux("--context", "box", "delete", "--all", "--force")
    mux("proxy", "stop")


def ca_key_line() -> str:
    """A line of the proxy CA's private key (in this test's data dir)."""
    pem = Path(os.environ["MUX_DATA_DIR"]) / "proxy" / "mitmproxy-ca.pem"
    return next(ln for ln in pem.read_text().splitlines() if ln and not ln.startswith("-----"))


def assert_nowhere_on(remote: RemoteEngine, *needles: str) -> None:
    """None of ``needles`` is anywhere on the remote machine's filesystem (its engine's
    data, containers and volumes included)."""
    for needle in needles:
        found = remote.inside("grep", "-rlsF", "--exclude-dir=proc", "--exclude-dir=sys", "--exclude-dir=dev", "-e",
                              needle, "/", check=False)
        assert found.stdout == "" and found.returncode in (1, 2), found.stdout  # 2: netns files cannot be read


# Whether a TCP connection opens, in either test image: busybox's nc (its -e runs a
# program once connected, here `true`) or bash's /dev/tcp in Debian (which has no nc).
# `timeout` makes a dropped connection a failure (status 124/143), never a hang.
PROBE = ('if command -v nc >/dev/null 2>&1; then exec timeout 5 nc "$0" "$1" -e true; '
         'else exec timeout 5 bash -c \'exec 3<>"/dev/tcp/$0/$1"\' "$0" "$1"; fi')


def connects(remote: RemoteEngine, prefix: list[str], host: str, port: int) -> bool:
    """Whether a TCP connection to ``host:port`` opens from a container on the remote
    engine (``prefix``: the docker exec/run arguments that get into it)."""
    return remote.docker(*prefix, "sh", "-c", PROBE, host, str(port), check=False).returncode == 0


def direct_targets(remote: RemoteEngine, own_instance: str, bridge_here: str,
                   api_url: str) -> dict[str, tuple[str, int]]:
    """What a proxy-only session on the remote engine must not reach directly, each
    checked to answer a plain container on that engine's bridge (so a refusal is the
    egress network's doing, not a dead target): a container there, the tunnel's end
    on the engine's bridge gateway, the remote machine's sshd, a service of this machine
    (the API on ``bridge_here``, its bridge gateway)."""
    listener = remote.docker("run", "-d", "--label", f"mux.instance={own_instance}", BUSYBOX,
                             "httpd", "-f", "-p", "8000", "-h", "/").stdout.strip()
    listener_ip = remote.docker("inspect", "--format", "{{.NetworkSettings.IPAddress}}", listener).stdout.strip()
    state = next((Path(os.environ["MUX_DATA_DIR"]) / "tunnels").glob("*.json"))
    bridge_gw, tunnel_port = json.loads(state.read_text())["forwards"][0].split(":")[:2]  # where it listens there
    remote_host = remote.inside("hostname", "-i").stdout.split()[0]  # the remote machine's own address
    api_port = int(api_url.rsplit(":", 1)[1].split("/")[0])
    targets = {
        "a container there": (listener_ip, 8000),
        "the tunnel's end on the engine's bridge gateway": (bridge_gw, int(tunnel_port)),
        "the remote machine's sshd": (remote_host, 22),
        "this machine's service": (bridge_here, api_port),
    }
    plain = ["run", "--rm", "--label", f"mux.instance={own_instance}", DEBIAN]
    for what, (host, port) in targets.items():
        assert connects(remote, plain, host, port), f"{what} ({host}:{port}) should answer a container on the bridge"
    return targets
