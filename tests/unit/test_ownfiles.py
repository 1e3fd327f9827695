"""mux's own files (config, data dir, CA key, session registry) are never a session's."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from mux import ownfiles
from mux.config import Config, DockerSettings
from mux.errors import ConfigError
from mux.session.plan import HostFacts, NewOptions, build_spec


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    home = tmp_path / "home"
    data = home / ".local/share/mux"
    for d in (data / "proxy", home / ".config/mux", home / "proj", tmp_path / "elsewhere/cfg"):
        d.mkdir(parents=True)
    (data / "proxy/mitmproxy-ca.pem").write_text("key")
    (data / "proxy/sessions.json").write_text("{}")
    (tmp_path / "elsewhere/cfg/config.toml").write_text("")
    (home / "link").symlink_to(data)
    return {"home": home, "data": data, "tmp": tmp_path}


def host(layout: dict[str, Path], cwd: Path) -> HostFacts:
    return HostFacts(uid=1000, gid=1000, env={"HOME": str(layout["home"])}, cwd=cwd,
                     now=datetime(2026, 1, 1, tzinfo=timezone.utc), data_dir=layout["data"])


@pytest.mark.parametrize(("workdir", "how", "what"), [
    pytest.param("home", "contains", "mux's config directory", id="home"),
    pytest.param("home/.local", "contains", "mux's data directory", id="parent-of-data"),
    pytest.param("home/.local/share/mux", "is", "mux's data directory", id="data-dir"),
    pytest.param("home/.local/share/mux/proxy", "lies inside", "mux's data directory", id="proxy-dir"),
    pytest.param("home/.config", "contains", "mux's config directory", id="config-parent"),
    pytest.param("home/.config/mux", "is", "mux's config directory", id="config-dir"),
    pytest.param("home/link", "is", "mux's data directory", id="symlink-to-data"),
    pytest.param("elsewhere", "contains", "mux's config file", id="holds-the-config-file"),
])
def test_workdir_refused(layout: dict[str, Path], workdir: str, how: str, what: str) -> None:
    config = Config(source=layout["tmp"] / "elsewhere/cfg/config.toml", docker=DockerSettings(image="img"))
    with pytest.raises(ConfigError) as exc:
        build_spec(config, NewOptions(name="s1", workdir=layout["tmp"] / workdir), host(layout, layout["home"]))
    assert f" {how} {what} (" in exc.value.message
    assert exc.value.message.startswith("--workdir ")
    assert exc.value.exit_code == 2


@pytest.mark.parametrize(("volume", "what"), [
    pytest.param("home/.local/share/mux/proxy/mitmproxy-ca.pem:/k:ro", "the proxy's CA key", id="ca-key"),
    pytest.param("home/.local/share/mux/proxy/sessions.json:/r", "the proxy's session registry", id="registry"),
    pytest.param("home:/h:ro", "mux's config directory", id="home-read-only"),
])
def test_volume_refused(layout: dict[str, Path], volume: str, what: str) -> None:
    opts = NewOptions(name="s1", volumes=(f"{layout['tmp']}/{volume}",))
    with pytest.raises(ConfigError, match=f"^volume .* host path .*{what}"):
        build_spec(Config(docker=DockerSettings(image="img")), opts, host(layout, layout["home"] / "proj"))


def test_config_volumes_and_copy_source_refused(layout: dict[str, Path]) -> None:
    config = Config(docker=DockerSettings(image="img", volumes=(f"{layout['data']}:/d",)))
    with pytest.raises(ConfigError, match="^volume"):
        build_spec(config, NewOptions(name="s1"), host(layout, layout["home"] / "proj"))
    with pytest.raises(ConfigError, match="^--copy source .* contains"):
        build_spec(Config(docker=DockerSettings(image="img")), NewOptions(name="s1", copy=True),
                   host(layout, layout["home"]))


def test_ordinary_paths_pass(layout: dict[str, Path]) -> None:
    opts = NewOptions(name="s1", volumes=(f"{layout['tmp']}/elsewhere:/e", "cache:/cache"))
    spec = build_spec(Config(docker=DockerSettings(image="img")), opts, host(layout, layout["home"] / "proj"))
    assert spec.workdir == layout["home"] / "proj"


def test_a_repo_session_workdir_is_mux_own_clone(layout: dict[str, Path]) -> None:
    import subprocess

    subprocess.run(["git", "init", "-q", str(layout["tmp"] / "src")], check=True)
    opts = NewOptions(name="s1", repo=str(layout["tmp"] / "src"))
    spec = build_spec(Config(docker=DockerSettings(image="img")), opts,
                      host(layout, layout["home"]))  # cwd is HOME: no workdir of it is mounted
    assert spec.workdir.is_relative_to(layout["data"])


def test_own_paths_without_a_config_file(tmp_path: Path) -> None:
    found = dict((what, p) for p, what in ownfiles.own_paths(tmp_path / "d", None, {"HOME": str(tmp_path)}))
    assert found["mux's config directory"] == tmp_path / ".config/mux"
    assert found["the proxy's CA key"] == tmp_path / "d/proxy/mitmproxy-ca.pem"


def test_an_agents_share_is_never_muxs_config(layout: dict[str, Path]) -> None:
    from mux.config import parse
    from mux.configfile import loads

    home = layout["home"]
    (home / ".config/mux/config.toml").write_text("")
    binary = layout["tmp"] / "claude"
    binary.write_bytes(b"\x7fELF" + b"\0" * 60)
    binary.chmod(0o755)
    text = (f'[agents.claude]\nbinary = "{binary}"\nshare = ["~/.config/mux"]\n'
            '[credentials.anthropic]\ndomains = ["api.anthropic.com"]\nheader = "x-api-key"\nvalue = "${KEY}"\n')
    config = parse(loads(text), layout["tmp"] / "elsewhere/cfg/config.toml", {"HOME": str(home)})
    with pytest.raises(ConfigError, match="is mux's config directory"):
        build_spec(config, NewOptions(name="s1", agent="claude"),
                   HostFacts(uid=1000, gid=1000, env={"HOME": str(home)}, cwd=home / "proj",
                             now=datetime(2026, 1, 1, tzinfo=timezone.utc), data_dir=layout["data"]))
