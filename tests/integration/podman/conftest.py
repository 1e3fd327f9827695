"""Rootless Podman, for real: Debian's podman run by an unprivileged test user.

Set up once per test run, as root, the way tests/integration/rootless does for rootless
Docker: a dedicated user (``mux-podman``, made if missing, with /etc/subuid and /etc/subgid
ranges), rw on /dev/net/tun for that user (slirp4netns opens it at every container start;
this machine's node is mode 600), and HOME and XDG_RUNTIME_DIR in a temp dir, so the
user's podman store (vfs: /dev/fuse is 600 too) is the tests' own. mux-test/busybox is
imported into it from the main engine (only read: ``docker save``). Teardown: ``podman
system reset`` of that store, then whatever processes the user still has (its podman
pause process, conmon), the temp dir, and the user's entry in /dev/net/tun's ACL.

Tests run mux as that user (``PodmanUser.mux``) with MUX_DOCKER_CLI=podman.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import struct
import subprocess
import sys
import tarfile
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import BUSYBOX, DEBIAN, ROOT
from tests.integration.rootless.conftest import _ensure_subids

USER = "mux-podman"
TUN = "/dev/net/tun"
ACL = "system.posix_acl_access"
SBIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
ACL_USER, ACL_MASK = 0x02, 0x10


@dataclass(frozen=True)
class PodmanUser:
    uid: int
    gid: int
    base: Path  # scratch area for the tests' files (owned by the user)
    env: dict[str, str]  # HOME, PATH, XDG_RUNTIME_DIR, PYTHONPATH, MUX_DOCKER_CLI (and per test MUX_*)

    def run(self, *argv: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            input: str | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(argv), env={**self.env, **(env or {})}, cwd=cwd or self.base,
                              capture_output=True, text=True, input=input, timeout=timeout,
                              user=self.uid, group=self.gid, extra_groups=[])

    def podman(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run("podman", *args)

    def mux(self, *args: str, env: dict[str, str] | None = None,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return self.run(sys.executable, "-m", "mux", *args, env=env, cwd=cwd)


def _missing() -> str:
    if os.geteuid() != 0:
        return "needs root (to make the test user and grant it /dev/net/tun)"
    tools = [t for t in ("podman", "slirp4netns", "newuidmap", "newgidmap", "catatonit")
             if not shutil.which(t, path=SBIN_PATH)]
    if tools:
        return (f"missing {', '.join(tools)} (`make install` as root installs podman catatonit slirp4netns "
                "uidmap)")
    return ""


def _ensure_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
                        "--user-group", USER], check=True, capture_output=True, env={"PATH": SBIN_PATH})
        return pwd.getpwnam(USER)


def _acl_entries() -> list[tuple[int, int, int]]:
    try:
        raw = os.getxattr(TUN, ACL)
    except OSError:
        mode = os.stat(TUN).st_mode
        return [(0x01, (mode >> 6) & 7, 0xFFFFFFFF), (0x04, (mode >> 3) & 7, 0xFFFFFFFF),
                (0x20, mode & 7, 0xFFFFFFFF)]
    return list(struct.iter_unpack("<HHI", raw[4:]))


def _write_acl(entries: list[tuple[int, int, int]]) -> None:
    has_users = any(tag == ACL_USER for tag, _, _ in entries)
    entries = [e for e in entries if e[0] != ACL_MASK]
    if has_users:
        entries.append((ACL_MASK, 6, 0xFFFFFFFF))
    entries.sort(key=lambda e: (e[0], e[2]))
    os.setxattr(TUN, ACL, struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries))


def grant_tun(uid: int) -> None:
    """rw on /dev/net/tun for ``uid``, added to what the ACL already grants (the rootless
    Docker fixture of a parallel run may hold an entry of its own, and rewrite the ACL)."""
    if os.stat(TUN).st_mode & 0o006 == 0o006:
        return
    entries = _acl_entries()
    if (ACL_USER, 6, uid) not in entries:
        _write_acl([*entries, (ACL_USER, 6, uid)])


def revoke_tun(uid: int) -> None:
    try:
        os.getxattr(TUN, ACL)
    except OSError:
        return
    entries = [e for e in _acl_entries() if not (e[0] == ACL_USER and e[2] == uid)]
    if any(tag == ACL_USER for tag, _, _ in entries):
        _write_acl(entries)
    else:
        os.removexattr(TUN, ACL)


def import_image(who: PodmanUser, image: str, cmd: str) -> None:
    """``image`` from the main engine into the user's podman store, its root directory made
    755: the test images are built from a mode-700 `mktemp -d`, which docker's overlay2
    ignores but podman keeps, so a keep-id session (not root in the container) could not
    even reach /bin/sh. Streamed through temp files: the Debian image is 440 MB."""
    with tempfile.TemporaryDirectory() as tmp:
        saved = Path(tmp) / "image.tar"
        with saved.open("wb") as out:
            subprocess.run(["docker", "save", image], stdout=out, check=True, timeout=300)
        fixed = Path(tmp) / "layer.tar"
        with tarfile.open(saved) as whole:
            layers = [m for m in whole.getmembers() if m.name.endswith("/layer.tar")]
            assert len(layers) == 1, [m.name for m in layers]
            layer = whole.extractfile(layers[0])
            assert layer is not None
            with tarfile.open(fileobj=layer, mode="r|") as src, tarfile.open(fixed, "w") as dst:
                for member in src:
                    if member.name in (".", "./"):
                        member.mode = 0o755
                    dst.addfile(member, src.extractfile(member) if member.isfile() else None)
        with fixed.open("rb") as layer_in:
            loaded = subprocess.run(["podman", "import", "-q", "--change", f"CMD {cmd}", "-", image],
                                    stdin=layer_in, env=who.env, cwd=who.base, capture_output=True,
                                    user=who.uid, group=who.gid, extra_groups=[], timeout=600)
        assert loaded.returncode == 0, loaded.stderr


def _kill_user_processes(uid: int) -> None:
    """What the user still runs after the reset (podman's pause process, a conmon): this
    user is the tests' own, so every process of its uid was started here."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid == uid:
                os.kill(int(entry.name), signal.SIGKILL)
        except (OSError, ProcessLookupError):
            pass


@pytest.fixture(scope="session")
def podman_user(images: dict[str, str], traversable_python: None) -> Iterator[PodmanUser]:
    why = _missing()
    if why:
        if os.environ.get("MUX_REQUIRE_DOCKER") == "1":
            pytest.fail(f"rootless podman cannot run: {why}")
        pytest.skip(f"rootless podman cannot run: {why}")
    user = _ensure_user()
    _ensure_subids(Path("/etc/subuid"), user)
    _ensure_subids(Path("/etc/subgid"), user)
    uid, gid = user.pw_uid, user.pw_gid
    base = Path(tempfile.mkdtemp(prefix="mux-podman-"))
    for sub in ("run", "home", "tests"):
        (base / sub).mkdir(mode=0o700 if sub == "run" else 0o755)
    for path in (base, base / "run", base / "home", base / "tests"):
        os.chown(path, uid, gid)
    base.chmod(0o755)
    env = {"HOME": str(base / "home"), "PATH": SBIN_PATH, "XDG_RUNTIME_DIR": str(base / "run"),
           "PYTHONPATH": str(ROOT), "LANG": "C.UTF-8", "MUX_DOCKER_CLI": "podman"}
    grant_tun(uid)
    who = PodmanUser(uid, gid, base / "tests", env)
    try:
        import_image(who, BUSYBOX, '["/bin/sh"]')
        yield who
    finally:
        subprocess.run(["podman", "system", "reset", "-f"], env=env, cwd=base, capture_output=True,
                       user=uid, group=gid, extra_groups=[], timeout=300)
        _kill_user_processes(uid)
        shutil.rmtree(base, ignore_errors=True)
        revoke_tun(uid)


@pytest.fixture(scope="session")
def podman_debian(podman_user: PodmanUser) -> str:
    """mux-test/debian (curl, git) in the user's store too, for the tests that need it."""
    import_image(podman_user, DEBIAN, '["/bin/bash"]')
    return DEBIAN


@pytest.fixture
def podman(podman_user: PodmanUser, tmp_path: Path) -> Iterator[PodmanUser]:
    """The user, with this test's own scratch dir, data dir, config and MUX_INSTANCE; the
    containers, volumes and networks carrying that instance's label are removed after it."""
    grant_tun(podman_user.uid)  # again: a parallel rootless-Docker run may have rewritten the ACL
    scratch = podman_user.base / tmp_path.name
    scratch.mkdir()
    for sub in ("data", "work"):
        (scratch / sub).mkdir()
    for path in (scratch, scratch / "data", scratch / "work"):
        os.chown(path, podman_user.uid, podman_user.gid)
    instance = f"test-pm-{uuid.uuid4().hex[:8]}"
    config = scratch / "config.toml"
    config.write_text(f'[docker]\nimage = "{BUSYBOX}"\npull = "never"\n'
                      '[git]\nuser_name = "Podman Agent"\nuser_email = "pm@example.com"\n')
    env = {**podman_user.env, "MUX_DATA_DIR": str(scratch / "data"), "MUX_CONFIG": str(config),
           "MUX_INSTANCE": instance}
    who = PodmanUser(podman_user.uid, podman_user.gid, scratch, env)
    yield who
    who.mux("proxy", "stop")
    label = f"label=mux.instance={instance}"
    ids = who.podman("ps", "-aq", "--filter", label).stdout.split()
    if ids:
        who.podman("rm", "-f", *ids)
    for kind in ("volume", "network"):
        names = who.podman(kind, "ls", "-q", "--filter", label).stdout.split()
        if names:
            who.podman(kind, "rm", "-f", *names)
    shutil.rmtree(scratch, ignore_errors=True)
