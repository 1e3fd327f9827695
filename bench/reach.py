"""Benchmark: what the remote tunnel's fail-closed checks (mux/egress/reach.py) cost `mux new`.

A second engine runs in a container here, reached over ssh (as in
tests/integration/remote). `mux --context box new --copy` of a proxied session is
timed with the checks and with them switched off (the same mux, the two check
functions replaced by no-ops in the child process), interleaved: warm (the tunnel
is up for another session, so only the probe from the session's network runs) and
cold (the first session: proxy, tunnel, forward and the listen check are made
too). Then each check alone: the listen check (`cat /proc/net/tcp` through the
tunnel's ssh master), the probe from inside a session (`docker exec`, what `mux
new` runs) and in a container of its own (a stopped session's revival), beside a
plain `docker run --rm IMAGE true` on that engine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # this checkout's mux, for its probe's argv

from _common import DEBIAN, MUX, Sandbox, docker, interleave, ratio, require_images, runs, summary, table  # noqa: E402

ENGINE_IMAGE = "mux-test/remote-engine"
ENGINE_FLAGS = ["--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE", "--security-opt", "seccomp=unconfined",
                "--security-opt", "apparmor=unconfined", "--security-opt", "systempaths=unconfined",
                "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--tmpfs", "/var/lib/docker:exec"]
UNCHECKED = ("import sys, mux.egress.reach, mux.session.volumes; mux.egress.reach.listening = lambda *a, **k: None; "
             "mux.session.volumes.reach_probe = lambda *a, **k: None; sys.argv[0] = 'mux'; "
             "from mux.cli import main; main()")


def start_engine(box: Sandbox) -> str:
    """The second engine, its ssh key, known_hosts and the docker context "box" in
    the sandbox (an ssh wrapper on PATH adds its config); returns the container."""
    name = f"muxbench-engine-{uuid.uuid4().hex[:8]}"
    docker("run", "-d", "--name", name, "--label", "mux.test.remote-engine=1", *ENGINE_FLAGS,
           "-p", "127.0.0.1::22", ENGINE_IMAGE)
    for _ in range(120):
        if docker("exec", name, "docker", "info", check=False).returncode == 0:
            break
        time.sleep(0.5)
    port = docker("port", name, "22/tcp").stdout.split()[0].rsplit(":", 1)[1]
    key = box.dir / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    subprocess.run(["docker", "exec", "-i", name, "sh", "-c", "cat > /root/.ssh/authorized_keys"],
                   input=(box.dir / "id_ed25519.pub").read_text(), text=True, check=True)
    host_key = docker("exec", name, "cat", "/etc/ssh/ssh_host_ed25519_key.pub").stdout.split()[:2]
    (box.dir / "known_hosts").write_text(f"[127.0.0.1]:{port} {' '.join(host_key)}\n")
    (box.dir / "ssh_config").write_text(
        f"Host 127.0.0.1\n  IdentityFile {key}\n  IdentitiesOnly yes\n  UserKnownHostsFile {box.dir / 'known_hosts'}\n"
        "  StrictHostKeyChecking yes\n  BatchMode yes\n  ConnectTimeout 10\n")
    bindir = box.dir / "bin"
    bindir.mkdir()
    (bindir / "ssh").write_text(f'#!/bin/sh\nexec /usr/bin/ssh -F {box.dir / "ssh_config"} "$@"\n')
    (bindir / "ssh").chmod(0o755)
    box.env.update(PATH=f"{bindir}{os.pathsep}{os.environ['PATH']}", DOCKER_CONFIG=str(box.dir / "docker"))
    box.run(["docker", "context", "create", "box", "--docker", f"host=ssh://root@127.0.0.1:{port}"])
    save = subprocess.Popen(["docker", "save", DEBIAN], stdout=subprocess.PIPE)
    subprocess.run(["docker", "exec", "-i", name, "docker", "load", "-q"], stdin=save.stdout,
                   capture_output=True, check=True)
    save.wait()
    return name


def main() -> str:
    require_images(DEBIAN, ENGINE_IMAGE)
    port = 47000 + os.getpid() % 1000
    box = Sandbox(f'[docker]\nimage = "{DEBIAN}"\npull = "never"\n[proxy]\nport = {port}\n')
    work = box.dir / "work"
    work.mkdir()
    (work / "README").write_text("bench\n")
    engine = start_engine(box)
    n = runs(5)
    counter = iter(range(10_000))

    def new(argv: list[str]) -> float:
        name = f"r{next(counter)}"
        start = time.perf_counter()
        box.run([*argv, "--context", "box", "new", "--copy", "--workdir", str(work), name])
        took = time.perf_counter() - start
        box.mux("--context", "box", "delete", "--force", name)
        return took

    checked, unchecked = list(MUX), [sys.executable, "-c", UNCHECKED]
    try:
        cold = interleave({"checked": lambda: new(checked), "unchecked": lambda: new(unchecked)}, n)
        box.mux("--context", "box", "new", "--copy", "--workdir", str(work), "anchor")  # keeps proxy and tunnel up
        warm = interleave({"checked": lambda: new(checked), "unchecked": lambda: new(unchecked)}, n)
        state = next((box.data / "tunnels").glob("*.json"))
        gateway = json.loads(state.read_text())["forwards"][0].split(":")[0]
        from mux.egress import reach

        sock = next(Path("/tmp", f"mux-{os.getuid()}").glob(f"{state.stem}.sock"))
        ssh_port = box.run(["docker", "port", engine, "22/tcp"]).stdout.split()[0].rsplit(":", 1)[1]
        listen = ["ssh", "-S", str(sock), "-o", "BatchMode=yes", "-l", "root", "-p", ssh_port, "--", "127.0.0.1",
                  "cat", "/proc/net/tcp"]
        probe = ["docker", "--context", "box", *reach.probe_argv(DEBIAN, None, ["host.docker.internal:host-gateway"],
                                                                  f"host.docker.internal:{port}", [])]
        inside = ["docker", "--context", "box", *reach.exec_argv("mux-anchor", f"host.docker.internal:{port}")]
        plain = ["docker", "--context", "box", "run", "--rm", DEBIAN, "true"]
        pieces = interleave({"listen": lambda: box.timed(listen), "inside": lambda: box.timed(inside),
                             "probe": lambda: box.timed(probe), "plain": lambda: box.timed(plain)}, n)
        assert reach.reachable(reach.parse_listening(box.run(listen).stdout, port) or set(), gateway)
    finally:
        box.mux("--context", "box", "delete", "--all", "--force", check=False)
        box.mux("proxy", "stop", check=False)
        docker("rm", "-f", "-v", engine, check=False)
        box.close()
    rows = [
        ["`mux new`, tunnel up (second session)", summary(warm["checked"]), summary(warm["unchecked"]),
         ratio(warm["checked"], warm["unchecked"])],
        ["`mux new`, first session (proxy, tunnel, forward)", summary(cold["checked"]), summary(cold["unchecked"]),
         ratio(cold["checked"], cold["unchecked"])],
    ]
    alone = [["listen check (`cat /proc/net/tcp` through the ssh master)", summary(pieces["listen"])],
             ["probe inside the session (`docker exec`, one HTTP request: what `mux new` runs)",
              summary(pieces["inside"])],
             ["probe container (`docker run --rm`: a revived tunnel of a stopped session)", summary(pieces["probe"])],
             ["plain `docker --context box run --rm IMAGE true`", summary(pieces["plain"])]]
    return ("### reach: the remote tunnel's checks in `mux new` (second engine over ssh)\n\n"
            f"{n} runs each, interleaved.\n\n"
            + table(["case", "with the checks", "without", "ratio"], rows) + "\n\n"
            + table(["each check alone", "time"], alone))


if __name__ == "__main__":
    print(main())
