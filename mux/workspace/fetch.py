"""`mux fetch NAME`: a session's branches into a repository here, as data only.

The git box writes a bundle of the session's branches (`git bundle create -
--branches`) to stdout, which lands in a private temporary file here. The
bundle's header (its refs) is read and checked here, then host git fetches from
that file, never from the session's repository, with every object checked
(``transfer.fsckObjects``), into ``refs/remotes/mux/NAME/*`` only: the user's
branches, HEAD, index, work tree, config and hooks are not written, nor is
FETCH_HEAD. No file of the session's repository (config, hooks, commondir,
alternates) is read by host git.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from mux import paths
from mux.engine.runner import quote
from mux.errors import ConfigError, MuxError
from mux.workspace import gitbox
from mux.workspace.heads import COMMIT
from mux.workspace.repo import local_path

if TYPE_CHECKING:
    from mux.engine.runner import Runner
    from mux.session.sessions import Session

BUNDLE_LIMIT = 2 << 30  # bytes; a bigger bundle is refused, not fetched
HEADER_LIMIT = 16 << 20
SCRIPT = r"""
cd "$1" 2>/dev/null || { echo "mux-gitbox: cannot enter its tree" >&2; exit 3; }
shift
harden
top=$(git rev-parse --show-toplevel 2>/dev/null)
[ "$top" = "$PWD" ] || { echo "mux-gitbox: its tree is not the top of a git work tree" >&2; exit 3; }
[ -n "$(git for-each-ref --count=1 refs/heads/)" ] || { echo "mux-gitbox: it has no branches" >&2; exit 3; }
{ git bundle create --quiet - --branches; echo $? >/tmp/.rc; } | head -c LIMIT
exit "$(cat /tmp/.rc)"
""".replace("LIMIT", str(BUNDLE_LIMIT + 1))
_BRANCH = re.compile(r"refs/heads/([^\x00-\x20\x7f~^:?*\[\\]{1,255})")


def quarantine(name: str) -> str:
    return f"refs/remotes/mux/{name}"


def fetch_argv(into: Path, bundle: Path, name: str) -> list[str]:
    """Host git: objects checked, only the session's quarantine refs written."""
    return ["git", "-C", str(into), "-c", "transfer.fsckObjects=true", "-c", "fetch.fsckObjects=true",
            "-c", "gc.auto=0", "-c", "maintenance.auto=false",
            # No hook runs for this fetch, not even one the repository here holds: a workdir
            # session's agent may have written it (a reference-transaction hook runs on fetch).
            "-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false",
            "fetch", "--quiet", "--no-tags", "--prune", "--no-write-fetch-head", "--no-recurse-submodules",
            "--", str(bundle), f"+refs/heads/*:{quarantine(name)}/*"]


def bundle_refs(bundle: Path) -> list[tuple[str, str]]:
    """(commit, branch) of each ref a bundle's header lists; anything else there is refused."""
    with open(bundle, "rb") as fh:
        head = fh.read(HEADER_LIMIT)
    text, sep, _ = head.partition(b"\n\n")
    if not sep:
        raise MuxError("the session's bundle has no complete header; nothing was fetched")
    lines = text.decode("ascii", "replace").split("\n")
    if lines[0] not in ("# v2 git bundle", "# v3 git bundle"):
        raise MuxError("the session's bundle is not a git bundle; nothing was fetched")
    refs = []
    for line in lines[1:]:
        if line.startswith("@"):  # a v3 capability (object-format, filter)
            if line not in ("@object-format=sha1", "@object-format=sha256"):
                raise MuxError(f"the session's bundle asks for {gitbox.escape(line[:80])!r}; nothing was fetched")
            continue
        sha, _, ref = line.partition(" ")
        m = _BRANCH.fullmatch(ref)
        if not COMMIT.fullmatch(sha) or m is None or ".." in ref or ref.endswith((".lock", "/", ".")):
            raise MuxError(f"the session's bundle lists {gitbox.escape(line[:120])!r}, which is not a branch; "
                           "nothing was fetched")
        refs.append((sha, m.group(1)))
    return refs


def default_into(session: Session, cwd: Path) -> Path:
    """The local --repo source, else the repository in the current directory."""
    if session.repo:
        source = local_path(session.repo)
        if source is not None and Path(source).is_dir():
            return Path(source)
    return cwd


def check_into(runner: Runner, into: Path) -> Path:
    """``into`` as an existing git repository outside mux's data dir (never a session's tree)."""
    into = into.absolute()
    data = Path(paths.data_dir()).absolute()
    resolved = into.resolve()
    if resolved == data.resolve() or resolved.is_relative_to(data.resolve()):
        raise ConfigError(f"--into {into}: that is inside mux's data dir ({data}), where sessions' files are; "
                          "host git never opens them", hint="give your own repository: --into PATH")
    if not into.is_dir():
        raise ConfigError(f"--into {into}: no such directory")
    found = runner.query(["git", "-C", str(into), "rev-parse", "--git-dir"], check=False)
    if found.returncode != 0:
        raise ConfigError(f"--into {into}: not a git repository",
                          hint="run mux fetch inside your repository, or give one with --into PATH")
    return into


def fetch(runner: Runner, name: str, *, into: Path | None, quiet: bool = False) -> None:
    from mux.session.sessions import find  # here: breaks the map (test_layers.py)

    session = find(runner, name)
    tree, _ = gitbox.session_tree(runner, session)
    target = check_into(runner, into if into is not None else default_into(session, Path.cwd()))
    box = gitbox.box_argv(tree.image, tree.user, [tree], SCRIPT)
    if runner.dry_run:
        bundle = Path(tempfile.gettempdir(), "mux-fetch-XXXXXX", f"{name}.bundle")
        print(f"{quote(runner.argv(box))} > {quote([bundle])}", file=runner.out)
        runner.show(fetch_argv(target, bundle, name))
        return
    with tempfile.TemporaryDirectory(prefix="mux-fetch-") as tmp:
        bundle = Path(tmp, f"{name}.bundle")
        code, why = gitbox.run_to_file(runner, box, bundle)
        if code != 0:
            why = why or f"exit status {code}"
            if code == 125 or (code in (126, 127) and "git" not in why):
                why = f"the git box (image {tree.image}) could not run: {why}"
            raise MuxError(f"cannot fetch session {name!r}: {why}")
        if bundle.stat().st_size > BUNDLE_LIMIT:
            raise MuxError(f"cannot fetch session {name!r}: its branches make a bundle of more than "
                           f"{BUNDLE_LIMIT >> 30} GiB", hint="`mux cp` the files you need instead")
        refs = bundle_refs(bundle)
        runner.run(fetch_argv(target, bundle, name), error=MuxError,
                   env={"GIT_TERMINAL_PROMPT": "0", "GIT_ALLOW_PROTOCOL": "file"})
    if not quiet:
        shown = ", ".join(f"mux/{name}/{branch}" for _, branch in refs)
        print(f"Fetched {len(refs)} branch{'' if len(refs) == 1 else 'es'} of session {name} into "
              f"{gitbox.escape(str(target))}: {shown}", file=sys.stdout)
