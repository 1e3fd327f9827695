"""A real user inside the session: the host user's name for the uid mux runs as.

The container runs as your uid:gid (run_as_user), which the image's /etc/passwd
does not know: `whoami` fails and bash's prompt says "I have no name!". mux
writes a small passwd and group (root, you, nobody) into the session's
directory and mounts them read-only over the image's: no extra docker call,
and it works in images whose /etc/passwd is not writable (or absent).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from mux.errors import ConfigError
from mux.names import CONTAINER_HOME

# A user or group name that is safe in a passwd line (POSIX portable names).
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}")
FALLBACK = "mux"
NOBODY = 65534


def host_names(uid: int, gid: int, env: Mapping[str, str]) -> tuple[str, str]:
    """The host's names for ``uid`` and ``gid`` ($USER, then "mux", when the host
    has none); anything unsafe in a passwd line is replaced, never written."""
    import grp
    import pwd

    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = env.get("USER", "")
    try:
        group = grp.getgrgid(gid).gr_name
    except KeyError:
        group = user
    user = user if NAME.fullmatch(user) else FALLBACK
    return user, group if NAME.fullmatch(group) else user


def files(user: str, uid: int, group: str, gid: int, shell: str) -> dict[str, str]:
    """passwd and group text: root, the user (HOME is the session's), nobody."""
    users = {0: "root:x:0:0:root:/root:/bin/sh", NOBODY: f"nobody:x:{NOBODY}:{NOBODY}:nobody:/nonexistent:/bin/false"}
    users[uid] = f"{user}:x:{uid}:{gid}:{user}:{CONTAINER_HOME}:{shell}"
    groups = {0: "root:x:0:", NOBODY: f"nogroup:x:{NOBODY}:"}
    groups[gid] = f"{group}:x:{gid}:"
    return {"passwd": "".join(f"{line}\n" for _, line in sorted(users.items())),
            "group": "".join(f"{line}\n" for _, line in sorted(groups.items()))}


ROOT_ENV = "MUX_RUN_AS_ROOT"  # "1": as [docker] run_as_root = true


def session_ids(uid: int, gid: int, owner_of: str, *, allow_root: bool) -> tuple[int, int]:
    """uid:gid a session runs as when mux runs as ``uid``. Never 0 unless allowed: when
    mux runs as root, a session runs as the owner of ``owner_of`` (its working
    directory, or where a repo session's clone comes from), as agent sessions do;
    a root-owned one is refused (a root session's agent could leave setuid-root
    programs in your files)."""
    import os


    if uid != 0 or allow_root:
        return uid, gid
    try:
        st = os.stat(owner_of)
    except OSError:
        st = None
    if st is not None and st.st_uid != 0:
        return st.st_uid, st.st_gid
    raise ConfigError(
        f"mux runs as root and {owner_of} is owned by root: a session never runs as uid 0 unless you say so",
        hint="give the directory to a user (`chown -R USER DIR`): the session then runs as its owner; "
             f"or set [docker] run_as_root = true (or {ROOT_ENV}=1) to run it as root",
    )
