"""The git box: git run on a session's tree in a throwaway container on its engine.

One code path for a local and a remote engine: the tree is a bind mount of the
clone under the session's data dir (local) or the session's workspace volume
(remote, --copy); either is mounted read-only at ``/r/N`` of a container of the
session's own image (it has git, or the check cannot run and says so) with no
network, no capabilities, no-new-privileges, a read-only root, a small /tmp, a
pids limit, as the session's uid. Several trees go into one box (`delete --all`).

git is hardened even there, because the repository's configuration is the
agent's: no system or global config, no hooks, no fsmonitor, no pager, editor,
external diff, signature program or transport, and :data:`HARDEN` (shell, run in
the box before git reads a tree) switches off every filter and diff/merge driver
the repository's config names (their names are the agent's, so they are listed
first). Everything the box prints is input: bounded (:data:`OUTPUT_LIMIT`),
parsed strictly by the caller, printed with control characters escaped.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from mux import paths, validate
from mux.engine import argv as A
from mux.engine.argv import EngineArgv
from mux.errors import ConfigError, MuxError
from mux.safetext import escape as safe
from mux.workspace.heads import BASE_LABEL, COMMIT
from mux.workspace.protect import GIT_DIR

if TYPE_CHECKING:
    from mux.engine.runner import Result, Runner
    from mux.session.sessions import Session

BOX_ROOT = "/r"  # trees are mounted at /r/0, /r/1, ...; git never looks above (GIT_CEILING_DIRECTORIES)
OUTPUT_LIMIT = 4 << 20  # bytes of a text answer; more is a check that failed
GIT_CONFIG: tuple[tuple[str, str], ...] = (
    ("safe.directory", "*"),  # the tree's files belong to the session's uid, which the box runs as
    ("core.fsmonitor", "false"),
    ("core.hooksPath", "/dev/null"),
    ("core.pager", "cat"),
    ("core.editor", "false"),
    ("core.sshCommand", "false"),
    ("core.askPass", "false"),
    ("core.alternateRefsCommand", ""),
    ("core.untrackedCache", "false"),
    ("core.attributesFile", "/dev/null"),
    ("core.quotePath", "true"),
    ("diff.external", ""),
    ("log.showSignature", "false"),
    ("gpg.program", "false"),
    ("credential.helper", ""),
    ("protocol.allow", "never"),
    ("gc.auto", "0"),
    ("maintenance.auto", "false"),
    ("color.ui", "never"),
    ("status.submoduleSummary", "false"),
    ("submodule.recurse", "false"),
)
GIT_ENV: tuple[tuple[str, str], ...] = (
    ("HOME", "/nonexistent"),
    ("GIT_CONFIG_NOSYSTEM", "1"),
    ("GIT_CONFIG_GLOBAL", "/dev/null"),
    ("GIT_ATTR_NOSYSTEM", "1"),
    ("GIT_OPTIONAL_LOCKS", "0"),  # look, don't touch: no index refresh written (the mount is read-only too)
    ("GIT_TERMINAL_PROMPT", "0"),
    ("GIT_PAGER", "cat"),
    ("PAGER", "cat"),
    ("GIT_NO_REPLACE_OBJECTS", "1"),
    ("GIT_CEILING_DIRECTORIES", BOX_ROOT),
    ("LC_ALL", "C"),
)
# Shell, first in every box script: `harden` switches off the drivers the repository in
# the current directory names (filter.X.clean|smudge|process|required, diff.X.textconv|
# command, merge.X.driver), as more GIT_CONFIG_* entries of empty value.
HARDEN = r"""
command -v git >/dev/null 2>&1 || { echo nogit; echo "mux-gitbox: its image has no git" >&2; exit 3; }
base=$GIT_CONFIG_COUNT
harden() {
  hn=$base
  git config --name-only --get-regexp \
    '^(filter|diff|merge)\..+\.(clean|smudge|process|required|textconv|cachetextconv|command|driver)$' \
    >/tmp/.keys 2>/dev/null
  while IFS= read -r k; do
    export "GIT_CONFIG_KEY_$hn=$k" "GIT_CONFIG_VALUE_$hn="
    hn=$((hn+1))
  done </tmp/.keys
  export GIT_CONFIG_COUNT=$hn
}
"""
_SAFE_PATH = re.compile(r"/[^\x00-\x1f\x7f,\"':]*")
_USER = re.compile(r"[A-Za-z0-9_.-]{1,64}(?::[A-Za-z0-9_.-]{1,64})?")


class Tree(NamedTuple):
    """A session's git work tree, as the git box mounts it."""

    key: str  # the session's name
    kind: str  # "bind" (a directory on the engine's machine) or "volume"
    source: str  # the directory, or the volume's name
    image: str  # the box's image: the session's own
    user: str  # uid[:gid] the box runs as: the session's; "" until asked (a volume's: its container's)
    ref: str = ""  # the session's container (to ask its user)
    git_dir: str = ""  # a workdir session's own git directory (mux.workspace.protect), mounted over the tree's .git


class NoTree(NamedTuple):
    """A session whose tree cannot be put in the box, and why."""

    key: str
    why: str


def escape(text: str) -> str:
    """What a session wrote, printable: mux.safetext's escaping (the one mux has), uncut."""
    return safe(text, limit=0)


def tree_of(session: Session, *, workdir: bool = False) -> Tree | NoTree | None:
    """Where session's repository is; None when it has none to read (a workdir session,
    unless ``workdir``: then its directory, when that is a git work tree)."""
    from mux.session.volumes import WORKDIR_PREFIX, in_volumes, volume_name  # here: breaks the map

    image = session.image
    try:
        image = validate.image(image, "the session's image label") if image else ""
    except ConfigError:
        return NoTree(session.name, f"its image label {escape(image)!r} is not an image reference")
    if in_volumes(session):
        if not (session.repo or workdir):
            return None
        volume = session.workdir.removeprefix(WORKDIR_PREFIX)
        if volume != volume_name(session.name, "workspace"):
            return NoTree(session.name, f"its workspace volume label {escape(volume)!r} is not mux's")
        found = Tree(session.name, "volume", volume, image, "", session.ref)
    else:
        clone = Path(paths.session_dir(session.name), "repo")  # a clone, even when its container is gone
        cloned = clone.is_dir() and not clone.is_symlink()
        if cloned:
            directory = clone
        elif workdir and not session.repo and session.workdir.startswith("/"):
            directory = Path(session.workdir)
        else:
            return None
        own = Path(paths.session_dir(session.name), GIT_DIR)  # what the session has at /workspace/.git
        # Its own git directory: a copy of the user's, or an empty one until the agent runs `git init`.
        git_dir = str(own) if not cloned and (own / "HEAD").is_file() and not own.is_symlink() else ""
        # A workdir's .git may be mux's empty placeholder (mux.workspace.protect): a repository has a HEAD.
        dot_git = directory / ".git"
        if not cloned and not git_dir and (directory.is_symlink() or not (
                dot_git.is_file() or (dot_git / "HEAD").is_file())):
            return None
        if not all(_SAFE_PATH.fullmatch(p) for p in (str(directory), git_dir or "/")):
            return NoTree(session.name, f"{escape(str(directory))} cannot be mounted (',', ':' or a quote)")
        # The directory's owner: the session's uid (mux hands it the clone), with no docker call.
        # On a rootless engine that id maps to an unprivileged one: less, never more.
        st = directory.lstat()
        found = Tree(session.name, "bind", str(directory), image, f"{st.st_uid}:{st.st_gid}", session.ref,
                     git_dir)
    if not image:
        return NoTree(session.name, "its container is gone, so its image (the git box's) is unknown")
    return found


def own_git_tree(session: Session) -> Tree | NoTree | None:
    """A workdir session's own git directory (mux.workspace.protect), alone, as the tree
    (its commits are what deleting it loses; the workdir's files are the user's own);
    None when the session has none, or no commit could be in it yet (no HEAD)."""
    from mux.session.volumes import in_volumes  # here: breaks the map (test_layers.py)

    if session.repo or in_volumes(session):
        return None
    own = Path(paths.session_dir(session.name), GIT_DIR)
    if own.is_symlink() or not own.is_dir() or not (own / "HEAD").exists():
        return None
    image = session.image
    try:
        image = validate.image(image, "the session's image label") if image else ""
    except ConfigError:
        return NoTree(session.name, f"its image label {escape(image)!r} is not an image reference")
    if not image:
        return NoTree(session.name, "its container is gone, so its image (the git box's) is unknown")
    if not _SAFE_PATH.fullmatch(str(own)):
        return NoTree(session.name, f"{escape(str(own))} cannot be mounted (',', ':' or a quote)")
    st = own.lstat()  # the session's uid: mux hands the directory to it
    return Tree(session.name, "bind", str(own), image, f"{st.st_uid}:{st.st_gid}", session.ref)


def ask_users(runner: Runner, trees: list[Tree]) -> list[Tree | NoTree]:
    """Trees whose user is unknown (volumes) get their session container's, all in one
    `docker inspect`."""
    refs = [t.ref for t in trees if not t.user and t.ref]
    users: dict[str, str] = {}
    if refs:
        inspect = A.inspect_argv(refs[0], "{{.Id}} {{.Config.User}}")[:-1]  # every ref, not just the first
        listed = runner.query(EngineArgv([*inspect, *refs]), check=False)
        for line in listed.stdout.splitlines()[:len(refs)]:
            cid, _, user = line.partition(" ")
            users[cid] = user.strip() or "0:0"
    out: list[Tree | NoTree] = []
    for t in trees:
        user = t.user or next((u for cid, u in users.items() if cid.startswith(t.ref)), "")
        if not _USER.fullmatch(user):
            out.append(NoTree(t.key, "its container's user cannot be read from the engine"))
        else:
            out.append(t._replace(user=user))
    return out


def mount_args(trees: Sequence[Tree]) -> list[str]:
    argv: list[str] = []
    for i, t in enumerate(trees):
        extra = ",volume-nocopy" if t.kind == "volume" else ""
        argv += ["--mount", f"type={t.kind},source={t.source},target={BOX_ROOT}/{i},readonly{extra}"]
        if t.git_dir:
            argv += ["--mount", f"type=bind,source={t.git_dir},target={BOX_ROOT}/{i}/.git,readonly"]
    return argv


def box_argv(image: str, user: str, trees: Sequence[Tree], script: str, args: Iterable[str] = (),
             *, tmp_size: str = "64m", stdin: bool = False) -> EngineArgv:
    """`docker run` of the git box: ``script`` (sh) runs with the trees at /r/0.. and
    ``args`` after them as "$@"; the trees' mount points come first in "$@".
    ``stdin``: the script reads data on its standard input."""
    env = list(GIT_ENV) + [("GIT_CONFIG_COUNT", str(len(GIT_CONFIG)))]
    for i, (key, value) in enumerate(GIT_CONFIG):
        env += [(f"GIT_CONFIG_KEY_{i}", key), (f"GIT_CONFIG_VALUE_{i}", value)]
    labels = paths.helper_labels("gitbox")
    argv = EngineArgv(["run", "--rm", "--pull", "never", "--network", "none", "--cap-drop", "ALL",
            "--security-opt", "no-new-privileges", "--read-only",
            "--tmpfs", f"/tmp:rw,noexec,nosuid,nodev,size={tmp_size},mode=1777",
            "--pids-limit", "256", "--log-driver", "none", "-u", user])
    for k, v in labels:
        argv += ["--label", f"{k}={v}"]
    for k, v in env:
        argv += ["-e", f"{k}={v}"]
    if stdin:
        argv.append("-i")
    argv += [*mount_args(trees), "--entrypoint", "/bin/sh", image, "-c", HARDEN + script, "gitbox"]
    return argv + [f"{BOX_ROOT}/{i}" for i in range(len(trees))] + list(args)


def groups(trees: Sequence[Tree]) -> list[list[Tree]]:
    """Trees that can share a box (same image and user): usually all of them."""
    by: dict[tuple[str, str], list[Tree]] = {}
    for t in trees:
        by.setdefault((t.image, t.user), []).append(t)
    return list(by.values())


def run_text(runner: Runner, trees: Sequence[Tree], script: str, args: Iterable[str] = (),
             *, input: str | None = None) -> Result:
    """Run ``script`` in one box over ``trees`` (same image and user), ``input`` (if any)
    on its stdin; its output as text, checked for size by the caller (``too_long``)."""
    argv = box_argv(trees[0].image, trees[0].user, trees, script, args, stdin=input is not None)
    if input is None:
        return runner.query(argv, check=False)
    return runner.query(argv, check=False, input=input)


def too_long(result: Result) -> bool:
    return len(result.stdout) > OUTPUT_LIMIT


def box_failure(result: Result, image: str) -> str:
    """Why a box printed nothing usable, in words, for a refusal."""
    if result.stdout.startswith("nogit"):
        return f"its image {image} has no git, so the git box cannot check it"
    detail = next((ln for ln in reversed(result.stderr.splitlines()) if ln.strip()), "")
    detail = detail.removeprefix("docker: ").removeprefix("Error response from daemon: ")
    return f"the git box (image {image}) could not run: {escape(detail[:200]) or f'exit status {result.returncode}'}"


def host_path_ok(path: str | os.PathLike[str]) -> bool:
    return bool(_SAFE_PATH.fullmatch(os.fspath(path)))


def session_tree(runner: Runner, session: Session) -> tuple[Tree, str]:
    """``session``'s tree (a clone, workspace volume, or a workdir that is a git work tree),
    its user asked from the engine, and its ``mux.base`` label ("" when none); refusals
    are one line (exit 1)."""
    tree = tree_of(session, workdir=True)
    if tree is None:
        raise MuxError(f"session {session.name!r} has no git repository to read",
                       hint="it was made without --repo, from a directory that is not a git work tree")
    if isinstance(tree, NoTree):
        raise MuxError(f"session {session.name!r}: {tree.why}")
    fmt = '{{.Config.User}}\t{{index .Config.Labels "' + BASE_LABEL + '"}}'
    found = runner.query(A.inspect_argv(session.ref, fmt), check=False)
    user, _, base = found.stdout.strip("\n").partition("\t")
    user = user.strip() or "0:0"
    if found.returncode != 0 or not _USER.fullmatch(user):
        raise MuxError(f"session {session.name!r}: its container's user cannot be read from the engine")
    base = base.strip()
    return tree._replace(user=user), base if COMMIT.fullmatch(base) else ""


def run_to_file(runner: Runner, argv: Sequence[str], path: Path) -> tuple[int, str]:
    """Run ``argv`` with its stdout written to ``path`` (a new file, mode 600): bytes,
    never held in memory or decoded here. Its exit status and the last line of stderr."""
    out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        proc = runner.spawn(argv, stdin=null, stdout=out)
    finally:
        os.close(out)
        os.close(null)
    try:
        _, err = proc.communicate()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    lines = [ln for ln in err[-8192:].decode("utf-8", "replace").splitlines() if ln.strip()]
    last = lines[-1] if lines else ""
    for prefix in ("docker: ", "Error response from daemon: ", "fatal: ", "error: "):
        last = last.removeprefix(prefix)
    return proc.returncode, escape(last.removeprefix("mux-gitbox: ")[:300])
