"""Cloning a session's repository, through a per-remote object cache.

Network remotes are first fetched into a bare mirror under
``<data_dir>/cache/git/<hash>.git``; the session is then cloned from the real
URL with ``--reference <mirror> --dissociate``, so only objects the mirror lacks
cross the network and the finished clone owns all its objects (deleting the
cache cannot break it). Local sources need no cache: a local path or file:// URL is
cloned through git's transport (``--no-local``), never with hardlinks or copied
object files: the session's agent writes its clone, and no file of it may be a
file of the user's repository (rewriting a hardlinked object in the session would
rewrite the user's history).

The clone is made in a hidden sibling directory and renamed into place only when
complete, so ``dest`` either is a whole clone or does not exist.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from mux import paths
from mux.errors import ConfigError, MuxError
from mux.session.layout import remove_tree
from mux.workspace.repo import gitcmd
from mux.workspace.repo.errors import RepoError, RepoInterrupted
from mux.workspace.repo.gitcmd import Outcome, ProgressCallback
from mux.workspace.repo.urls import (
    NETWORK_SCHEMES,
    is_scp_like,
    redact_url,
    url_credentials,
    validate_branch,
    validate_repo_url,
)

MIRROR_REFSPECS = ("+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")


@dataclass(frozen=True)
class ClonedRepo:
    path: Path
    url: str  # redacted: safe for labels and messages
    branch: str  # what is checked out (the remote's default when none was asked for)


@dataclass(frozen=True)
class _Source:
    url: str  # as validated (a local path made absolute); may hold credentials
    public: str  # what git is told and origin records: no credentials
    cached: bool  # fetched through the mirror (network remotes only)
    extra: tuple[tuple[str, str], ...] = ()  # e.g. http.proxy: the session's proxy, secret included

    @property
    def config(self) -> list[tuple[str, str]]:
        # git rewrites the public URL to the credentialed one in memory only, so
        # the secret is in neither argv nor .git/config (the clone is mounted
        # into the container). The same holds for the extra settings.
        rewrite = [(f"url.{self.url}.insteadOf", self.public)] if self.url != self.public else []
        return rewrite + list(self.extra)

    @property
    def local_dir(self) -> Path | None:
        if self.cached:
            return None
        return Path(unquote(urlsplit(self.url).path)) if self.url.startswith("file:") else Path(self.url)


def _source(url: str, extra: Sequence[tuple[str, str]] = ()) -> _Source:
    checked = validate_repo_url(url)
    scheme = checked.split("://", 1)[0].lower() if "://" in checked else ""
    cached = scheme in NETWORK_SCHEMES or (not scheme and is_scp_like(checked))
    return _Source(checked, redact_url(checked), cached, tuple(extra))


def cache_path(url: str) -> Path:
    """The bare mirror that caches ``url``'s objects (same remote, any credentials)."""
    key = hashlib.sha256(redact_url(url).rstrip("/").encode()).hexdigest()[:24]
    return Path(paths.data_dir(), "cache", "git", f"{key}.git")


# -- the commands, shared by clone() and its dry-run ---------------------------------


def _init_commands(mirror: Path) -> list[list[str]]:
    # No automatic gc: git would detach it into the background, where it would
    # repack (and prune) after our lock is released, under a clone reading it.
    return [["git", "init", "--quiet", "--bare", str(mirror)],
            ["git", "-C", str(mirror), "config", "gc.auto", "0"]]


def _fetch_command(mirror: Path, source: _Source) -> list[str]:
    return ["git", "-C", str(mirror), "fetch", "--prune", "--", source.public, *MIRROR_REFSPECS]


def _clone_command(source: _Source, dest: Path, branch: str | None, mirror: Path | None) -> list[str]:
    argv = ["git", "clone"]
    if mirror is not None:
        argv += ["--reference", str(mirror), "--dissociate"]
    else:  # a local source: through the transport, so the clone shares no file with it
        argv += ["--no-local"]
    if branch:
        argv += ["--branch", branch]
    return [*argv, "--", source.public, str(dest)]


def _create_branch_command(dest: Path, branch: str) -> list[str]:
    return ["git", "-C", str(dest), "switch", "--quiet", "--create", branch]


def _has_branch_on_disk(repo: Path, branch: str) -> bool:
    """Whether ``repo`` (bare or work tree) has ``refs/heads/<branch>``, from its files."""
    git_dir = repo / ".git" if (repo / ".git").is_dir() else repo
    if (git_dir / "refs" / "heads" / branch).is_file():
        return True
    try:
        packed = (git_dir / "packed-refs").read_text(errors="replace")
    except OSError:
        return False
    return any(line.endswith(f" refs/heads/{branch}") for line in packed.splitlines())


def clone_commands(url: str, dest: Path, branch: str | None) -> list[list[str]]:
    """The git commands a user could type to get what :func:`clone` makes.

    Reads no network and imports no GitPython (for ``--dry-run``). Whether
    ``branch`` already exists is judged from the local cache (or the local
    source); when unknown, the commands create it. Credentials are left out of
    the printed URL.
    """
    source = _source(url)
    if branch:
        validate_branch(branch)
    commands: list[list[str]] = []
    mirror = cache_path(source.url) if source.cached else None
    if mirror is not None:
        if not _mirror_ok(mirror):
            commands += _init_commands(mirror)
        commands.append(_fetch_command(mirror, source))
    refs_repo = mirror or source.local_dir
    exists = bool(branch and refs_repo is not None and _has_branch_on_disk(refs_repo, branch))
    commands.append(_clone_command(source, dest, branch if exists else None, mirror))
    if branch and not exists:
        commands.append(_create_branch_command(dest, branch))
    return commands


# -- cloning ------------------------------------------------------------------------


def clone(
    url: str,
    dest: Path,
    branch: str | None,
    *,
    progress: bool,
    on_progress: ProgressCallback | None = None,
    git_config: Sequence[tuple[str, str]] = (),
) -> ClonedRepo:
    """Clone ``url`` into ``dest`` (which must not exist, or be empty).

    ``branch``: checked out if the remote has it, else created from the default
    branch; None means the remote's default branch. ``progress`` shows git's
    progress on stderr; ``on_progress(stage, current, total)``, if given, gets it
    instead (an exception it raises aborts the clone like Ctrl-C). ``git_config``
    pairs reach git as GIT_CONFIG_* variables (never argv or a file): mux passes
    ``http.proxy`` there to clone through a session's credential proxy.

    Any failure, including Ctrl-C and SIGTERM, leaves no ``dest`` and raises
    :class:`RepoError` with one line that never contains a credential.
    """
    try:
        source = _source(url, git_config)
        if branch:
            validate_branch(branch)
    except ConfigError as exc:
        raise RepoError(exc.message, hint=exc.hint) from None
    dest = Path(dest).absolute()
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise RepoError(f"cannot clone into {dest}: it already exists and is not empty")
    printer = _ProgressPrinter() if progress and on_progress is None else None
    callback = on_progress or printer
    created = _make_parents(dest.parent)
    work = dest.parent / f".{dest.name}.partial-{os.getpid()}"
    try:
        with gitcmd.sigterm_raises():
            result = _clone_into(source, work, branch, callback)
            os.replace(work, dest)  # replaces an empty dest; never leaves a half clone
    except BaseException as exc:  # noqa: BLE001 - Ctrl-C and SIGTERM must clean up too
        # dest was absent or empty when we started, so whatever is there now is ours.
        _discard([work, dest], created)
        raise _as_repo_error(exc, source) from None
    finally:
        if printer is not None:
            printer.finish()
    return ClonedRepo(dest, source.public, result)


def _clone_into(source: _Source, work: Path, branch: str | None, callback: ProgressCallback | None) -> str:
    if not source.cached:
        exists = bool(branch and _local_has_branch(source, branch))
        _step(_clone_command(source, work, branch if exists else None, None), source, callback)
    else:
        mirror = cache_path(source.url)
        with _cache_lock(mirror) as lock:
            _refresh_mirror(mirror, source, callback)
            exists = bool(branch and gitcmd.run(
                ["-C", mirror, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}"]).ok)
            # Other sessions may clone from the mirror too; only fetching needs it alone.
            fcntl.flock(lock, fcntl.LOCK_SH)
            _step(_clone_command(source, work, branch if exists else None, mirror), source, callback)
    if branch and not exists:
        _step(_create_branch_command(work, branch), source, None)
    head = gitcmd.run(["-C", work, "symbolic-ref", "--quiet", "--short", "HEAD"])
    return head.stdout.strip() if head.ok else ""


def _local_has_branch(source: _Source, branch: str) -> bool:
    found = gitcmd.run(["ls-remote", "--exit-code", "--heads", "--", source.public, f"refs/heads/{branch}"])
    if found.status not in (0, 2):  # 2: no such branch; anything else: git could not read it
        raise _GitFailed(["git", "ls-remote"], found)
    return found.ok


def _refresh_mirror(mirror: Path, source: _Source, callback: ProgressCallback | None) -> None:
    fresh = not _mirror_ok(mirror)
    if fresh:
        shutil.rmtree(mirror, ignore_errors=True)  # a half-made mirror from a killed run
        for argv in _init_commands(mirror):
            _step(argv, source, None)
    try:
        _step(_fetch_command(mirror, source), source, callback)
    except BaseException:
        if fresh:  # a bad URL or password must not leave an empty cache behind
            shutil.rmtree(mirror, ignore_errors=True)
        raise


def _mirror_ok(mirror: Path) -> bool:
    return (mirror / "HEAD").is_file() and (mirror / "objects").is_dir() and (mirror / "config").is_file()


class _GitFailed(Exception):
    def __init__(self, argv: list[str], outcome: Outcome) -> None:
        super().__init__(argv[1] if argv[1] != "-C" else argv[3])
        self.argv = argv
        self.outcome = outcome


def _step(argv: list[str], source: _Source, callback: ProgressCallback | None) -> None:
    args = argv[1:]
    if args[0] in ("clone", "fetch") or (args[0] == "-C" and args[2] == "fetch"):
        at = args.index("clone") if "clone" in args else args.index("fetch")
        args.insert(at + 1, "--progress")  # git prints progress only to a terminal otherwise
        outcome = gitcmd.stream(args, config=source.config, on_progress=callback)
    else:
        outcome = gitcmd.run(args, config=source.config)
    if not outcome.ok:
        raise _GitFailed(argv, outcome)


@contextmanager
def _cache_lock(mirror: Path) -> Iterator[int]:
    """Hold ``<mirror>.lock`` exclusively (the caller may downgrade it to shared)."""
    mirror.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(mirror.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)  # closing releases the lock


def _make_parents(parent: Path) -> list[Path]:
    """Create ``parent`` and its missing ancestors; return those created, deepest first."""
    missing = []
    for p in [parent, *parent.parents]:
        if p.exists():
            break
        missing.append(p)
    parent.mkdir(parents=True, exist_ok=True)
    return missing


def _discard(dirs: list[Path], created: list[Path]) -> None:
    # git's helpers (index-pack) may outlive a killed git for a moment and
    # recreate files; retry rather than leave a partial clone behind.
    for _ in range(50):
        try:
            for d in dirs:
                remove_tree(d)
            break
        except (OSError, MuxError):  # RepoError is one too
            time.sleep(0.05)
    for p in created:
        try:
            p.rmdir()
        except OSError:
            break


class _ProgressPrinter:
    """git's own progress look, on one stderr line that is ended when done."""

    def __init__(self) -> None:
        self.dirty = False

    def __call__(self, stage: str, current: int, total: int | None) -> None:
        count = f"{100 * current // total}% ({current}/{total})" if total else str(current)
        sys.stderr.write(f"\r{stage}: {count}\033[K")
        sys.stderr.flush()
        self.dirty = True

    def finish(self) -> None:
        if self.dirty:
            sys.stderr.write("\n")
            self.dirty = False


def _as_repo_error(exc: BaseException, source: _Source) -> RepoError:
    shown = source.public
    if isinstance(exc, RepoError):
        return exc
    if isinstance(exc, (KeyboardInterrupt, gitcmd.Terminated)):
        return RepoInterrupted(f"clone of {shown} interrupted; nothing was kept")
    if isinstance(exc, _GitFailed):
        return _explain(exc, source)
    return RepoError(f"clone of {shown} failed: {_scrub(str(exc) or type(exc).__name__, source)}")


_AUTH = ("authentication failed", "could not read username", "could not read password",
         "terminal prompts disabled", "http 401", "http 403", "returned error: 401",
         "returned error: 403", "permission denied (publickey")
_UNREACHABLE = ("could not resolve host", "connection refused", "failed to connect",
                "couldn't connect", "connection timed out", "network is unreachable",
                "no route to host", "could not resolve hostname")
_MISSING = ("not found", "does not appear to be a git repository", "does not exist",
            "returned error: 404")


def _explain(failure: _GitFailed, source: _Source) -> RepoError:
    shown = source.public
    lines = [_scrub(line, source) for line in failure.outcome.lines if line.strip()]
    text = "\n".join(lines).lower()
    errors = [ln for ln in lines if ln.startswith(("fatal:", "error:"))] or lines or [""]
    detail = errors[-1].removeprefix("fatal: ").removeprefix("error: ").strip()
    detail = detail or f"exit status {failure.outcome.status}"
    if any(s in text for s in _AUTH):
        hint = ("for ssh, check `ssh -T` and your ssh agent"
                if "publickey" in text else
                "give git credentials through a credential helper (`git help credentials`) "
                "or in the URL, and check they can read this repository")
        return RepoError(f"authentication failed for {shown}", hint=hint)
    if any(s in text for s in _UNREACHABLE):
        return RepoError(f"cannot reach {shown}: {detail}", hint="check the URL and your network")
    if "remote branch" in text and "not found" in text:
        return RepoError(f"cannot clone {shown}: {detail}")
    if any(s in text for s in _MISSING):
        return RepoError(f"no git repository at {shown}: {detail}", hint="check the URL")
    return RepoError(f"git {failure} of {shown} failed: {detail}")


def _scrub(text: str, source: _Source) -> str:
    text = redact_url(text.replace(source.url, source.public))
    secrets = url_credentials(source.url)
    secrets += [c for _, value in source.extra for c in url_credentials(value)]
    for secret in secrets:
        text = text.replace(secret, "***")
    return text
