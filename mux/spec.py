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


class SessionSpec(NamedTuple):
    name: str
    image: str
    workdir: Path
    labels: tuple[tuple[str, str], ...]
    command: tuple[str, ...] = ()  # empty: the configured shell
    shell: str = "/bin/bash"
    env: tuple[tuple[str, str | None], ...] = ()  # None: pass the host's value by name
    env_files: tuple[Path, ...] = ()
    volumes: tuple[str, ...] = ()
    network: str | None = None
    limits: Limits = Limits()
    user: str | None = None  # "uid:gid"
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

    @property
    def container(self) -> str:
        return container_name(self.name)
