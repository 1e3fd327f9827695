"""mux's own files are never in a session.

A session's agent that can read mux's data directory has the proxy's CA key and
every session's proxy secret; one that can write mux's config adds its own domain
to a credential rule, and the next proxy start sends it the real token. So a
workdir, a ``volumes`` entry or a ``--copy`` source that is, contains or lies
inside any of these is refused before anything is made (exit 2), naming the path.
Files holding secrets are written readable by the user only (``write_private``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from mux.errors import ConfigError


def own_paths(data_dir: str | os.PathLike[str], config_source: Path | None,
              env: Mapping[str, str]) -> list[tuple[Path, str]]:
    """(path, what it is) for every file or directory of mux's that a session must not see."""
    home = env.get("HOME") or str(Path.home())
    xdg = env.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    data = Path(data_dir)
    proxy = data / "proxy"
    found = [
        (Path(xdg) / "mux", "mux's config directory"),
        (data, "mux's data directory (session files, the proxy's CA key and secrets)"),
        (proxy / "mitmproxy-ca.pem", "the proxy's CA key"),
        (proxy / "sessions.json", "the proxy's session registry"),
    ]
    if config_source is not None:
        found.append((config_source, "mux's config file"))
        if config_source.parent.name == "mux":  # /etc/mux, a config directory of its own
            found.append((config_source.parent, "mux's config directory"))
    return [(_resolved(p), what) for p, what in found]


def _resolved(path: Path) -> Path:
    return Path(os.path.realpath(os.path.expanduser(path)))


def refuse(path: Path, what: str, own: list[tuple[Path, str]]) -> None:
    """ConfigError if ``path`` (a host path a session would mount) is, contains or
    lies inside one of ``own``."""
    here = _resolved(path)
    # The most telling match first: the very path, then the closest one it lies
    # inside (the CA key rather than the data dir), then the first it contains.
    matches = ([("is", m, d) for m, d in own if here == m]
               + [("lies inside", m, d) for m, d in sorted(own, key=lambda o: -len(o[0].parts))
                  if here.is_relative_to(m)]
               + [("contains", m, d) for m, d in own if m.is_relative_to(here)])
    if matches:
        how, mine, desc = matches[0]
        raise ConfigError(
            f"{what} {here} {how} {desc} ({mine}): a session never sees mux's own files",
            hint="work in a project directory of its own (not your home), or use --repo",
        )


def check_spec_sources(workdir: Path | None, volumes: tuple[str, ...], own: list[tuple[Path, str]],
                       *, workdir_what: str) -> None:
    """The workdir (None: a clone mux makes) and every host path among ``volumes``."""
    if workdir is not None:
        refuse(workdir, workdir_what, own)
    for spec in volumes:
        source = spec.split(":")[0]
        if source.startswith("/"):  # a named volume is docker's, not a host path
            refuse(Path(source), f"volume {spec!r}: host path", own)


def write_private(path: Path, data: str | bytes) -> None:
    """Write a file readable by the user only, atomically (no window with wider modes)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    raw = data.encode() if isinstance(data, str) else data
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, raw)
    finally:
        os.close(fd)
    os.replace(tmp, path)
