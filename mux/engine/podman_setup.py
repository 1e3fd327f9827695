"""`mux doctor` on podman: what a rootless podman needs from this machine, each gap with its fix.

Measured on Debian 12 (podman 4.3.1): subuid/subgid ranges (useradd makes them, older
accounts may lack them), ``XDG_RUNTIME_DIR`` (no logind session, no /run/user/UID),
``/dev/net/tun`` usable by the user (slirp4netns opens it at every container start;
Debian makes it 0666, some machines 0600), catatonit for ``--init`` (docker.io's tini
satisfies podman's Recommends, so apt skips it), the storage driver (vfs unless
fuse-overlayfs and /dev/fuse, or a kernel with rootless overlay, are there), and the
cgroup version (v1: ``--memory``/``--cpus`` are ignored rootless).
"""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from mux.engine import clis as engine_cli
from mux.engine.argv import EngineArgv

if TYPE_CHECKING:
    from mux.config import Config
    from mux.doctor import Check
    from mux.engine.runner import Runner

WANT_IDS = 65536  # what most images need: ids up to 65534 (nobody) mapped
INIT_PATHS = ("/usr/libexec/podman/catatonit", "/usr/lib/podman/catatonit", "/usr/bin/catatonit")
INSTALL = "Debian/Ubuntu: `sudo apt-get install {pkg}`; Fedora: `sudo dnf install {pkg}`"


def _check(name: str, ok: bool, detail: str, fix: str = "") -> Check:
    from mux.doctor import Check

    return Check(name, ok, detail, fix)


def _user() -> tuple[int, str]:
    uid = os.getuid()
    try:
        return uid, pwd.getpwuid(uid).pw_name
    except KeyError:
        return uid, str(uid)


def subids(path: str, uid: int, name: str) -> int:
    """How many subordinate ids ``path`` (/etc/subuid or /etc/subgid) gives the user."""
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return 0
    total = 0
    for line in lines:
        owner, _, rest = line.strip().partition(":")
        start, _, count = rest.partition(":")
        if owner in (name, str(uid)) and start.isdigit() and count.isdigit():
            total += int(count)
    return total


def check_subids(uid: int, name: str, subuid: str = "/etc/subuid", subgid: str = "/etc/subgid") -> Check:
    counts = {p: subids(p, uid, name) for p in (subuid, subgid)}
    short = [p for p, n in counts.items() if n < WANT_IDS]
    if short:
        return _check("subids", False,
                      f"{name} has {', '.join(f'{counts[p]} ids in {p}' for p in short)} (rootless podman needs "
                      f"{WANT_IDS})",
                      f"`sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {name}` (a range no "
                      "other user has), then `podman system migrate`")
    return _check("subids", True, f"{name}: {counts[subuid]} subuids, {counts[subgid]} subgids")


def check_runtime_dir(env: dict[str, str] | os._Environ[str], uid: int) -> Check:
    value = env.get("XDG_RUNTIME_DIR")
    fix = ("log in through a session manager (systemd-logind makes /run/user/UID), or make one: "
           "`export XDG_RUNTIME_DIR=$(mktemp -d)` (mode 700, yours)")
    if not value:
        return _check("runtime dir", False, "XDG_RUNTIME_DIR is not set: podman keeps its state in /tmp "
                      "and warns on every command", fix)
    try:
        st = os.stat(value)
    except OSError:
        return _check("runtime dir", False, f"XDG_RUNTIME_DIR={value} does not exist", fix)
    if st.st_uid != uid or stat.S_IMODE(st.st_mode) & 0o077 or not stat.S_ISDIR(st.st_mode):
        return _check("runtime dir", False, f"XDG_RUNTIME_DIR={value} is not a directory of yours with mode 700",
                      fix)
    return _check("runtime dir", True, f"XDG_RUNTIME_DIR={value}")


def check_tun(path: str = "/dev/net/tun") -> Check:
    if not os.path.exists(path):
        return _check("tun", False, f"{path} does not exist: slirp4netns cannot give containers a network",
                      "`sudo modprobe tun`")
    if not os.access(path, os.R_OK | os.W_OK):
        return _check("tun", False, f"no rw access to {path}: slirp4netns (rootless networking) fails at "
                      "every container start",
                      f"`sudo chmod 666 {path}` (Debian's own mode), or for you alone `sudo setfacl -m "
                      f"u:$USER:rw {path}`")
    return _check("tun", True, f"{path} is usable (slirp4netns)")


def check_init(paths: tuple[str, ...] = INIT_PATHS) -> Check:
    found = next((p for p in paths if os.access(p, os.X_OK)), None)
    if found is None:
        return _check("init", False, "catatonit is not installed: sessions run with --init, which podman "
                      "does with catatonit", INSTALL.format(pkg="catatonit"))
    return _check("init", True, f"catatonit ({found}) for --init")


def check_storage(runner: Runner) -> Check:
    out = runner.query(EngineArgv(["info", "--format", "{{.Store.GraphDriverName}}"]), check=False)
    driver = out.stdout.strip()
    if out.returncode != 0 or not driver:
        return _check("storage", False, "podman info does not answer", "`podman info` shows why")
    if driver == "vfs":
        return _check("storage", True, "vfs: works, but every container copies its whole image (slow, large); "
                      "overlay needs fuse-overlayfs and rw /dev/fuse, then `driver = \"overlay\"` in "
                      "~/.config/containers/storage.conf and `podman system reset`")
    return _check("storage", True, f"{driver}")


def check_cgroups(cfg: Config | None, is_rootless: bool) -> Check:
    if engine_cli.cgroup_v2():
        return _check("cgroups", True, "cgroup v2: --memory and --cpus apply")
    if not is_rootless:
        return _check("cgroups", True, "cgroup v1, rootful: --memory and --cpus apply")
    limits = cfg is not None and bool(cfg.docker.limits.memory or cfg.docker.limits.cpus)
    detail = "cgroup v1: podman ignores --memory and --cpus for a rootless user (mux drops them and says so)"
    fix = "boot with cgroup v2 (`systemd.unified_cgroup_hierarchy=1` on the kernel command line)"
    return _check("cgroups", not limits, detail + ("; [docker.limits] sets them" if limits else ""), fix)


CAP_SYS_RESOURCE = 24


def has_sys_resource(status: str = "/proc/self/status") -> bool:
    try:
        text = Path(status).read_text()
    except OSError:
        return True  # not Linux as we know it: say nothing
    for line in text.splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> CAP_SYS_RESOURCE & 1)
    return True


def ulimits_configured(env: dict[str, str] | os._Environ[str]) -> str | None:
    """The containers.conf that sets default_ulimits for nofile and nproc, if one does."""
    import glob
    import re

    paths = [env["CONTAINERS_CONF"]] if env.get("CONTAINERS_CONF") else [
        "/etc/containers/containers.conf", *sorted(glob.glob("/etc/containers/containers.conf.d/*.conf"))]
    for path in paths:
        try:
            text = Path(path).read_text(errors="replace")
        except OSError:
            continue
        line = re.search(r"^[ \t]*default_ulimits[ \t]*=[^\n]*", text, re.M)
        if line and "nofile" in line[0] and "nproc" in line[0]:
            return path
    return None


def check_ulimits(status: str = "/proc/self/status", env: dict[str, str] | None = None) -> Check:
    """Rootful podman sets the containers' ulimits to its own raised ones, which needs
    CAP_SYS_RESOURCE (measured: without it every start fails "error setting rlimit")."""
    if has_sys_resource(status):
        return _check("ulimits", True, "rootful: podman can set the containers' ulimits")
    configured = ulimits_configured(os.environ if env is None else env)
    if configured:
        return _check("ulimits", True, f"rootful without CAP_SYS_RESOURCE: default_ulimits set in {configured}")
    return _check("ulimits", False, "rootful podman without CAP_SYS_RESOURCE: containers fail to start "
                  "(\"error setting rlimit\") unless their ulimits are set explicitly", engine_cli.RLIMIT_HINT)


def checks(runner: Runner, cfg: Config | None) -> list[Check]:
    """The set-up checks of this machine's podman (rootless: all of them)."""
    is_rootless = engine_cli.rootless()
    found = [check_init()] if is_rootless else [check_init(), check_ulimits()]
    if is_rootless:
        uid, name = _user()
        found = [check_subids(uid, name), check_runtime_dir(os.environ, uid), check_tun(), *found]
    return [*found, check_storage(runner), check_cgroups(cfg, is_rootless)]
