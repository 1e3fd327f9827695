"""[docker.rust] cache_scope: who shares a session's compiler and cargo caches."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from mux.config import Config, DockerSettings, RustSettings, parse
from mux.configfile import loads
from mux.errors import ConfigError
from mux.session.plan import HostFacts, NewOptions, build_spec


def spec_for(tmp_path: Path, scope: str, workdir: str = "a", repo: str | None = None, name: str = "s1"):  # type: ignore[no-untyped-def]
    for d in ("a", "b", "bin"):
        (tmp_path / d).mkdir(exist_ok=True)
    binary = tmp_path / "bin/sccache"
    binary.write_bytes(b"\x7fELF" + b"\0" * 60)
    binary.chmod(0o755)
    rust = RustSettings(sccache=True, cache_dir=tmp_path / "cache", binary=binary, cargo_cache=True, cache_scope=scope)
    host = HostFacts(uid=1000, gid=1000, env={}, cwd=tmp_path / workdir, data_dir=tmp_path / "data",
                     now=datetime(2026, 1, 1, tzinfo=timezone.utc))
    return build_spec(Config(docker=DockerSettings(rust=rust)), NewOptions(name=name, repo=repo), host)


def cache_of(spec) -> str:  # type: ignore[no-untyped-def]
    return next(m.source for m in spec.mounts if m.target == "/mux/sccache")


def registry_of(spec) -> str:  # type: ignore[no-untyped-def]
    return next(m.source for m in spec.mounts if m.target == "/mux/cargo/registry")


def test_repo_scope_shares_within_one_repository_only(tmp_path: Path) -> None:
    one, again = spec_for(tmp_path, "repo", name="s1"), spec_for(tmp_path, "repo", name="s2")
    other = spec_for(tmp_path, "repo", workdir="b", name="s3")
    assert cache_of(one) == cache_of(again) != cache_of(other)
    assert registry_of(one) == registry_of(again) != registry_of(other)
    assert Path(cache_of(one)).parent == tmp_path / "cache" and Path(cache_of(one)).name.startswith("repo-")
    remote = spec_for(tmp_path, "repo", repo="https://example.test/org/app.git")
    assert cache_of(remote) == cache_of(spec_for(tmp_path, "repo", workdir="b", repo="https://example.test/org/app.git/"))


def test_session_scope_is_the_sessions_own(tmp_path: Path) -> None:
    spec = spec_for(tmp_path, "session")
    assert cache_of(spec) == str(tmp_path / "data/sessions/s1/sccache")
    assert registry_of(spec) == str(tmp_path / "data/sessions/s1/cargo-cache/registry")


def test_global_scope_is_one_cache(tmp_path: Path) -> None:
    assert cache_of(spec_for(tmp_path, "global")) == cache_of(spec_for(tmp_path, "global", workdir="b")) \
        == str(tmp_path / "cache/global")


def test_default_cache_dir_is_muxs_own() -> None:
    assert RustSettings().cache_dir == Path("~/.cache/mux/sccache").expanduser()


@pytest.mark.parametrize("where", ["~/.cache/sccache", "~/.cache", "~/.cargo", "~/.cargo/registry"])
def test_a_tools_host_default_is_refused(tmp_path: Path, where: str) -> None:
    from mux.session.sccache import scoped

    with pytest.raises(ConfigError, match="a cache your own host builds use"):
        scoped(RustSettings(sccache=True, cache_dir=Path(where).expanduser()), source="x", session_dir=tmp_path)


def test_bad_scope_names_the_choices(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cache_scope: must be one of repo, session, global, got 'shared'"):
        parse(loads('[docker.rust]\ncache_scope = "shared"\n'), tmp_path / "c.toml", {})
