"""Configuration: find the file, parse TOML, check every key, freeze.

Unknown keys and wrong types are errors that name the file, the key and the
value. Strings expand ``${VAR}``/``${VAR:-default}``; paths expand ``~``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

from mux import validate
from mux.configfile import Table, find_config, read_toml
from mux.errors import ConfigError
from mux.spec import Limits

if TYPE_CHECKING:
    from mux.proxy.settings import ProxySettings

DEFAULT_IMAGE = "ubuntu:22.04"
PULL_POLICIES = ("missing", "always", "never")
# mux's own: never sccache's default (~/.cache/sccache), which the user's host builds use
DEFAULT_SCCACHE_DIR = "~/.cache/mux/sccache"
CACHE_SCOPES = ("repo", "session", "global")
NOTHING: Mapping[str, Any] = MappingProxyType({})


class RustSettings(NamedTuple):
    sccache: bool = False
    cache_dir: Path = Path(DEFAULT_SCCACHE_DIR).expanduser()  # HOME does not change while mux runs
    binary: Path | None = None
    image_binary: str | None = None  # sccache inside the image: nothing mounted or copied (mux/session/sccache.py)
    cargo_cache: bool = False
    cache_scope: str = "repo"  # who shares a cache: sessions of one repository, none, or every session


class DockerSettings(NamedTuple):
    image: str = DEFAULT_IMAGE
    volumes: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    network: str | None = None
    shell: str = "/bin/bash"
    run_as_user: bool = True
    run_as_root: bool = False  # mux run as root: a session may run as uid 0 (never by default)
    stop_timeout: int = 10
    pull: str | None = None
    limits: Limits = Limits()
    rust: RustSettings = RustSettings()
    ports: tuple[str, ...] = ()
    context: str | None = None  # docker context sessions go to (mux/engine/choice.py)
    contexts: tuple[str, ...] = ()  # engines `mux list` asks, in parallel
    protect: tuple[str, ...] | None = None  # paths protected besides mux/workspace/protect.py's; () turns it off
    cp_limit: int = 1 << 30  # bytes `mux cp` and --copy move at most (0: no limit; mux/session/safetar.py)
    loopback_guarded: bool = False  # the engine's host drops non-lo packets to 127/8 (mux/egress/loopback.py)
    cli: str | None = None  # the container CLI: docker (None) or podman (mux/engine/clis.py)


class GitSettings(NamedTuple):
    inject_config: bool = True
    user_name: str | None = None
    user_email: str | None = None


class AgentSettings(NamedTuple):
    """One ``[agents.NAME]`` table: what it changes in a preset (mux/session/agents.py), or a
    whole new agent. None: not set here, the preset's value stands."""

    command: str | None = None
    args: tuple[str, ...] | None = None
    binary: Path | None = None
    env: tuple[str, ...] = ()
    share: tuple[str, ...] | None = None
    headless_args: tuple[str, ...] | None = None
    prompt_args: tuple[str, ...] | None = None
    api_host: str | None = None
    key_env: tuple[str, ...] | None = None


AGENT_KEYS = ("command", "args", "binary", "env", "share", "headless_args", "prompt_args", "api_host", "key_env")
AGENT_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")
AGENT_COMMAND = re.compile(r"(/[A-Za-z0-9_.+-]+)+|[A-Za-z0-9_+-][A-Za-z0-9_.+-]*")


class Config(NamedTuple):
    source: Path | None = None
    docker: DockerSettings = DockerSettings()
    git: GitSettings = GitSettings()
    agents: Mapping[str, AgentSettings] = NOTHING
    proxy: ProxySettings | None = None  # parsed by mux.proxy.settings, imported only when there is a [proxy]
    raw_proxy: Mapping[str, Any] = NOTHING
    raw_credentials: Mapping[str, Any] = NOTHING


def load(explicit: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> Config:
    path = find_config(explicit)
    if path is None:
        return Config()
    return parse(read_toml(path), Path(path), os.environ if env is None else env)


def parse(data: dict[str, Any], path: Path, env: Mapping[str, str]) -> Config:
    top = Table(data, "", str(path), env)
    docker = _docker(top.table("docker"), path.parent)
    git = _git(top.table("git"))
    agents = _agents(top.table("agents"))
    raw_proxy = top.raw("proxy")
    raw_credentials = top.raw("credentials")
    top.finish("docker, git, proxy, credentials, agents")
    for key, value in (("proxy", raw_proxy), ("credentials", raw_credentials)):
        if value is not None and not isinstance(value, dict):
            raise ConfigError(f"{path}: [{key}] must be a table, got {value!r}")
    proxy = None
    if raw_proxy is not None or raw_credentials is not None:
        # Checked now, like every other table; credential values stay unexpanded:
        # only the proxy process reads the secrets, from its own environment.
        from mux.proxy.settings import parse_credentials, parse_proxy_settings

        proxy = parse_proxy_settings({"proxy": raw_proxy} if raw_proxy is not None else {}, str(path), env)
        parse_credentials({"credentials": raw_credentials or {}}, str(path))
    return Config(
        source=path, docker=docker, git=git, agents=agents, proxy=proxy,
        raw_proxy=raw_proxy or {}, raw_credentials=raw_credentials or {},
    )


def _docker(t: Table, base: Path) -> DockerSettings:
    image = t.string("image", DEFAULT_IMAGE)
    validate.image(image, t.where("image"))
    volumes = tuple(validate.volume(v, t.where("volumes"), base) for v in t.strings("volumes"))
    env = t.strings("env")
    for entry in env:
        validate.env_entry(entry, t.where("env"), dict(t.env))
    network = t.string("network")
    if network is not None:
        validate.network(network, t.where("network"))
    shell = t.string("shell", "/bin/bash")
    if not shell.startswith("/"):
        raise ConfigError(f"{t.where('shell')}: must be an absolute path like /bin/bash, got {shell!r}")
    pull = t.string("pull")
    if pull is not None and pull not in PULL_POLICIES:
        raise ConfigError(f"{t.where('pull')}: must be one of {', '.join(PULL_POLICIES)}, got {pull!r}")
    settings = DockerSettings(
        image=image, volumes=volumes, env=env, network=network, shell=shell,
        run_as_user=t.boolean("run_as_user", True),
        run_as_root=t.boolean("run_as_root", False),
        stop_timeout=t.integer("stop_timeout", 10),
        pull=pull,
        limits=_limits(t.table("limits")),
        rust=_rust(t.table("rust")),
        ports=tuple(validate.publish(p, t.where("ports")) for p in t.strings("ports")),
        context=t.string("context"),
        contexts=t.strings("contexts"),
        protect=_protect(t),
        cp_limit=_size(t.scalar("cp_limit"), t.where("cp_limit"), 1 << 30),
        loopback_guarded=t.boolean("loopback_guarded", False),
        cli=t.string("cli"),
    )
    if settings.cli is not None:
        from mux.engine.clis import check  # here: breaks the map (test_layers.py)

        check(settings.cli, t.where("cli"))
    from mux.engine.choice import context_name  # here: breaks the map (test_layers.py)

    for name in (settings.context, *settings.contexts):
        if name is not None:
            context_name(name, t.where("contexts" if name in settings.contexts else "context"))
    t.finish("image, volumes, env, network, shell, run_as_user, run_as_root, stop_timeout, pull, limits, "
             "rust, ports, context, contexts, protect, cp_limit, loopback_guarded, cli")
    return settings


def _protect(t: Table) -> tuple[str, ...] | None:
    if "protect" not in t.data:
        return None
    from mux.workspace.protect import check_paths  # here: breaks the map (test_layers.py)

    return check_paths(t.strings("protect"), t.where("protect"))


def _size(value: object, what: str, default: int) -> int:
    """A size in bytes ("1g", "512m", a number); 0 is no limit."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ConfigError(f"{what}: expected a size like \"1g\" (0: no limit), got {value!r}")
    m = validate.MEMORY.fullmatch(str(value).strip())
    if not m:
        raise ConfigError(f"{what}: invalid size {value!r}: use a number with an optional unit "
                          "b, k, m, g or t (like \"512m\" or \"4g\"), or 0 for no limit")
    return int(float(m["num"]) * validate.UNITS[m["unit"].lower()])


def _limits(t: Table) -> Limits:
    memory, cpus, swap = t.scalar("memory"), t.scalar("cpus"), t.scalar("memory_swap")
    pids = t.integer("pids", -1, minimum=0) if "pids" in t.data else None  # None: the default
    t.finish("memory, cpus, memory_swap, pids")
    return Limits(
        pids=pids,
        memory=None if memory is None else validate.memory(memory, t.where("memory")),
        cpus=None if cpus is None else validate.cpus(cpus, t.where("cpus")),
        memory_swap=None if swap is None
        else validate.memory(swap, t.where("memory_swap"), allow_unlimited=True),
    )


def _rust(t: Table) -> RustSettings:
    settings = RustSettings(
        sccache=t.boolean("sccache", False),
        cache_dir=t.path("cache_dir", RustSettings().cache_dir),
        binary=t.path("binary"),
        image_binary=t.string("image_binary"),
        cargo_cache=t.boolean("cargo_cache", False),
        cache_scope=t.string("cache_scope", "repo"),
    )
    t.finish("sccache, cache_dir, binary, image_binary, cargo_cache, cache_scope")
    if settings.cache_scope not in CACHE_SCOPES:
        raise ConfigError(f"{t.where('cache_scope')}: must be one of {', '.join(CACHE_SCOPES)}, "
                          f"got {settings.cache_scope!r}")
    if settings.image_binary is not None and not settings.image_binary.startswith("/"):
        raise ConfigError(f"{t.where('image_binary')}: {settings.image_binary!r} must be an absolute path "
                          "inside the image")
    if settings.image_binary is not None and settings.binary is not None:
        raise ConfigError(f"{t.where('image_binary')}: it and binary exclude each other: the image's "
                          "sccache, or a host one mounted (copied, on a remote engine)")
    return settings


def _git(t: Table) -> GitSettings:
    settings = GitSettings(
        inject_config=t.boolean("inject_config", True),
        user_name=t.string("user_name"),
        user_email=t.string("user_email"),
    )
    t.finish("inject_config, user_name, user_email")
    return settings


def _agents(t: Table) -> dict[str, AgentSettings]:
    found = {}
    for name in sorted(t.data):
        if not AGENT_NAME.fullmatch(name):
            raise ConfigError(f"{t.where(name)}: agent name {name!r} must be 1-32 lowercase letters, "
                              "digits, '_' or '-', starting with a letter")
        found[name] = _agent(t.table(name))
    return found


def _agent(t: Table) -> AgentSettings:
    def listed(key: str) -> tuple[str, ...] | None:
        return t.strings(key) if key in t.data else None

    settings = AgentSettings(
        command=t.string("command"), args=listed("args"), binary=t.path("binary"),
        env=t.strings("env"), share=listed("share"), headless_args=listed("headless_args"),
        prompt_args=listed("prompt_args"), api_host=t.string("api_host"), key_env=listed("key_env"),
    )
    for entry in settings.env:
        validate.env_entry(entry, t.where("env"), dict(t.env))
    for var in settings.key_env or ():
        if not validate.ENV_NAME.fullmatch(var):
            raise ConfigError(f"{t.where('key_env')}: {var!r} is not a variable name")
    if settings.command is not None and not AGENT_COMMAND.fullmatch(settings.command):
        raise ConfigError(f"{t.where('command')}: {settings.command!r} is not a program name or "
                          "absolute path (letters, digits, '_', '.', '+', '-', '/')")
    t.finish(", ".join(AGENT_KEYS))
    return settings
