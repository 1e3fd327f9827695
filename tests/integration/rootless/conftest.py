"""Rootless Docker, for real: a second dockerd run by an unprivileged user here.

Started once per test run, as root: a dedicated user (``mux-rootless``, made if
missing, with /etc/subuid and /etc/subgid ranges), access to /dev/net/tun for
that user only (a POSIX ACL; this machine's node is mode 600, a stock Debian's
is 666), and Debian's ``dockerd-rootless.sh`` with slirp4netns and the host's
loopback reachable from containers at 10.0.2.2 (``--disable-host-loopback=false``).
The engine has its own socket, data dir and XDG_RUNTIME_DIR under one temp dir;
the main engine is only read (``docker save`` of the test images). Teardown
removes the engine's containers, stops the daemon, kills whatever is left in
its user namespace (its dockerd, containerd, shims and containers, and nothing
else), removes the temp dir and takes the ACL back.

Tests run mux as that user (``RootlessEngine.mux``) with DOCKER_HOST at the socket.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import BUSYBOX, DEBIAN, ROOT

USER = "mux-rootless"
SCRIPT = "/usr/share/docker.io/contrib/dockerd-rootless.sh"  # Debian's docker.io ships it
TUN = "/dev/net/tun"
ACL = "system.posix_acl_access"
SBIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# What the containers see this machine's loopback as (slirp4netns, host loopback allowed).
HOST_LOOPBACK = "10.0.2.2"


@dataclass(frozen=True)
class RootlessEngine:
    uid: int
    gid: int
    host: str  # DOCKER_HOST: unix://.../docker.sock
    base: Path  # world-reachable scratch area for the tests' files (owned by the user)
    env: dict[str, str]  # what the user's processes get: HOME, PATH, DOCKER_HOST, PYTHONPATH

    def run(self, *argv: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            input: str | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        """A command run as the user, against this engine."""
        return subprocess.run(list(argv), env={**self.env, **(env or {})}, cwd=cwd or self.base,
                              capture_output=True, text=True, input=input, timeout=timeout,
                              user=self.uid, group=self.gid, extra_groups=[])

    def docker(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run("docker", *args)

    def mux(self, *args: str, env: dict[str, str] | None = None,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return self.run(sys.executable, "-m", "mux", *args, env=env, cwd=cwd)


def _missing() -> str:
    if os.geteuid() != 0:
        return "needs root (to make the test user and grant it /dev/net/tun)"
    tools = [t for t in ("rootlesskit", "slirp4netns", "newuidmap", "newgidmap") if not shutil.which(t, path=SBIN_PATH)]
    if not os.path.exists(SCRIPT):
        tools.append(SCRIPT)
    if tools:
        return f"missing {', '.join(tools)} (`make install` as root installs rootlesskit slirp4netns uidmap)"
    return ""


def _ensure_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
                        "--user-group", USER], check=True, capture_output=True, env={"PATH": SBIN_PATH})
        return pwd.getpwnam(USER)


def _ensure_subids(path: Path, user: pwd.struct_passwd) -> None:
    """A range of 65536 ids for the user (useradd usually made one), after every other range."""
    lines = path.read_text().splitlines() if path.exists() else []
    ends = [100000]
    for line in lines:
        owner, _, rest = line.partition(":")
        if owner in (user.pw_name, str(user.pw_uid)):
            return
        start, _, count = rest.partition(":")
        if start.isdigit() and count.isdigit():
            ends.append(int(start) + int(count))
    with path.open("a") as f:
        f.write(f"{user.pw_name}:{max(ends)}:65536\n")


def _grant_tun(uid: int) -> tuple[int, bytes | None] | None:
    """rw on /dev/net/tun for ``uid`` only; what to restore (None: nothing changed here,
    or another run of this fixture granted it and restores it: the daemon needs the
    device only to start)."""
    mode = os.stat(TUN).st_mode
    if mode & 0o006 == 0o006:
        return None
    try:
        before: bytes | None = os.getxattr(TUN, ACL)
    except OSError:
        before = None
    entries = [(0x01, 6, 0xFFFFFFFF), (0x02, 6, uid), (0x04, (mode >> 3) & 7, 0xFFFFFFFF),
               (0x10, 6, 0xFFFFFFFF), (0x20, mode & 7, 0xFFFFFFFF)]  # user, user:uid, group, mask, other
    if before and (0x02, 6, uid) in struct.iter_unpack("<HHI", before[4:]):
        return None
    os.setxattr(TUN, ACL, struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries))
    return mode, before


def _restore_tun(saved: tuple[int, bytes | None] | None) -> None:
    if saved is None:
        return
    mode, before = saved
    if before is None:
        os.removexattr(TUN, ACL)
    else:
        os.setxattr(TUN, ACL, before)
    os.chmod(TUN, mode & 0o7777)


def _userns(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/user")
    except OSError:
        return None


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _in_userns(ns: str) -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _userns(int(p.name)) == ns]


def _stop(daemon: subprocess.Popen[bytes], engine: RootlessEngine | None) -> None:
    ns = next((n for n in map(_userns, _children(daemon.pid)) if n and n != _userns(os.getpid())), None)
    if engine is not None and daemon.poll() is None:
        ids = engine.docker("ps", "-aq").stdout.split()
        if ids:
            engine.docker("rm", "-f", *ids)
    if daemon.poll() is None:
        daemon.send_signal(signal.SIGTERM)  # rootlesskit passes it on; dockerd stops containerd
        try:
            daemon.wait(timeout=20)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
    for pid in _in_userns(ns) if ns else []:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture(scope="session")
def rootless_engine(images: dict[str, str], traversable_python: None) -> Iterator[RootlessEngine]:
    why = _missing()
    if why:
        if os.environ.get("MUX_REQUIRE_DOCKER") == "1":
            pytest.fail(f"rootless Docker cannot run: {why}")
        pytest.skip(f"rootless Docker cannot run: {why}")
    user = _ensure_user()
    _ensure_subids(Path("/etc/subuid"), user)
    _ensure_subids(Path("/etc/subgid"), user)
    uid, gid = user.pw_uid, user.pw_gid
    base = Path(tempfile.mkdtemp(prefix="mux-rootless-"))
    for sub in ("run", "home", "tests"):
        (base / sub).mkdir(mode=0o700 if sub == "run" else 0o755)
    for path in (base, base / "run", base / "home", base / "tests"):
        os.chown(path, uid, gid)
    base.chmod(0o755)
    run = base / "run"
    env = {"HOME": str(base / "home"), "PATH": SBIN_PATH, "XDG_RUNTIME_DIR": str(run),
           "DOCKER_HOST": f"unix://{run}/docker.sock", "PYTHONPATH": str(ROOT), "LANG": "C.UTF-8"}
    tun = _grant_tun(uid)
    daemon = None
    engine = None
    log = (base / "dockerd.log").open("wb")
    try:
        # Debian's script (20.10) always passes --disable-host-loopback; rootlesskit takes
        # the last value of a flag, so ours wins. Newer scripts read the second variable.
        daemon = subprocess.Popen(
            [SCRIPT, "--data-root", str(run / "data")], stdout=log, stderr=subprocess.STDOUT, cwd=base,
            env={**env, "DOCKERD_ROOTLESS_ROOTLESSKIT_FLAGS": "--disable-host-loopback=false",
                 "DOCKERD_ROOTLESS_ROOTLESSKIT_DISABLE_HOST_LOOPBACK": "false"},
            user=uid, group=gid, extra_groups=[], start_new_session=True)
        engine = RootlessEngine(uid, gid, env["DOCKER_HOST"], base / "tests", env)
        for _ in range(120):
            if daemon.poll() is not None or engine.docker("info").returncode == 0:
                break
            time.sleep(0.25)
        if engine.docker("info").returncode != 0:
            tail = (base / "dockerd.log").read_text(errors="replace").splitlines()[-15:]
            pytest.fail("rootless dockerd did not start; its log ends:\n" + "\n".join(tail))
        save = subprocess.Popen(["docker", "save", BUSYBOX, DEBIAN], stdout=subprocess.PIPE)
        loaded = subprocess.run(["docker", "load", "-q"], stdin=save.stdout, env=env, capture_output=True,
                                text=True, user=uid, group=gid, extra_groups=[], timeout=300)
        save.wait()
        assert loaded.returncode == 0 and save.returncode == 0, loaded.stderr
        yield engine
    finally:
        if daemon is not None:
            _stop(daemon, engine)
        log.close()
        shutil.rmtree(base, ignore_errors=True)
        _restore_tun(tun)


@pytest.fixture
def rootless(rootless_engine: RootlessEngine, tmp_path: Path) -> Iterator[RootlessEngine]:
    """The engine, with this test's own scratch dir, data dir and MUX_INSTANCE; what
    the test left there (containers, networks) is removed after it."""
    import uuid

    scratch = rootless_engine.base / tmp_path.name
    scratch.mkdir()
    for sub in ("data", "work"):
        (scratch / sub).mkdir()
    for path in (scratch, scratch / "data", scratch / "work"):
        os.chown(path, rootless_engine.uid, rootless_engine.gid)
    instance = f"test-rl-{uuid.uuid4().hex[:8]}"
    env = {**rootless_engine.env, "MUX_DATA_DIR": str(scratch / "data"), "MUX_CONFIG": str(scratch / "config.toml"),
           "MUX_INSTANCE": instance}
    engine = RootlessEngine(rootless_engine.uid, rootless_engine.gid, rootless_engine.host, scratch, env)
    yield engine
    engine.mux("proxy", "stop")
    label = f"label=mux.instance={instance}"
    for kind in ("container", "network"):
        ids = engine.docker(kind, "ls", "-aq" if kind == "container" else "-q", "--filter", label).stdout.split()
        if ids:
            engine.docker(kind, "rm", *(["-f"] if kind == "container" else []), *ids)
    shutil.rmtree(scratch, ignore_errors=True)
