"""Which Docker engine a mux command talks to, and whether it sees this machine's files.

Chosen once per mux command, in docker's own order with mux's setting slotted in:
``--context NAME``, then ``DOCKER_HOST`` / ``DOCKER_CONTEXT`` in the environment,
then ``[docker] context``, then the docker CLI's current context (its config.json),
then docker's "default". When mux made the choice (the flag or the config), the
runner adds ``--context NAME`` to every docker command it runs, so all of them go
to the same engine and ``--dry-run`` prints it; otherwise docker finds the same
engine in the same environment by itself.

Local or remote is read from the docker CLI's own context files, without a docker
call: a unix socket (or Windows named pipe) is this machine, whose paths a bind
mount can use; ``ssh://``, ``tcp://`` and anything else is another machine (a
``tcp://`` engine might be local, but guessing wrong there would mount empty
directories, so mux treats it as remote).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from mux.engine.clis import DOCKER, PODMAN
from mux.errors import ConfigError

DEFAULT = "default"
DEFAULT_HOST = "unix:///var/run/docker.sock"
LOCAL_SCHEMES = ("unix://", "npipe://")
# docker's own rule for context names (cli/context/store: restrictedNamePattern).
CONTEXT_NAME = r"[a-zA-Z0-9][a-zA-Z0-9_.+-]*"  # compiled on first use (re caches it)


class Engine:
    """The engine one mux command talks to: where it is, how it was chosen, and what runs it.

    ``kind`` is the container CLI (docker or podman: mux/engine/clis.py), ``base`` the argv
    every engine command starts with (``docker``, ``docker --context NAME``, ``podman``:
    the Runner puts it in front of each verb-first command), ``remote`` whether the engine
    is on another machine (it cannot see this machine's files), ``socket`` the path of its
    local unix socket (None when it has none here). All are worked out once, here; the
    rest of mux asks this value and never derives them again. (A plain class with slots:
    a NamedTuple cannot compute fields, and ``dataclasses`` costs every start-up ~4 ms.)
    """

    __slots__ = ("name", "host", "source", "pass_context", "kind", "base", "remote", "socket")
    name: str  # the docker context name ("default" covers DOCKER_HOST and the socket)
    host: str  # the endpoint: unix:///..., ssh://user@box, tcp://...
    source: str  # how it was chosen, for messages: "--context", "DOCKER_HOST", ...
    pass_context: bool  # mux chose it: every docker command gets --context NAME
    kind: str  # the container CLI every command runs: docker or podman
    base: tuple[str, ...]  # what every engine command starts with
    remote: bool
    socket: str | None

    def __init__(self, name: str, host: str, source: str, pass_context: bool = False, kind: str = DOCKER) -> None:
        base = (kind, "--context", name) if pass_context else (kind,)
        fields = {"name": name, "host": host, "source": source, "pass_context": pass_context, "kind": kind,
                  "base": base, "remote": not host.startswith(LOCAL_SCHEMES),
                  "socket": host[len("unix://"):] if host.startswith("unix://") else None}
        for field, value in fields.items():
            object.__setattr__(self, field, value)

    def __setattr__(self, field: str, value: object) -> None:
        raise AttributeError(f"Engine is immutable: cannot set {field}")

    def _key(self) -> tuple[str, str, str, bool, str]:
        return self.name, self.host, self.source, self.pass_context, self.kind

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Engine) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (f"Engine(name={self.name!r}, host={self.host!r}, source={self.source!r}, "
                f"pass_context={self.pass_context!r}, kind={self.kind!r})")

    def shown(self, command: Sequence[str]) -> str:
        """A verb-first command as a user types it to reach this engine (hints, fixes):
        ``docker --context box volume rm v``."""
        import shlex  # only for a message

        return shlex.join([*self.base, *command])

    def describe(self) -> str:
        """The engine in a message: `context "box" (ssh://me@box, from --context)`."""
        if self.kind != DOCKER:
            return f"{self.kind}, from {self.source}"
        if self.source == "DOCKER_HOST":
            return f"DOCKER_HOST={self.host}"
        return f"context {self.name!r} ({self.host}, from {self.source})"

    def flag_hint(self) -> str:
        """The flag that reaches this engine again: what hints should suggest."""
        return f"--context {self.name} " if self.pass_context else ""


LOCAL = Engine(DEFAULT, DEFAULT_HOST, "default")


def podman(source: str, flag: str | None = None, configured: str | None = None,
           env: Mapping[str, str] | None = None) -> Engine:
    """This machine's podman: its own socket (rootless: the user's), no docker context."""
    env = os.environ if env is None else env
    if flag or configured:
        # podman's remote engines are connections (`--connection NAME`), not docker contexts.
        raise ConfigError(f"{'--context' if flag else '[docker] context'} is docker's: podman's remote "
                          "engines are not supported yet", hint="drop it to use this machine's podman")
    if os.geteuid() == 0:
        host = "unix:///run/podman/podman.sock"
    else:
        host = f"unix://{env.get('XDG_RUNTIME_DIR') or f'/run/user/{os.geteuid()}'}/podman/podman.sock"
    return Engine(DEFAULT, host, source, kind=PODMAN)


def context_name(value: str, what: str) -> str:
    if not re.fullmatch(CONTEXT_NAME, value):
        raise ConfigError(f"{what}: invalid docker context name {value!r}",
                          hint="`docker context ls` lists the contexts that exist")
    return value


def docker_config_dir(env: Mapping[str, str]) -> str:
    if env.get("DOCKER_CONFIG"):
        return os.path.expanduser(env["DOCKER_CONFIG"])
    return os.path.join(os.path.expanduser(env.get("HOME") or "~"), ".docker")


def _read_json(path: str) -> Any:
    with open(path, "rb") as fh:
        return json.loads(fh.read())


def current_context(env: Mapping[str, str]) -> str | None:
    """The docker CLI's `docker context use` choice, from its config.json."""
    try:
        data = _read_json(os.path.join(docker_config_dir(env), "config.json"))
    except (OSError, ValueError):
        return None  # no file, or one docker itself would complain about
    name = data.get("currentContext") if isinstance(data, dict) else None
    return name if isinstance(name, str) and name else None


def context_host(name: str, env: Mapping[str, str], what: str) -> str:
    """The docker endpoint of context ``name``, read from docker's metadata store."""
    if name == DEFAULT:
        return env.get("DOCKER_HOST") or DEFAULT_HOST
    import hashlib  # only for a named context: ~3 ms off every other start

    digest = hashlib.sha256(name.encode()).hexdigest()
    meta = os.path.join(docker_config_dir(env), "contexts", "meta", digest, "meta.json")
    try:
        data = _read_json(meta)
    except FileNotFoundError:
        raise ConfigError(f"{what}: there is no docker context named {name!r}",
                          hint="`docker context ls` lists them; `docker context create` makes one") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{what}: cannot read docker context {name!r} ({meta}): {exc}") from None
    try:
        host = data["Endpoints"]["docker"]["Host"]
    except (KeyError, TypeError):
        host = None
    if not isinstance(host, str) or not host:
        raise ConfigError(f"{what}: docker context {name!r} has no docker endpoint ({meta})")
    return host


def decided_by_env(env: Mapping[str, str]) -> bool:
    """True when the environment picks the engine, whatever mux's config says."""
    return bool(env.get("DOCKER_HOST") or env.get("DOCKER_CONTEXT"))


def resolve(flag: str | None, configured: str | None, env: Mapping[str, str] | None = None) -> Engine:
    """The engine this mux command uses (no docker call; see the module docstring)."""
    env = os.environ if env is None else env
    if flag:
        name = context_name(flag, "--context")
        return Engine(name, context_host(name, env, "--context"), "--context", pass_context=True)
    if env.get("DOCKER_HOST"):
        return Engine(DEFAULT, env["DOCKER_HOST"], "DOCKER_HOST")
    if env.get("DOCKER_CONTEXT"):
        name = context_name(env["DOCKER_CONTEXT"], "DOCKER_CONTEXT")
        return Engine(name, context_host(name, env, "DOCKER_CONTEXT"), "DOCKER_CONTEXT")
    if configured:
        name = context_name(configured, "[docker] context")
        return Engine(name, context_host(name, env, "[docker] context"), "[docker] context",
                      pass_context=True)
    current = current_context(env)
    if current and current != DEFAULT:
        name = context_name(current, "the docker CLI's current context")
        return Engine(name, context_host(name, env, "docker context use"), "docker context use")
    return LOCAL


def named(name: str, env: Mapping[str, str] | None = None, what: str = "[docker] contexts") -> Engine:
    """One engine of a list (`[docker] contexts`): always passed as --context."""
    env = os.environ if env is None else env
    name = context_name(name, what)
    return Engine(name, context_host(name, env, what), what, pass_context=True)
