"""DNS from a proxy-only session answers nothing outside (issue 23, item 9).

Docker before the fix for CVE-2024-29018 (this suite's engines run 20.10) forwards
a query its embedded resolver cannot answer to the host's resolvers, from
`--internal` networks too. This machine's own resolver must get no test traffic,
so the test uses the second engine, whose resolver it controls: a tiny responder
(dns_responder.py) runs in that engine's network namespace and is the only
nameserver in its /etc/resolv.conf; it knows one test name and logs every query.

Controls, so the test can fail: a container on a plain `--internal` network there
resolves the name through docker's forwarding, and so does an `open` session. A
proxy-only session does not, the responder logs nothing from it, and the relay's
alias still resolves there.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from mux.egress import relay as egress
from tests.conftest import BUSYBOX, mux
from tests.integration.remote.conftest import RemoteEngine

pytestmark = pytest.mark.docker
RESPONDER = Path(__file__).with_name("dns_responder.py")
ANSWER = "203.0.113.77"  # TEST-NET-3: only ever an answer, never contacted


class Resolver(NamedTuple):
    name: str
    log: Path

    def queries(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


@pytest.fixture
def test_resolver(remote: RemoteEngine, tmp_path: Path) -> Iterator[Resolver]:
    pid = subprocess.run(["docker", "inspect", "--format", "{{.State.Pid}}", remote.container],
                         capture_output=True, text=True, check=True).stdout.strip()
    address = remote.inside("hostname", "-i").stdout.split()[0]  # the engine's own address, not loopback
    name = f"canary-{uuid.uuid4().hex[:8]}.mux.test"
    log = tmp_path / "queries.log"
    proc = subprocess.Popen(["nsenter", "-t", pid, "-n", sys.executable, str(RESPONDER), address, str(log),
                             f"{name}={ANSWER}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    saved = remote.inside("cat", "/etc/resolv.conf").stdout
    try:
        assert proc.stdout.readline() == "ready\n", proc.stderr.read()  # type: ignore[union-attr]
        subprocess.run(["docker", "exec", "-i", remote.container, "sh", "-c", "cat > /etc/resolv.conf"],
                       input=f"nameserver {address}\n", text=True, check=True)
        yield Resolver(name, log)
    finally:
        subprocess.run(["docker", "exec", "-i", remote.container, "sh", "-c", "cat > /etc/resolv.conf"],
                       input=saved, text=True, check=False)
        proc.kill()
        proc.wait()


def resolves(remote: RemoteEngine, prefix: list[str], name: str) -> str:
    """What `getent hosts NAME` prints in a container on the remote engine ('' if nothing)."""
    found = remote.docker(*prefix, "getent", "hosts", name, check=False, timeout=120)
    return found.stdout.strip()


def test_proxy_only_dns_reaches_no_resolver(proxied_remote, remote: RemoteEngine, test_resolver: Resolver,
                                            unique_name: str, own_instance: str, tmp_path: Path) -> None:
    name = test_resolver.name
    label = ["--label", f"mux.instance={own_instance}"]
    # Control: a plain --internal network there, as docker 20.10 treats it: forwarded.
    internal = f"mux-{unique_name}-internal"
    remote.docker("network", "create", "--internal", *label, internal)
    leaked = remote.docker("run", "--rm", *label, "--network", internal, BUSYBOX, "nslookup", name, check=False)
    internal_leaks = ANSWER in leaked.stdout
    version = remote.docker("version", "--format", "{{.Server.Version}}").stdout.strip()
    if int(version.split(".")[0]) < 23:  # forwards from the container's namespace, past --internal
        assert internal_leaks, (version, leaked.stdout, leaked.stderr)
    # (An engine with the CVE fix answers nothing there; the open session below still resolves.)

    proj = tmp_path / "proj"
    proj.mkdir()
    opened = mux("--context", "box", "new", "--copy", "--workdir", str(proj), "--egress", "open",
                 f"{unique_name}-open", env=proxied_remote)
    assert opened.returncode == 0, opened.stderr
    assert resolves(remote, ["exec", f"mux-{unique_name}-open"], name).split()[:1] == [ANSWER]
    before = test_resolver.queries()
    assert len(before) >= 1 + internal_leaks, before  # the responder saw the controls' queries

    made = mux("-v", "--context", "box", "new", "--copy", "--workdir", str(proj), "--egress", "proxy-only",
               unique_name, env=proxied_remote)
    assert made.returncode == 0, made.stderr
    runs = [ln for ln in made.stderr.splitlines() if f" --name mux-{unique_name} " in ln]  # create, on a remote
    assert len(runs) == 1 and f" --dns {egress.NO_DNS} " in runs[0], made.stderr
    session = f"mux-{unique_name}"
    ip = remote.docker("inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                       session).stdout.strip()
    assert resolves(remote, ["exec", session], name) == ""
    assert resolves(remote, ["exec", session], f"{name}.") == ""
    # Nothing reached the resolver while the session asked (from its address or any other).
    assert test_resolver.queries() == before
    assert not any(q.startswith(ip + " ") for q in test_resolver.queries())
    # The relay's alias is docker's own answer, and still resolves.
    relay = remote.docker("exec", session, "sh", "-c", "echo $HTTPS_PROXY").stdout.strip()
    host = relay.split("@")[-1].rsplit(":", 1)[0]
    assert host.startswith("mux-proxy-"), relay
    assert resolves(remote, ["exec", session], host) != ""
    hostconfig = json.loads(remote.docker("inspect", "--format", "{{json .HostConfig.Dns}}", session).stdout)
    assert hostconfig == [egress.NO_DNS]
