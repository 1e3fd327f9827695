"""The one place a session's mounts meet its engine.

Features (the user's volumes, protection, sccache, an agent, the proxy's CA bundle) say
what they mount as :class:`mux.spec.Mount` values, and for this machine's files what
they are on an engine that cannot see them (``Mount.far``). Here, once, per engine:
a local one gets the binds as they are; a remote one gets named volumes filled from
the files before the session is made (mux/session/volumes.py), symlinks into them, and
copies made into the container after it is created. mux.engine.argv renders the result.
"""

from __future__ import annotations

from pathlib import Path

from mux.session.volumes import program_fill, session_fill, shared_fill
from mux.spec import Far, Mount, SessionSpec, VolumeFill


def for_engine(spec: SessionSpec, *, remote: bool, instance: str | None) -> SessionSpec:
    """``spec`` with its mounts as the session's engine takes them. Local: unchanged.
    Remote: every bind of this machine's files replaced by what its ``far`` says; the
    session's own passwd and group files, and host cache directories, are not made."""
    if not remote:
        return spec
    mounts: list[Mount] = []
    fills: list[VolumeFill] = list(spec.fills)
    links, copies = list(spec.links), list(spec.copies)
    for mount in spec.mounts:
        far = mount.far
        if far is None:  # a named volume (a host path here was refused: volumes.refuse_local_paths)
            mounts.append(mount)
        elif far.volume == "copy":
            copies.append((Path(mount.source), mount.target))
        else:
            fill = volume_for(far, mount, spec.name, instance)
            if all(f.name != fill.name for f in fills):
                fills.append(fill)
            there = Mount(fill.name, far.at or mount.target, mount.read_only)
            if there not in mounts:
                mounts.append(there)
            if far.link is not None:
                links.append((mount.target, far.link))
    return spec._replace(mounts=tuple(mounts), fills=tuple(fills), links=tuple(links), copies=tuple(copies),
                         accounts=(), cache_dirs=())


def volume_for(far: Far, mount: Mount, session: str, instance: str | None) -> VolumeFill:
    """The named volume ``mount`` of host files is on a remote engine."""
    if far.volume == "program":  # named by its content's digest: copied once per binary
        return program_fill(Path(mount.source), far.what, instance)
    if far.volume == "shared":
        return shared_fill(far.what, far.label or far.what, instance, far.files)
    assert far.volume == "own", far
    return session_fill(session, far.what, instance, far.files)
