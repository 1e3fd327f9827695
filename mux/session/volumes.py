"""A session's files in named volumes on its engine, instead of bind mounts.

A remote engine (mux/engine/choice.py) cannot see this machine's paths: a bind mount
there is an empty directory, silently. So there the session's /workspace (a repo
clone made here, or with --copy the working directory) and its HOME are named
volumes labelled with the session, filled before the session starts:
`docker volume create`, `docker create`, `docker cp`, `docker start`. (--copy
does the same on a local engine.) Of a remote session only its proxy env-file
(when proxied) and a marker naming the engine stay here. `docker cp` of a directory named like the
mount point into its parent sets the mount point's owner too, so a session run
as the user's uid can write there; the local side is a symlink (workspace) or an
empty directory (HOME) under the session's data dir, copied with -L.

What a session would bind-mount from this machine besides (sccache's cache and
binary, an agent's binary and shared files) is a named volume filled from host
files before the session is made (``fill_volume``: `docker volume create`, a
helper container that is created but never started, `docker cp` into it, `docker
rm`). Caches and programs are shared by the sessions of an instance on that engine
(labelled ``mux.volume``, never ``mux.session``, so deleting a session leaves them);
a program's volume is named by its content's digest, so it is copied once and a
changed binary gets a new one. Files that are the session's own (an agent's shared
files) go into a volume labelled with the session, removed with it.

The unsaved-work guard runs git on that engine, in the git box with the workspace
volume mounted read-only (mux/workspace), as it does for a clone here, and fails
closed; delete removes the volumes with the container.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Sequence
from functools import partial
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from mux import paths
from mux.engine import argv as A
from mux.engine.runner import Runner, host_step
from mux.errors import ConfigError, DockerError
from mux.names import CONTAINER_HOME, SESSION_NAME, WORKSPACE
from mux.session.layout import ENGINE_MARKER, HOST_ALIAS, proxy_address, remove_tree
from mux.spec import SessionSpec, VolumeFill

if TYPE_CHECKING:
    from mux.egress.reach import Probe
    from mux.engine.choice import Engine
    from mux.session.sessions import Session

SHARED_LABEL = "mux.volume"  # a volume sessions share: what it holds (its value)
FILL_MOUNT = "/muxfill"  # where a fill helper mounts the volume it fills
FILL_PREFIX = "mux_fill_"  # + the volume: a fill helper's container name
PROGRAM = "program"  # SHARED_LABEL's value on a volume holding one host executable
WORKDIR_PREFIX = "volume:"  # the mux.workdir label of a session whose /workspace is a volume
STAGE = "stage"  # under the session's data dir: what `docker cp` copies from


def volume_name(session: str, what: str) -> str:
    return f"mux-{session}-{what}"


def shared_fill(what: str, kind: str, instance: str | None, files: tuple[tuple[Path, str], ...] = (),
                labels: tuple[tuple[str, str], ...] = ()) -> VolumeFill:
    """A volume shared by the sessions of ``instance`` on an engine: ``mux_[INSTANCE_]WHAT``
    (``mux_`` never starts a session's ``mux-NAME-...``). ``what`` has no '_'."""
    assert "_" not in what
    name = f"mux_{instance}_{what}" if instance else f"mux_{what}"
    own = ((SHARED_LABEL, kind),) + ((("mux.instance", instance),) if instance else ())
    return VolumeFill(name, own + labels, files)


def program_fill(program: Path, file_name: str, instance: str | None) -> VolumeFill:
    """The host executable ``program`` as ``file_name`` in a volume named by its digest."""
    digest = file_digest(program)
    slug = re.sub(r"[^a-z0-9-]+", "-", file_name.lower()).strip("-") or PROGRAM
    return shared_fill(f"{slug}-{digest}", PROGRAM, instance, ((program, file_name),),
                       (("mux.program", file_name), ("mux.digest", f"sha256:{digest}")))


def session_fill(session: str, what: str, instance: str | None,
                 files: tuple[tuple[Path, str], ...] = ()) -> VolumeFill:
    """A volume of the session's own, filled from host files; removed with it."""
    labels = (("mux.session", session),) + ((("mux.instance", instance),) if instance else ())
    return VolumeFill(volume_name(session, what), labels, files, shared=False)


def file_digest(path: Path) -> str:
    """sha256 of ``path``'s content, remembered by its size, mtime and inode under the
    data dir (an agent's binary is a few hundred MB: half a second to hash)."""
    import hashlib
    import json

    st = path.stat()
    key = f"{path}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}"
    cache = Path(paths.data_dir(), "digests.json")
    try:
        known = json.loads(cache.read_text())
    except (OSError, ValueError):
        known = {}
    found = known.get(key) if isinstance(known, dict) else None
    if isinstance(found, str) and re.fullmatch(r"[0-9a-f]{64}", found):
        return found
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(partial(fh.read, 1 << 20), b""):
            h.update(block)
    digest = h.hexdigest()
    known = {k: v for k, v in (known.items() if isinstance(known, dict) else []) if not k.startswith(f"{path}\0")}
    from mux.ownfiles import write_private

    try:  # a cache: when it cannot be written, the next run hashes again
        cache.parent.mkdir(parents=True, exist_ok=True)
        write_private(cache, json.dumps({**known, key: digest}))
    except OSError:
        pass
    return digest


def session_volumes(spec: SessionSpec) -> list[str]:
    """The volumes that are this session's own (removed with it, or when making it fails)."""
    own = [spec.workspace_volume, spec.home_volume] + [f.name for f in spec.fills if not f.shared]
    return [v for v in own if v]


def make_fills(runner: Runner, spec: SessionSpec, stage: Path, made: list[str]) -> None:
    """The spec's volumes made from host files: the session's own, and shared ones that
    are not on the engine yet (one `docker volume ls` tells). The session's own ones are
    added to ``made`` as they are made (a shared one, once filled, stays for the next
    session even if this one fails)."""
    shared = [f for f in spec.fills if f.shared]
    there: set[str] = set()
    if shared:
        there = set(runner.query(A.volume_names_argv(SHARED_LABEL)).stdout.split())
    for fill in spec.fills:
        if fill.shared and fill.name in there:
            continue
        fill_volume(runner, fill, spec.image, "never" if spec.pull == "never" else None, stage)
        if not fill.shared:
            made.append(fill.name)


def unfinished_fills(runner: Runner) -> list[tuple[str, str]]:
    """(helper container, volume) of fills that never finished (their `mux new` was
    killed): the volume may hold part of its files."""
    from mux.validate import VOLUME_NAME

    inst = paths.instance()
    listed = runner.query(A.ps_argv('{{.Names}}\t{{.Label "mux.instance"}}', instance=inst,
                                    label="mux.helper=fill"))
    found = []
    for line in listed.stdout.splitlines():
        name, _, instance = line.partition("\t")
        volume = name.removeprefix(FILL_PREFIX)
        if (instance or None) == inst and name.startswith(FILL_PREFIX) and VOLUME_NAME.fullmatch(volume):
            found.append((name, volume))
    return found


def fill_volume(runner: Runner, fill: VolumeFill, image: str, pull: str | None, stage: Path) -> None:
    """Create volume ``fill.name`` on the runner's engine and copy ``fill.files`` into it,
    through a helper container of ``image`` that is created, never started, and
    removed. The volume's root and the files' directories are copied from a staged
    directory named like the mount point (so they get the user's uid, as the files do).
    On failure the volume is removed, unless another mux is filling it right now."""
    mount = PurePosixPath(FILL_MOUNT)
    root = stage / mount.name
    helper = FILL_PREFIX + fill.name
    runner.run(A.volume_create_argv(fill.name, fill.labels))
    ours = True  # a volume this run fills, removed if that fails
    try:
        try:
            runner.run(A.fill_helper_argv(helper, fill.name, str(mount), image, pull=pull,
                                          labels=paths.helper_labels("fill")))
        except DockerError as exc:
            if "is already in use" not in exc.stderr:
                raise
            ours = False  # another `mux new` is filling this shared volume right now
            raise DockerError(f"another mux is copying files into volume {fill.name} right now",
                              hint="run this mux new again in a moment; `mux doctor` names the copy "
                              "if it never finishes") from None
        try:
            dirs = list(dict.fromkeys([root, *(root / PurePosixPath(inside).parent for _, inside in fill.files)]))

            def make() -> None:
                for d in dirs:
                    d.mkdir(parents=True, exist_ok=True)

            host_step(runner, ["mkdir", "-p", *dirs], make)
            runner.run(A.cp_argv(root, f"{helper}:{mount.parent}"))
            for local, inside in fill.files:
                runner.run(A.cp_argv(local, f"{helper}:{mount / inside}", follow_link=True))
        finally:
            runner.run(A.rm_argv([helper], force=True), check=False)
            host_step(runner, ["rm", "-rf", root], partial(shutil.rmtree, root, ignore_errors=True))
    except BaseException:
        if ours and not runner.dry_run:
            runner.run(A.volume_rm_argv([fill.name]), check=False)
        raise


def in_volumes(session: Session) -> bool:
    return session.workdir.startswith(WORKDIR_PREFIX)


def refuse_local_paths(engine: Engine, spec: SessionSpec, *, repo: bool, copy: bool, proxied: bool) -> None:
    """What cannot work on a remote engine, refused (exit 2) before anything is made."""
    if not repo and not copy:
        raise ConfigError(
            f"the working directory {spec.workdir} is on this machine, but the engine is "
            f"{engine.describe()}, on another: a bind mount there would be an empty directory",
            hint="--copy copies the directory into a volume there (`mux cp NAME:/workspace/PATH .` "
            "brings results back), --repo URL clones a repository into one, or "
            "--context default runs the session on this machine",
        )
    for mount in spec.mounts:
        source = mount.source
        if mount.far is None and mount.bind:
            raise ConfigError(
                f"volume {mount.text!r} mounts {source}, a path on this machine, but the engine is "
                f"{engine.describe()}, on another: it would be an empty directory there",
                hint="use a named volume there (NAME:/path), or leave the volume out of [docker] "
                "volumes / --volume for this engine",
            )
    if proxied:
        from mux.egress.tunnel import ssh_target

        ssh_target(engine)  # the proxy's tunnel needs ssh://


def tunnel_up(runner: Runner, port: int) -> str:
    """A proxied session on a remote engine: the proxy's tunnel there up (mux/egress/tunnel.py);
    returns where it listens there, ``GATEWAY:PORT``."""
    from mux.egress import tunnel
    from mux.proxy import control

    return tunnel.ensure(runner, runner.engine, control.status().port or port)


def reach_probe(runner: Runner, spec: SessionSpec, tunnel_end: str) -> Probe:
    """mux/egress/reach.py's check that this remote session's network reaches the proxy
    through the tunnel: from inside the session just started (`docker exec`), in
    the background (``Probe.verdict`` waits)."""
    from mux.egress import reach
    from mux.egress.relay import alias

    port = int(tunnel_end.rpartition(":")[2])
    address = proxy_address(spec.name) or (f"{alias(port)}:{port}" if spec.network else f"{HOST_ALIAS}:{port}")
    return reach.Probe(runner, reach.exec_argv(spec.container, address), runner.engine, address)


def as_volume_spec(spec: SessionSpec) -> SessionSpec:
    """The spec with /workspace (and HOME) as named volumes; spec.workdir stays the
    local directory they are filled from."""
    workspace = volume_name(spec.name, "workspace")
    labels = [(k, f"{WORKDIR_PREFIX}{workspace}" if k == "mux.workdir" else v) for k, v in spec.labels]
    home = volume_name(spec.name, "home") if spec.home is not None else None
    return spec._replace(labels=tuple(labels), workspace_volume=workspace, home_volume=home, home=None)


def create_session(runner: Runner, spec: SessionSpec, session_dir: Path, *, remove_source: bool,
                   copies: Sequence[tuple[Path, str]] = (), cp_limit: int = 1 << 30) -> None:
    """Volumes, container, copies, start; on any failure what this made is removed.
    ``remove_source``: the local directory was a clone made for this session only.
    ``copies``: more (local directory, container directory) contents to copy in (mux's own).
    The working directory goes in as `mux cp` sends files: data only, at most ``cp_limit``."""
    remote = runner.engine if runner.engine.remote else None
    made_volumes: list[str] = []
    made_container = False
    labels = [("mux.session", spec.name)] + [(k, v) for k, v in spec.labels if k == "mux.instance"]
    stage = session_dir / STAGE
    try:
        host_step(runner, ["mkdir", "-p", "-m", "700", stage], partial(stage.mkdir, mode=0o700, parents=True))
        make_fills(runner, spec, stage, made_volumes)  # caches, programs, shared files (remote)
        for volume in (spec.workspace_volume, spec.home_volume):
            if volume is not None:
                runner.run(A.volume_create_argv(volume, labels))
                made_volumes.append(volume)
        runner.run(A.create_argv(spec))
        made_container = True
        workspace = PurePosixPath(WORKSPACE)
        source = spec.workdir
        copy_workdir(runner, Path(source), f"{spec.container}:{workspace.parent}", workspace.name, cp_limit)
        home = PurePosixPath(CONTAINER_HOME)
        if spec.home_volume is not None:
            empty = stage / home.name
            prepared = session_dir / "home"  # an agent's seeded HOME (mux.session.agents.prepare_home)
            seeded = any(k == "mux.agent" for k, _ in spec.labels)
            if seeded:
                host_step(runner, ["ln", "-s", prepared, empty], partial(os.symlink, prepared, empty))
            else:
                host_step(runner, ["mkdir", "-m", "700", empty], partial(empty.mkdir, mode=0o700))
            make_links(runner, [(PurePosixPath(p).relative_to(home), t) for p, t in spec.links
                                if PurePosixPath(p).is_relative_to(home)], prepared if seeded else empty)
            runner.run(A.cp_argv(empty, f"{spec.container}:{home.parent}", follow_link=seeded))
        for i, (path, target) in enumerate((p, t) for p, t in spec.links
                                           if not PurePosixPath(p).is_relative_to(home)):
            place = PurePosixPath(path)
            make_links(runner, [(PurePosixPath(place.name), target)], stage / f"link{i}")
            runner.run(A.cp_argv(stage / f"link{i}" / place.name, f"{spec.container}:{place.parent}"))
        for local, inside in copies:
            runner.run(A.cp_argv(f"{local}/.", f"{spec.container}:{inside}"))
        if remove_source:
            host_step(runner, ["rm", "-rf", source], partial(remove_tree, source))
        runner.run(A.start_argv(spec.container))
        host_step(runner, ["rm", "-rf", stage], partial(shutil.rmtree, stage, ignore_errors=True))
        if remote is not None:
            # What stays here (the proxy's env-file) belongs to a session on another
            # engine: not a "missing" session when this machine's engine is listed.
            marker = session_dir / ENGINE_MARKER
            host_step(runner, ["sh", "-c", 'echo "$1" > "$2"', "sh", remote.host, marker],
                      partial(marker.write_text, remote.host + "\n"))
    except BaseException:
        if not runner.dry_run:
            if made_container:
                runner.run(A.rm_argv([spec.container], force=True), check=False)
            if made_volumes:
                runner.run(A.volume_rm_argv(made_volumes), check=False)
        raise


def copy_workdir(runner: Runner, source: Path, at: str, name: str, limit: int) -> None:
    """``source`` into the container as ``at``/``name``, by mux cp's rules (mux/session/safetar.py):
    no link out of it, no device node or fifo, no setuid/setgid bit; what was left out is
    said in one line."""
    from mux.session import safetar

    refusals = safetar.Refusals()
    argv = A.cp_argv("-", at)
    if runner.dry_run:
        runner.show(argv)
        return
    source = Path(os.path.realpath(source))  # the directory itself, as docker cp -L took it
    entries = safetar.walk(source, name, refusals, limit=limit, what=f"the working directory {source}",
                           contents=False)
    with runner.pipe(argv, write=True) as p:
        safetar.write(p.stream, entries, refusals)
    line = refusals.line(f"copied {source} into the session, but")
    if line:
        print(line, file=runner.err)


def make_links(runner: Runner, links: Sequence[tuple[PurePosixPath, str]], base: Path) -> None:
    """Symlinks (relative path under ``base``, target) on this machine, their
    directories included, for `docker cp` to copy as links."""
    for rel, target in links:
        link = base / rel
        host_step(runner, ["mkdir", "-p", "-m", "700", link.parent],
                  partial(link.parent.mkdir, mode=0o700, parents=True, exist_ok=True))
        host_step(runner, ["ln", "-s", target, link], partial(os.symlink, target, link))


def after_delete(runner: Runner, sessions: list[Session]) -> None:
    """Deleted sessions' volumes removed; the engine's proxy tunnel too, when unused."""
    remove_volumes(runner, sessions)
    if runner.engine.remote:
        from mux.egress.tunnel import stop_if_unused

        stop_if_unused(runner, {s.name for s in sessions})


def remove_volumes(runner: Runner, sessions: list[Session]) -> None:
    """Remove the volumes of deleted sessions, found by their labels on this engine."""
    names = {s.name for s in sessions if in_volumes(s)}
    if not names:
        return
    doomed = [volume for volume, session in sessions_volumes(runner) if session in names]
    if doomed:
        runner.run(A.volume_rm_argv(doomed))


def sessions_volumes(runner: Runner) -> list[tuple[str, str]]:
    """(volume, session) for this instance's session volumes on the runner's engine:
    named ``mux-SESSION-WHAT`` and labelled with it (shared ones carry no session label)."""
    inst = paths.instance()
    listed = runner.query(A.volume_ls_argv(instance=inst))
    found = []
    for line in listed.stdout.splitlines():
        volume, session, instance = (line.split("\t") + ["", ""])[:3]
        if ((instance or None) == inst and SESSION_NAME.fullmatch(session)
                and volume == volume_name(session, volume.rsplit("-", 1)[-1])):
            found.append((volume, session))
    return found
