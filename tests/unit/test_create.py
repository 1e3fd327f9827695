"""mux.session.plan.build_spec: config + flags + fixed host facts -> SessionSpec (pure)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from mux import __version__
from mux.config import Config, DockerSettings, GitSettings, Limits
from mux.errors import ConfigError
from mux.session.plan import HostFacts, NewOptions, build_spec, git_env
from tests.cli.muxcli import PROTECTED

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


@pytest.fixture
def host(tmp_path: Path) -> HostFacts:
    (tmp_path / "proj" / "sub").mkdir(parents=True)
    return HostFacts(uid=1000, gid=1001, env={"TOKEN": "t0k", "HOME": "/home/u"}, cwd=tmp_path / "proj",
                     now=NOW, git_name="Host Name", git_email="host@example.com", data_dir=tmp_path / "data")


def cfg(**docker: object) -> Config:
    return Config(source=Path("/etc/mux/config.toml"), docker=DockerSettings(**docker))  # type: ignore[arg-type]


def test_defaults(host: HostFacts) -> None:
    spec = build_spec(Config(), NewOptions(name="s1"), host)
    workdir = host.cwd.resolve()
    assert spec.name == "s1" and spec.container == "mux-s1"
    assert spec.image == "ubuntu:22.04"
    assert spec.workdir == workdir
    assert spec.labels == (
        ("mux.session", "s1"), ("mux.backend", "docker"), ("mux.workdir", str(workdir)),
        ("mux.image", "ubuntu:22.04"), ("mux.created", "2026-01-02T03:04:05Z"), ("mux.version", __version__),
    )
    assert spec.user == "1000:1001"
    assert spec.home == host.data_dir / "sessions" / "s1" / "home"
    assert spec.env == tuple(git_env("Host Name", "host@example.com"))
    assert spec.command == () and spec.shell == "/bin/bash"
    session = host.data_dir / "sessions" / "s1"
    assert tuple(m.text for m in spec.mounts) == (f"{session}/git:/workspace/.git",  # mux/workspace/protect.py
                            *(f"{workdir}/{rel}:/workspace/{rel}:ro" for rel in PROTECTED))
    assert spec.git_dir == session / "git" and spec.git_source is None
    assert (workdir / ".envrc", False) in spec.placeholders and (workdir / ".git", True) in spec.placeholders
    assert spec.network is None and spec.limits == Limits() and spec.policy.pids_limit == 4096
    assert spec.stop_timeout == 10 and spec.pull is None


def test_git_env_injection_shape() -> None:
    assert git_env("N", "e@x") == [
        ("GIT_CONFIG_COUNT", "3"),
        ("GIT_CONFIG_KEY_0", "safe.directory"), ("GIT_CONFIG_VALUE_0", "/workspace"),
        ("GIT_CONFIG_KEY_1", "user.name"), ("GIT_CONFIG_VALUE_1", "N"),
        ("GIT_CONFIG_KEY_2", "user.email"), ("GIT_CONFIG_VALUE_2", "e@x"),
    ]
    assert git_env(None, None) == [
        ("GIT_CONFIG_COUNT", "1"), ("GIT_CONFIG_KEY_0", "safe.directory"), ("GIT_CONFIG_VALUE_0", "/workspace"),
    ]
    assert git_env(None, "e@x")[0] == ("GIT_CONFIG_COUNT", "2")
    assert git_env(None, "e@x")[3:] == [("GIT_CONFIG_KEY_1", "user.email"), ("GIT_CONFIG_VALUE_1", "e@x")]


def test_git_config_wins_over_host_identity(host: HostFacts) -> None:
    config = Config(git=GitSettings(user_name="Config Name"))
    spec = build_spec(config, NewOptions(name="s1"), host)
    assert spec.env == tuple(git_env("Config Name", "host@example.com"))


def test_no_git_injection(host: HostFacts) -> None:
    config = Config(git=GitSettings(inject_config=False), docker=DockerSettings(env=("A=1",)))
    spec = build_spec(config, NewOptions(name="s1"), host)
    assert spec.env == (("A", "1"),)


def test_flags_override_config(host: HostFacts) -> None:
    config = cfg(image="alpine:3", network="bridge", pull="always",
                 limits=Limits(memory="2g", cpus="1", memory_swap="4g"))
    opts = NewOptions(name="s1", image="busybox:1", network="host", memory="8g", cpus="4",
                      memory_swap="16g", pull="never")
    spec = build_spec(config, opts, host)
    assert spec.image == "busybox:1"
    assert ("mux.image", "busybox:1") in spec.labels
    assert spec.network == "host"
    assert spec.limits == Limits(memory="8g", cpus="4", memory_swap="16g") and spec.policy.pids_limit == 4096
    assert spec.pull == "never"


def test_config_used_when_no_flags(host: HostFacts) -> None:
    config = cfg(image="alpine:3", network="none", pull="always", shell="/bin/zsh", stop_timeout=2,  # noqa: S604
                 limits=Limits(memory="2g", cpus="1"))
    spec = build_spec(config, NewOptions(name="s1"), host)
    assert (spec.image, spec.network, spec.pull, spec.shell, spec.stop_timeout) == (
        "alpine:3", "none", "always", "/bin/zsh", 2)
    assert spec.limits == Limits(memory="2g", cpus="1") and spec.policy.pids_limit == 4096


def test_volumes_and_env_combine(host: HostFacts) -> None:
    config = cfg(volumes=("/cfg:/cfg:ro",), env=("A=1", "TOKEN"))._replace(git=GitSettings(inject_config=False))
    opts = NewOptions(name="s1", volumes=("./sub:/sub", "vol:/v"), env=("B=2", "A=override"))
    spec = build_spec(config, opts, host)
    assert tuple(m.text for m in spec.mounts)[:3] == ("/cfg:/cfg:ro", f"{host.cwd}/sub:/sub", "vol:/v")
    # Later -e wins in docker, so flags come after the config's entries.
    assert spec.env == (("A", "1"), ("TOKEN", None), ("B", "2"), ("A", "override"))


def test_workdir_flag_is_relative_to_cwd(host: HostFacts) -> None:
    spec = build_spec(Config(), NewOptions(name="s1", workdir=Path("sub")), host)
    assert spec.workdir == host.cwd / "sub"
    assert ("mux.workdir", str(host.cwd / "sub")) in spec.labels


def test_command_is_kept(host: HostFacts) -> None:
    spec = build_spec(Config(), NewOptions(name="s1", command=("claude", "-p", "hi")), host)
    assert spec.command == ("claude", "-p", "hi")


def test_run_as_user_off(host: HostFacts) -> None:
    spec = build_spec(cfg(run_as_user=False), NewOptions(name="s1"), host)
    assert spec.user is None and spec.home is None


def test_home_is_outside_the_workspace(host: HostFacts) -> None:
    spec = build_spec(Config(), NewOptions(name="s1"), host)
    assert spec.home is not None
    assert not spec.home.is_relative_to(spec.workdir)


@pytest.mark.parametrize(("opts", "config", "message"), [
    pytest.param(NewOptions(name="-bad"), Config(), "invalid session name", id="name"),
    pytest.param(NewOptions(name="s", image="Bad"), Config(), "--image: invalid image", id="image"),
    pytest.param(NewOptions(name="s", workdir=Path("missing")), Config(), "does not exist", id="workdir"),
    pytest.param(NewOptions(name="s", network="a b"), Config(), "--network: invalid network", id="network"),
    pytest.param(NewOptions(name="s", memory="lots"), Config(), "--memory: invalid memory size", id="memory"),
    pytest.param(NewOptions(name="s", cpus="0"), Config(), "--cpus: invalid CPU count", id="cpus"),
    pytest.param(NewOptions(name="s", volumes=("/tmp",)), Config(), "--volume: invalid volume", id="volume"),
    pytest.param(NewOptions(name="s", env=("=x",)), Config(), "--env: invalid environment entry", id="env"),
    pytest.param(NewOptions(name="s", env=("ABSENT",)), Config(), "--env: 'ABSENT' passes", id="env-absent"),
    pytest.param(NewOptions(name="s"), Config(source=Path("/c.toml"), docker=DockerSettings(env=("GONE",))),
                 "/c.toml: [docker] env: 'GONE' passes", id="config-env-checked-against-host"),
    pytest.param(NewOptions(name="s", memory="4g", memory_swap="2g"), Config(),
                 "memory_swap '2g' is smaller than memory '4g'", id="swap-below-memory"),
    pytest.param(NewOptions(name="s", memory="4g"), cfg(limits=Limits(memory_swap="2g")),
                 "memory_swap '2g' is smaller than memory '4g'", id="flag-memory-vs-config-swap"),
    pytest.param(NewOptions(name="s", memory_swap="4g"), Config(), "--memory-swap needs a memory limit",
                 id="swap-without-memory"),
])
def test_rejected(host: HostFacts, opts: NewOptions, config: Config, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        build_spec(config, opts, host)


@pytest.mark.parametrize(("memory", "swap"), [
    pytest.param("4g", "4g", id="equal"), pytest.param("4g", "-1", id="unlimited"),
    pytest.param("1g", "1025m", id="just-above"),
])
def test_swap_accepted(host: HostFacts, memory: str, swap: str) -> None:
    spec = build_spec(Config(), NewOptions(name="s", memory=memory, memory_swap=swap), host)
    assert spec.limits == Limits(memory=memory, memory_swap=swap) and spec.policy.pids_limit == 4096


@pytest.mark.parametrize("target", ["/workspace", "/workspace/", "/home/mux"], ids=["workspace", "slash", "home"])
def test_volume_over_mux_own_mounts_is_refused(target: str, tmp_path: Path) -> None:
    (tmp_path / "proj").mkdir()
    host = HostFacts(uid=1000, gid=1000, env={}, cwd=tmp_path / "proj",
                     now=datetime(2026, 1, 1, tzinfo=timezone.utc), data_dir=tmp_path / "data")
    with pytest.raises(ConfigError, match="which mux mounts itself"):
        build_spec(Config(), NewOptions(name="s", volumes=(f"{tmp_path / 'proj'}:{target}",)), host)
