"""mux.config: finding, reading and checking the TOML file."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from mux import config as C
from mux import paths
from mux.config import Config, DockerSettings, GitSettings, Limits, RustSettings
from mux.configfile import MAX_CONFIG_BYTES, engine_settings, find_config, read_toml
from mux.errors import ConfigError


@pytest.fixture(autouse=True)
def no_ambient_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never read the real user or system config."""
    monkeypatch.delenv("MUX_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(paths, "SYSTEM_CONFIG", str(tmp_path / "etc" / "mux" / "config.toml"))


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> Config:
    return C.load(write(tmp_path, text), env={} if env is None else env)


def test_no_file_means_defaults() -> None:
    assert find_config() is None
    cfg = C.load()
    assert cfg == Config()
    assert cfg.docker.image == "ubuntu:22.04"
    assert cfg.docker.shell == "/bin/bash"
    assert cfg.docker.run_as_user is True
    assert cfg.docker.stop_timeout == 10
    assert cfg.git.inject_config is True


def test_comment_only_file_means_defaults_with_source(tmp_path: Path) -> None:
    cfg = load(tmp_path, "# nothing yet\n[docker]\n")
    assert cfg.source == tmp_path / "config.toml"
    assert cfg.docker == DockerSettings()
    assert cfg.git == GitSettings()


def test_every_key(tmp_path: Path) -> None:
    (tmp_path / "ssh").mkdir()
    home = tmp_path / "home"
    cfg = load(tmp_path, """
[docker]
image = "ghcr.io/org/agent:1.2"
volumes = ["./ssh:/root/.ssh:ro", "cargo-cache:/cargo"]
env = ["TERM=xterm-256color", "TOKEN"]
network = "host"
shell = "/usr/bin/zsh"
run_as_user = false
stop_timeout = 3
pull = "never"

[docker.limits]
memory = "4g"
cpus = 1.5
memory_swap = "-1"

[docker.rust]
sccache = true
cache_dir = "~/sc"
binary = "/opt/sccache"
cargo_cache = true

[git]
inject_config = false
user_name = "Ada Lovelace"
user_email = "ada@example.com"

[proxy]
port = 9000

[credentials.github]
domains = ["github.com"]
value = "${GH_TOKEN}"
""", env={"TOKEN": "t", "HOME": str(home)})
    # [proxy] is checked by mux.proxy.settings (its own tests); here only that it is kept.
    assert cfg._replace(proxy=None) == Config(
        source=tmp_path / "config.toml",
        docker=DockerSettings(  # noqa: S604
            image="ghcr.io/org/agent:1.2",
            volumes=(f"{tmp_path}/ssh:/root/.ssh:ro", "cargo-cache:/cargo"),
            env=("TERM=xterm-256color", "TOKEN"),
            network="host", shell="/usr/bin/zsh", run_as_user=False, stop_timeout=3, pull="never",
            limits=Limits(memory="4g", cpus="1.5", memory_swap="-1"),
            rust=RustSettings(sccache=True, cache_dir=Path("~/sc").expanduser(),
                              binary=Path("/opt/sccache"), cargo_cache=True),
        ),
        git=GitSettings(inject_config=False, user_name="Ada Lovelace", user_email="ada@example.com"),
        raw_proxy={"port": 9000},
        # Credential values are kept as written: only the proxy expands them.
        raw_credentials={"github": {"domains": ["github.com"], "value": "${GH_TOKEN}"}},
    )


@pytest.mark.parametrize(("toml", "env", "expected"), [
    pytest.param('image = "${IMG}"', {"IMG": "alpine:3"}, "alpine:3", id="var"),
    pytest.param('image = "${IMG:-busybox}"', {}, "busybox", id="default-when-unset"),
    pytest.param('image = "${IMG:-busybox}"', {"IMG": ""}, "busybox", id="default-when-empty"),
    pytest.param('image = "${IMG:-busybox}"', {"IMG": "alpine"}, "alpine", id="set-wins-over-default"),
    pytest.param('image = "${REG}/${NAME}:${TAG:-1}"', {"REG": "ghcr.io", "NAME": "x"}, "ghcr.io/x:1",
                 id="several"),
    pytest.param('image = "ubuntu:$TAG"', {"TAG": "x"}, None, id="bare-dollar-is-literal"),
])
def test_expansion(tmp_path: Path, toml: str, env: dict[str, str], expected: str | None) -> None:
    if expected is None:
        with pytest.raises(ConfigError, match="invalid image reference 'ubuntu:\\$TAG'"):
            load(tmp_path, f"[docker]\n{toml}\n", env)
        return
    assert load(tmp_path, f"[docker]\n{toml}\n", env).docker.image == expected


def test_expansion_in_lists_limits_and_git(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    cfg = load(tmp_path, """
[docker]
volumes = ["${BASE}/d:/d"]
env = ["A=${A_VALUE}", "B=${B:-two}"]
[docker.limits]
memory = "${MEM:-2g}"
[git]
user_email = "${EMAIL}"
""", env={"BASE": str(tmp_path), "A_VALUE": "one", "EMAIL": "e@x"})
    assert cfg.docker.volumes == (f"{tmp_path}/d:/d",)
    assert cfg.docker.env == ("A=one", "B=two")
    assert cfg.docker.limits.memory == "2g"
    assert cfg.git.user_email == "e@x"


def test_expanded_value_is_not_expanded_again(tmp_path: Path) -> None:
    cfg = load(tmp_path, '[git]\nuser_name = "${N}"\n', env={"N": "${OTHER}"})
    assert cfg.git.user_name == "${OTHER}"


@pytest.mark.parametrize(("toml", "where"), [
    pytest.param('[docker]\nimage = "${NOPE}"', "[docker] image", id="image"),
    pytest.param('[docker]\nenv = ["A=${NOPE}"]', "[docker] env", id="env-list"),
    pytest.param('[docker.limits]\nmemory = "${NOPE}"', "[docker.limits] memory", id="limits"),
    pytest.param('[docker.rust]\ncache_dir = "${NOPE}/x"', "[docker.rust] cache_dir", id="path"),
    pytest.param('[git]\nuser_name = "${NOPE}"', "[git] user_name", id="git"),
])
def test_unset_variable_names_file_and_key(tmp_path: Path, toml: str, where: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, toml + "\n")
    assert info.value.message.startswith(f"{tmp_path / 'config.toml'}: {where}: ")
    assert "${NOPE} is not set" in info.value.message
    assert "${NOPE:-value}" in info.value.message


def test_tilde_expands_in_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".ssh").mkdir()
    cfg = load(tmp_path, """
[docker]
volumes = ["~/.ssh:/root/.ssh:ro"]
[docker.rust]
cache_dir = "~/cache"
binary = "~/bin/sccache"
""")
    assert cfg.docker.volumes == (f"{tmp_path}/.ssh:/root/.ssh:ro",)
    assert cfg.docker.rust.cache_dir == tmp_path / "cache"
    assert cfg.docker.rust.binary == tmp_path / "bin" / "sccache"


def test_relative_volume_resolves_against_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "conf" / "data").mkdir(parents=True)
    monkeypatch.chdir("/")
    cfg = C.load(write(tmp_path / "conf", '[docker]\nvolumes = ["./data:/data"]\n'), env={})
    assert cfg.docker.volumes == (f"{tmp_path}/conf/data:/data",)


@pytest.mark.parametrize(("toml", "key", "allowed"), [
    pytest.param("colour = 1", "colour", "docker, git, proxy, credentials", id="top"),
    pytest.param("[dokcer]\nimage = 'x'", "dokcer", "docker, git", id="top-table"),
    pytest.param("[docker]\nimgae = 'x'", "[docker] imgae", "image, volumes", id="docker"),
    pytest.param("[docker.limits]\nmem = '4g'", "[docker.limits] mem", "memory, cpus, memory_swap",
                 id="limits"),
    pytest.param("[docker.rust]\nsccash = true", "[docker.rust] sccash", "sccache, cache_dir", id="rust"),
    pytest.param("[git]\nemail = 'x'", "[git] email", "inject_config, user_name, user_email", id="git"),
    pytest.param("[docker.extra]\nx = 1", "[docker] extra", "image, volumes", id="unknown-subtable"),
])
def test_unknown_keys(tmp_path: Path, toml: str, key: str, allowed: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, toml + "\n")
    bare = key.split()[-1]
    assert info.value.message.startswith(f"{tmp_path / 'config.toml'}: {key}: unknown key {bare!r}")
    assert f"(allowed: {allowed}" in info.value.message


@pytest.mark.parametrize(("toml", "message"), [
    pytest.param("docker = 1", "[docker] must be a table, got 1", id="docker-not-table"),
    pytest.param("git = 'x'", "[git] must be a table, got 'x'", id="git-not-table"),
    pytest.param("[docker]\nlimits = 4", "[docker.limits] must be a table, got 4", id="limits-not-table"),
    pytest.param("proxy = 1", "[proxy] must be a table, got 1", id="proxy-not-table"),
    pytest.param("credentials = []", "[credentials] must be a table, got []", id="credentials-not-table"),
    pytest.param("[docker]\nimage = 1", "[docker] image: expected a string, got 1", id="image-int"),
    pytest.param("[docker]\nvolumes = '/a:/b'", "[docker] volumes: expected a list of strings, got '/a:/b'",
                 id="volumes-string"),
    pytest.param("[docker]\nvolumes = [1]", "[docker] volumes: expected a list of strings, got item 1",
                 id="volumes-item"),
    pytest.param("[docker]\nenv = 'A=1'", "[docker] env: expected a list of strings", id="env-string"),
    pytest.param("[docker]\nnetwork = false", "[docker] network: expected a string, got False",
                 id="network-bool"),
    pytest.param("[docker]\nshell = ['/bin/sh']", "[docker] shell: expected a string", id="shell-list"),
    pytest.param("[docker]\nrun_as_user = 'yes'", "[docker] run_as_user: expected true or false, got 'yes'",
                 id="run-as-user-string"),
    pytest.param("[docker]\nrun_as_user = 1", "[docker] run_as_user: expected true or false, got 1",
                 id="run-as-user-int"),
    pytest.param("[docker]\nstop_timeout = '10'", "[docker] stop_timeout: expected a whole number, got '10'",
                 id="stop-timeout-string"),
    pytest.param("[docker]\nstop_timeout = true", "[docker] stop_timeout: expected a whole number, got True",
                 id="stop-timeout-bool"),
    pytest.param("[docker]\nstop_timeout = 1.5", "[docker] stop_timeout: expected a whole number, got 1.5",
                 id="stop-timeout-float"),
    pytest.param("[docker]\nstop_timeout = -1", "[docker] stop_timeout: must be at least 0, got -1",
                 id="stop-timeout-negative"),
    pytest.param("[docker]\npull = true", "[docker] pull: expected a string", id="pull-bool"),
    pytest.param("[docker.limits]\nmemory = true", "[docker.limits] memory: expected a string or a number",
                 id="memory-bool"),
    pytest.param("[docker.limits]\nmemory = 4.5", "[docker.limits] memory: expected a size like", id="memory-float"),
    pytest.param("[docker.limits]\ncpus = [2]", "[docker.limits] cpus: expected a string or a number",
                 id="cpus-list"),
    pytest.param("[docker.rust]\nsccache = 'no'", "[docker.rust] sccache: expected true or false", id="sccache"),
    pytest.param("[docker.rust]\ncache_dir = 1", "[docker.rust] cache_dir: expected a string", id="cache-dir"),
    pytest.param("[git]\ninject_config = 0", "[git] inject_config: expected true or false", id="inject"),
    pytest.param("[git]\nuser_name = 1", "[git] user_name: expected a string", id="user-name"),
])
def test_wrong_types(tmp_path: Path, toml: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, toml + "\n")
    assert info.value.message.startswith(f"{tmp_path / 'config.toml'}: {message}")


@pytest.mark.parametrize(("toml", "message"), [
    pytest.param("[docker.limits]\nmemory = 'lots'", "[docker.limits] memory: invalid memory size 'lots'",
                 id="memory-lots"),
    pytest.param("[docker.limits]\nmemory = '1k'", "[docker.limits] memory: memory size '1k' is too small",
                 id="memory-tiny"),
    pytest.param("[docker.limits]\nmemory = '-1'", "[docker.limits] memory: invalid memory size '-1'",
                 id="memory-unlimited"),
    pytest.param("[docker.limits]\nmemory_swap = 'lots'", "[docker.limits] memory_swap: invalid memory size",
                 id="swap-lots"),
    pytest.param("[docker.limits]\ncpus = 0", "[docker.limits] cpus: invalid CPU count 0", id="cpus-zero"),
    pytest.param("[docker.limits]\ncpus = 'two'", "[docker.limits] cpus: invalid CPU count 'two'", id="cpus-word"),
    pytest.param("[docker.limits]\ncpus = -2", "[docker.limits] cpus: invalid CPU count -2", id="cpus-negative"),
    pytest.param("[docker]\nvolumes = ['/tmp']", "[docker] volumes: invalid volume '/tmp'", id="volume-no-target"),
    pytest.param("[docker]\nvolumes = ['./nope:/x']", "[docker] volumes: volume './nope:/x': host path",
                 id="volume-missing"),
    pytest.param("[docker]\nvolumes = ['/tmp:/x:rx']", "[docker] volumes: invalid volume mode 'rx'",
                 id="volume-mode"),
    pytest.param("[docker]\nvolumes = ['C:\\x:/y']", "[docker] volumes: 'C:\\\\x:/y' looks like a Windows path",
                 id="volume-windows"),
    pytest.param("[docker]\nenv = ['=x']", "[docker] env: invalid environment entry '=x'", id="env-empty-name"),
    pytest.param("[docker]\nenv = ['NOT_ON_HOST']", "[docker] env: 'NOT_ON_HOST' passes the host's value",
                 id="env-bare-absent"),
    pytest.param("[docker]\nnetwork = 'my net'", "[docker] network: invalid network 'my net'", id="network"),
    pytest.param("[docker]\nnetwork = ''", "[docker] network: invalid network ''", id="network-empty"),
    pytest.param("[docker]\nimage = 'Ubuntu'", "[docker] image: invalid image reference 'Ubuntu'", id="image"),
    pytest.param("[docker]\nimage = ''", "[docker] image: invalid image reference ''", id="image-empty"),
    pytest.param("[docker]\nshell = 'bash'", "[docker] shell: must be an absolute path like /bin/bash, got 'bash'",
                 id="shell-relative"),
    pytest.param("[docker]\npull = 'sometimes'", "[docker] pull: must be one of missing, always, never, got",
                 id="pull"),
])
def test_bad_values(tmp_path: Path, toml: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, toml + "\n")
    assert info.value.message.startswith(f"{tmp_path / 'config.toml'}: {message}")


@pytest.mark.parametrize(("toml", "expected"), [
    pytest.param("memory = 8589934592", Limits(memory="8589934592"), id="memory-int-bytes"),
    pytest.param("memory = '512m'\nmemory_swap = '1g'", Limits(memory="512m", memory_swap="1g"), id="swap"),
    pytest.param("cpus = 2", Limits(cpus="2"), id="cpus-int"),
    pytest.param("cpus = '0.5'", Limits(cpus="0.5"), id="cpus-str"),
])
def test_good_limits(tmp_path: Path, toml: str, expected: Limits) -> None:
    assert load(tmp_path, f"[docker.limits]\n{toml}\n").docker.limits == expected


def test_bare_env_present_on_host(tmp_path: Path) -> None:
    assert load(tmp_path, "[docker]\nenv = ['TOKEN']\n", env={"TOKEN": "x"}).docker.env == ("TOKEN",)


# --- reading the file -------------------------------------------------------


def read_error(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        read_toml(path)
    return info.value.message


def test_not_toml(tmp_path: Path) -> None:
    path = write(tmp_path, "[docker\nimage = ubuntu\n")
    assert read_error(path).startswith(f"{path}: not valid TOML: ")


def test_yaml_is_not_toml(tmp_path: Path) -> None:
    path = write(tmp_path, "docker:\n  image: ubuntu\n")
    assert read_error(path).startswith(f"{path}: not valid TOML")


@pytest.mark.parametrize("text", [pytest.param("", id="empty"), pytest.param(" \n\t\n", id="whitespace")])
def test_empty_file(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        read_toml(path)
    assert info.value.message == f"{path}: config file is empty"
    assert "mux config init --force" in (info.value.hint or "")


def test_directory(tmp_path: Path) -> None:
    assert read_error(tmp_path) == f"{tmp_path}: is a directory, not a config file"


def test_directory_through_load(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        C.load(tmp_path)


def test_unreadable_even_as_root(tmp_path: Path) -> None:
    # Permission bits do not stop root; a socket cannot be opened by anyone.
    path = tmp_path / "config.toml"
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(path))
        message = read_error(path)
    finally:
        sock.close()
    assert message.startswith(f"{path}: cannot read the config file: ")
    assert message.endswith(os.strerror(6))  # ENXIO


def test_dangling_symlink(tmp_path: Path) -> None:
    link = tmp_path / "config.toml"
    link.symlink_to(tmp_path / "gone.toml")
    assert read_error(link) == f"{link}: cannot read the config file: No such file or directory"
    with pytest.raises(ConfigError, match=r"config file '.*config.toml' \(from --config\) does not exist"):
        C.load(link)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b'[git]\nuser_name = "\xff"\n')
    assert read_error(path) == f"{path}: not UTF-8 text; a config file is TOML"


def test_huge_file(tmp_path: Path) -> None:
    path = write(tmp_path, "#" * (MAX_CONFIG_BYTES + 1))
    assert read_error(path) == f"{path}: config file is larger than 1 MiB; is it the right file?"


def test_exactly_one_mib_is_fine(tmp_path: Path) -> None:
    body = '[git]\nuser_name = "x"\n'
    path = write(tmp_path, body + "#" * (MAX_CONFIG_BYTES - len(body)))
    assert path.stat().st_size == MAX_CONFIG_BYTES
    assert read_toml(path) == {"git": {"user_name": "x"}}


# --- where the file is found ----------------------------------------------


def test_search_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    system = write(tmp_path, "", "system.toml")
    monkeypatch.setattr(paths, "SYSTEM_CONFIG", str(system))
    assert find_config() == str(system)
    user = tmp_path / "xdg" / "mux" / "config.toml"
    user.parent.mkdir(parents=True)
    user.write_text("")
    assert find_config() == str(user)
    env_file = write(tmp_path, "", "env.toml")
    monkeypatch.setenv("MUX_CONFIG", str(env_file))
    assert find_config() == str(env_file)
    flag = write(tmp_path, "", "flag.toml")
    assert find_config(str(flag)) == str(flag)


def test_default_user_config_is_under_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert paths.user_config() == str(tmp_path / ".config" / "mux" / "config.toml")


@pytest.mark.parametrize("origin", ["--config", "$MUX_CONFIG"])
def test_named_file_must_exist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, origin: str) -> None:
    missing = tmp_path / "missing.toml"
    explicit = None
    if origin == "$MUX_CONFIG":
        monkeypatch.setenv("MUX_CONFIG", str(missing))
    else:
        explicit = str(missing)
    with pytest.raises(ConfigError) as info:
        find_config(explicit)
    assert info.value.message == f"config file {str(missing)!r} (from {origin}) does not exist"


def test_explicit_path_expands_tilde(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    path = write(tmp_path, "[docker]\n")
    assert find_config("~/config.toml") == str(path)


def test_credential_tables_are_checked_at_load(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from pathlib import Path

    from mux.config import parse
    from mux.errors import ConfigError

    with pytest.raises(ConfigError, match=r"\[credentials.x\] domains"):
        parse({"credentials": {"x": {"domains": "github.com"}}}, Path(tmp_path / "c.toml"), {})


@pytest.mark.parametrize("text, expected", [
    ('[docker]\ncontext = "box"\n', ("box", ())),
    ('[docker]\ncontexts = ["default", "box"]\n', (None, ("default", "box"))),
    ('docker.context = "box"\n', ("box", ())),
    ('[docker]\n"\\u0063ontext" = "box"\n', ("box", ())),  # spelled with an escape: still read
    ('[docker]\nimage = "x"\n', (None, ())),
    ('[docker\nimage = ', (None, ())),  # broken, but names no engine: `mux list` need not care
], ids=["context", "contexts", "dotted", "escaped", "none", "broken-without-context"])
def test_engine_settings_reads_only_the_engine(tmp_path: Path, text: str, expected: tuple[object, object]) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    assert engine_settings(path) == expected


def test_engine_settings_reports_a_broken_file_that_names_a_context(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[docker]\ncontext = "box\n')
    with pytest.raises(ConfigError, match="not valid TOML"):
        engine_settings(path)
