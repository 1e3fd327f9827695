"""What a session's container is made of: a frozen value, built before any I/O."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from pathlib import Path

from mux.names import container_name


class Limits(NamedTuple):
    memory: str | None = None
    cpus: str | None = None
    memory_swap: str | None = None
    pids: int | None = None  # docker --pids-limit; None: no limit (config: 0)


class VolumeFill(NamedTuple):
    """A named volume a session on a remote engine mounts, made before it from host
    files (mux/session/volumes.py), since no host path can be mounted there."""

    name: str
    labels: tuple[tuple[str, str], ...]
    files: tuple[tuple[Path, str], ...] = ()  # (host file or directory, its path inside the volume)
    shared: bool = True  # made once and kept for every session (a cache, a program); else the session's


class Far(NamedTuple):
    """What a mount of this machine's files becomes on an engine that cannot see them
    (mux/session/mounts.py decides, once): a named volume filled from the files first,
    or a copy into the container once it is created."""

    volume: str  # "program": the file in a volume named by its digest; "shared": a volume the
    # instance's sessions share (a cache); "own": a volume of the session's; "copy": no volume
    what: str = ""  # the volume's name part (own, shared), or the program's file name in it
    label: str = ""  # shared: what it holds (mux.volume's value); default ``what``
    files: tuple[tuple[Path, str], ...] = ()  # own: (host file, its path inside the volume)
    at: str | None = None  # where the volume is mounted; None: the mount's target
    link: str | None = None  # a symlink at the mount's target to this path, instead of a mount there


class Mount(NamedTuple):
    """One `-v` of a session: a host path (a bind) or a named volume, at ``target``."""

    source: str  # an absolute host path, or a volume's name
    target: str  # the path inside the container
    read_only: bool = False
    mode: str | None = None  # the user's own -v mode text (like "ro,z"), kept as written
    far: Far | None = None  # a bind of this machine's files: what it is on a remote engine

    @classmethod
    def parse(cls, text: str) -> Mount:
        """A checked ``SRC:DST[:MODE]`` (mux.validate.volume) as the user wrote it."""
        source, target, *mode = text.split(":", 2)
        return cls(source, target, "ro" in (mode[0].split(",") if mode else ()), mode[0] if mode else None)

    @property
    def bind(self) -> bool:
        return self.source.startswith("/")

    @property
    def text(self) -> str:
        """The mount as docker -v takes it."""
        mode = self.mode or ("ro" if self.read_only else None)
        return f"{self.source}:{self.target}" + (f":{mode}" if mode else "")


# Every session: no privilege gained through setuid programs or file capabilities,
# no raw sockets (ARP spoofing of other sessions; ping uses ICMP datagram sockets,
# which docker allows), no device nodes, no file capabilities set, no audit writes, no
# changing capability sets (measured: apt-get, gcc, git, ping need none of these).
DROPPED_CAPS = ("NET_RAW", "MKNOD", "SETFCAP", "AUDIT_WRITE", "SETPCAP")


class RunPolicy(NamedTuple):
    """What the session's processes may do, as `docker run` sets it (mux.engine.argv.policy_args).

    The paths of the workdir a session may only read (mux/workspace/protect.py) are
    read-only Mounts among the spec's mounts, in their -v order."""

    user: str | None = None  # "uid:gid"; None: the image's
    pids_limit: int | None = None  # docker --pids-limit; None: no limit
    no_new_privileges: bool = True
    cap_drop: tuple[str, ...] = DROPPED_CAPS
    cap_add: tuple[str, ...] = ()


class SessionSpec(NamedTuple):
    name: str
    image: str
    workdir: Path
    labels: tuple[tuple[str, str], ...]
    command: tuple[str, ...] = ()  # empty: the configured shell
    shell: str = "/bin/bash"
    env: tuple[tuple[str, str | None], ...] = ()  # None: pass the host's value by name
    env_files: tuple[Path, ...] = ()
    mounts: tuple[Mount, ...] = ()
    network: str | None = None
    limits: Limits = Limits()
    policy: RunPolicy = RunPolicy()
    home: Path | None = None  # host directory mounted as the container's HOME
    stop_timeout: int = 10
    pull: str | None = None
    extra_hosts: tuple[str, ...] = ()
    hostname: str | None = None
    # (host file, its text): written before `docker run`, mounted read-only at
    # /etc/<file name> (the session's passwd and group, see mux.session.account)
    accounts: tuple[tuple[Path, str], ...] = ()
    ports: tuple[str, ...] = ()  # docker -p specs, the host address always written out
    tty: bool = True  # -it: a terminal to attach to; off for one-shot (headless) agents
    workspace_volume: str | None = None  # named volume at /workspace instead of workdir (mux/session/volumes.py)
    home_volume: str | None = None  # named volume as HOME instead of the host directory ``home``
    cidfile: Path | None = None  # docker run --cidfile: where docker writes the new container's ID
    fills: tuple[VolumeFill, ...] = ()  # named volumes made from host files first (remote engines)
    links: tuple[tuple[str, str], ...] = ()  # (path in the container, target): symlinks made before start
    cache_dirs: tuple[Path, ...] = ()  # [docker.rust]: host cache dirs, made as the user (mux/session/sccache.py)
    uid0: bool = False  # may run as the host's root (run_as_root, or the image's user): bits cleared at stop
    # A workdir session's protection (mux/workspace/protect.py): the user's repository its own git
    # directory is copied from, and the placeholders made in the workdir before the run.
    git_dir: Path | None = None
    git_source: Path | None = None
    placeholders: tuple[tuple[Path, bool], ...] = ()
    scripts: tuple[tuple[Path, str, int], ...] = ()  # (host file, text, mode) written first: an agent's wrapper
    dns: tuple[str, ...] = ()  # docker --dns: the embedded resolver's upstreams (proxy-only: NO_DNS)
    copies: tuple[tuple[Path, str], ...] = ()  # remote engine: (host directory, where) copied in after create

    @property
    def user(self) -> str | None:
        return self.policy.user

    @property
    def container(self) -> str:
        return container_name(self.name)
