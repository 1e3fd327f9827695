"""Agent presets (`mux new --agent NAME`): data that feeds the same SessionSpec.

A preset says what the agent is (its command, one-shot and first-message
arguments, defaults), where it talks to (its API host) and how it proves who it
is (the header, and the variable that must hold *something* for it to start).
``[agents.NAME]`` tables change a preset or add an agent (mux.config.AgentSettings).

Choices, and why:

- **No key inside.** The variable the agent needs gets a placeholder; the
  credential proxy replaces the header on the way out (a ``[credentials.*]``
  rule for the API host is required, else exit 2 naming the rule). A user's
  ``--env``/``[docker] env`` entry for that variable is refused: it would put
  the host's real key in the container.
- **One ``docker run``.** Whether the image has the agent is decided *in* the
  container by a tiny wrapper (/bin/sh, so busybox images work; mux/session/agentshell.py):
  the image's program if it is on PATH, else the host's self-contained binary
  mounted read-only at /opt/mux/agents (as the sccache binary is). Only an executable
  (ELF) can be mounted: Claude Code's native ``claude``, Codex's static musl
  ``codex`` found inside its npm package. A script agent (gemini is node) must
  be in the image; the wrapper says so and exits 2. The wrapper is the session's
  command and is first on every shell's PATH there, so `mux exec NAME -- claude`
  runs the agent as the main process does.
- **Never root.** The agent runs as the host user, or, when mux runs as root,
  as the owner of the working directory; root-owned work is refused.
- **State in the session HOME** (``~/.claude``, ``~/.codex``, ...), a host
  directory kept across stop/start. ``share`` mounts host files read-only at the
  same place under that HOME; anything that looks like a credential is refused.
- **On a remote engine** nothing of this machine can be mounted: the binary is
  copied once into a volume named by its digest (as sccache's is) mounted
  read-only at /opt/mux/agents; the shared files (checked the same way) are
  copied into a volume of the session's, mounted read-only at /opt/mux/shared,
  and each place under HOME is a symlink into it (docker 20.10 cannot mount a
  part of a volume). Writing through the link fails as with a read-only mount;
  the copies go with the session.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from mux import validate
from mux.config import AgentSettings
from mux.errors import ConfigError, MuxError
from mux.names import CONTAINER_HOME
from mux.session import agentshell
from mux.session.agentshell import AGENT_BIN
from mux.session.presets import PLACEHOLDER, PRESETS, Preset, not_executable
from mux.spec import Far, Mount, SessionSpec

if TYPE_CHECKING:
    from mux.config import Config
    from mux.engine.runner import Runner

AGENT_DIR = "/opt/mux/agents"
SHARED_DIR = "/opt/mux/shared"  # remote engine: the copies of the shared files, read-only
HOME_SEED = "home"  # under the session's data dir: the HOME, or what fills a HOME volume
MAX_SHARED_FILES = 200
MAX_SCAN_BYTES = 1024 * 1024
# File names that hold credentials, and text that looks like one.
CREDENTIAL_NAMES = re.compile(
    r"^(\.credentials\.json|auth\.json|oauth_creds\.json|credentials(\.json)?|\.netrc|\.env|"
    r"\.git-credentials|.*\.(pem|key|p12|pfx))$", re.IGNORECASE)
# What text counts as a credential: mux/session/secretscan.py.


@dataclass(frozen=True)
class Agent:
    """A preset with the user's ``[agents.NAME]`` table applied."""

    name: str
    command: str
    args: tuple[str, ...]
    headless_args: tuple[str, ...]
    prompt_args: tuple[str, ...]
    env: tuple[tuple[str, str | None], ...]
    share: tuple[str, ...]
    api_host: str
    key_env: Mapping[str, tuple[str, ...]]
    binary: Path | None
    install_hint: str
    seed: tuple[tuple[str, str], ...] = ()
    rule: tuple[str, str, str | None, str] = ("", "Authorization", "bearer", "")


def resolve(name: str, config: Config, host_env: Mapping[str, str],
            find: bool = True, extra_args: tuple[str, ...] = ()) -> Agent:
    """The agent called ``name``: its preset, changed by ``[agents.NAME]``."""
    user = config.agents.get(name)
    preset = PRESETS.get(name)
    where = f"{config.source or 'config'}: [agents.{name}]"
    if preset is None:
        if user is None:
            known = sorted(set(PRESETS) | set(config.agents))
            raise ConfigError(f"unknown agent {name!r} (known: {', '.join(known)})",
                              hint=f"add an [agents.{name}] table with command, api_host and key_env")
        missing = [k for k in ("command", "api_host", "key_env") if getattr(user, k) is None]
        if missing:
            raise ConfigError(f"{where} is not a preset, so it needs {', '.join(missing)}")
        preset = Preset(name=name, command="", api_host="", key_env={},
                        install_hint=f"use an image that has it, or set [agents.{name}] binary")
    user = user or AgentSettings()
    env: list[tuple[str, str | None]] = list(preset.env)
    env += [validate.env_entry(e, f"{where} env", dict(host_env)) for e in user.env]
    args = preset.args if user.args is None else user.args
    api_host = user.api_host or preset.api_host
    custom = _custom_base(preset, env, args + extra_args)
    if custom and not user.api_host:
        setting, base = custom
        api_host = urlsplit(base).hostname or ""  # a custom base URL: its host needs the rule
        if not api_host:
            raise ConfigError(f"{where}: {setting}={base!r} is not a URL with a host")
    key_env = preset.key_env
    if user.key_env is not None:
        key_env = {"*": user.key_env}
    binary = user.binary
    if binary is not None:
        problem = not_executable(binary)
        if problem:
            raise ConfigError(f"{where} binary {str(binary)!r} {problem}",
                              hint="mux mounts only a self-contained executable; " + preset.install_hint)
        binary = binary.resolve()
    elif find and preset.find_binary is not None:
        binary = preset.find_binary()
    if binary is not None and ":" in str(binary):
        raise ConfigError(f"agent binary {str(binary)!r} contains ':', which docker -v cannot mount")
    return Agent(
        name=name, command=user.command or preset.command,
        args=args,
        headless_args=preset.headless_args if user.headless_args is None else user.headless_args,
        prompt_args=preset.prompt_args if user.prompt_args is None else user.prompt_args,
        env=tuple(env), share=preset.share if user.share is None else user.share,
        api_host=api_host, key_env=key_env, binary=binary, install_hint=preset.install_hint,
        seed=preset.seed, rule=preset.rule,
    )


def _custom_base(preset: Preset, env: list[tuple[str, str | None]],
                 args: tuple[str, ...]) -> tuple[str, str] | None:
    """(setting, URL) when the agent is pointed away from its default API host."""
    value = dict(env).get(preset.base_url_env) if preset.base_url_env else None
    if value:
        return preset.base_url_env or "", value
    for arg in args if preset.base_url_config else ():
        key, sep, value = arg.partition("=")
        if sep and key == preset.base_url_config:
            return key, value.strip("\"'")
    return None


def rule_lines(agent: Agent) -> list[str]:
    """The ``[credentials.*]`` table an agent needs, as TOML lines."""
    name, header, auth_type, value = agent.rule
    if not name:
        name, value = agent.name, "${" + agent.name.upper().replace("-", "_") + "_API_KEY}"
    lines = [f"[credentials.{name}]", f'domains = ["{agent.api_host}"]', f'header = "{header}"']
    if auth_type:
        lines.append(f'auth_type = "{auth_type}"')
    return lines + [f'value = "{value}"']


def missing_rules(names: tuple[str, ...], config: Config) -> str:
    """TOML for the ``[credentials.*]`` rules the named agents lack in ``config``."""
    out = ""
    taken = set(config.raw_credentials)
    for name in names:
        agent = resolve(name, config, os.environ, find=False)
        try:
            covering_rule(agent, config.raw_credentials, str(config.source or "config"))
            continue
        except ConfigError as exc:
            if not exc.message.startswith("no [credentials.*] rule"):
                raise
        lines = rule_lines(agent)
        table = lines[0][len("[credentials."):-1]
        if table in taken:
            lines[0] = f"[credentials.{table}-{agent.name}]"
        taken.add(lines[0][len("[credentials."):-1])
        out += (f"\n# `mux new --agent {agent.name}`: the proxy injects this key (read from its own "
                "environment);\n# the session holds only a placeholder.\n" + "\n".join(lines) + "\n")
    return out


def covering_rule(agent: Agent, raw_credentials: Mapping[str, object], source: str) -> object:
    from mux.proxy import domains
    from mux.proxy.settings import parse_credentials

    rules = parse_credentials({"credentials": dict(raw_credentials)}, source)
    rule = next((r for r in rules if domains.any_match(r.domains, agent.api_host)), None)
    if rule is None:
        lines = rule_lines(agent)
        raise ConfigError(
            f"no [credentials.*] rule covers {agent.api_host}, the {agent.name} agent's API host "
            "(the session holds no key: the proxy injects it)",
            hint=f"`mux config init --agent {agent.name}` adds it to your config: {lines[0]} "
                 + ", ".join(lines[1:]),
        )
    return rule


def placeholders(agent: Agent, header: str) -> tuple[str, ...]:
    return agent.key_env.get("*") or agent.key_env.get(header.lower()) or next(iter(agent.key_env.values()))


def agent_user(uid: int, gid: int, workdir: Path) -> str:
    """uid:gid the agent runs as: never root."""
    if uid != 0:
        return f"{uid}:{gid}"
    try:
        st = workdir.stat()
    except OSError:
        st = None
    if st is not None and st.st_uid != 0:
        return f"{st.st_uid}:{st.st_gid}"
    raise ConfigError(
        f"an agent never runs as root, and mux runs as root with {workdir} owned by root",
        hint="run mux as your own user, or give the working directory to one (`chown -R USER DIR`): "
             "the agent then runs as its owner",
    )


@dataclass(frozen=True)
class Shared:
    host: Path
    target: str  # relative to the session HOME


def shared_files(agent: Agent, host_home: Path, strict: bool) -> tuple[Shared, ...]:
    """Host paths to mount read-only under the session HOME; credentials refused.
    A path that does not exist is an error when the user listed it (``strict``)."""
    out = []
    for text in agent.share:
        where = f"[agents.{agent.name}] share {text!r}"
        if text == "~" or text.startswith("~/"):
            path = host_home / text[2:]
        elif text.startswith("~"):
            raise ConfigError(f"{where}: only ~/ (your own home) may start a path")
        else:
            path = Path(text)
        if not path.is_absolute():
            raise ConfigError(f"{where}: use an absolute path or one under ~")
        path = Path(os.path.normpath(path))
        try:
            rel = path.relative_to(host_home)
        except ValueError:
            raise ConfigError(f"{where}: not under your home ({host_home}); it is mounted at the "
                              "same place under the session HOME") from None
        if not path.exists():
            if strict:
                raise ConfigError(f"{where}: {path} does not exist")
            continue
        if ":" in str(path) or "," in str(path):
            raise ConfigError(f"{where}: a path with ':' or ',' cannot be mounted with docker -v")
        _refuse_credentials(path, where)
        out.append(Shared(path, str(PurePosixPath(*rel.parts))))
    return tuple(out)


def _refuse_credentials(path: Path, where: str) -> None:
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file() or p.is_symlink())
    if len(files) > MAX_SHARED_FILES:
        raise ConfigError(f"{where}: more than {MAX_SHARED_FILES} files to check; share something smaller")
    for f in files:
        if CREDENTIAL_NAMES.match(f.name):
            raise ConfigError(f"{where}: {f} is a credential file; keys stay outside the container",
                              hint="the proxy injects the key: remove it from share")
        try:
            with open(f, "rb") as fh:
                data = fh.read(MAX_SCAN_BYTES)
        except OSError as exc:
            raise ConfigError(f"{where}: cannot read {f}: {exc.strerror}") from None
        from mux.session.secretscan import find

        found = find(data)
        if found:  # the kind and the key or line, never the value: this reaches terminals and logs
            raise ConfigError(
                f"{where}: {f} looks like it holds a credential ({found.what}, line {found.line}); "
                "keys stay outside the container",
                hint="remove the secret from that file (the proxy injects keys), or stop sharing it",
            )


@dataclass(frozen=True)
class AgentRequest:
    name: str
    prompt: str | None = None
    headless: bool = False
    args: tuple[str, ...] = ()  # after `--`


def command(agent: Agent, req: AgentRequest) -> tuple[str, ...]:
    """The container's command: the agent's wrapper (which adds the agent's own
    arguments), then this session's arguments."""
    argv = [f"{AGENT_BIN}/{PurePosixPath(agent.command).name}", *req.args]
    if req.headless:
        argv += [*agent.headless_args, req.prompt or ""]
    elif req.prompt is not None:
        argv += [*agent.prompt_args, req.prompt]
    return tuple(argv)


def wrapper_text(agent: Agent) -> str:
    hint = (f"{agent.command} is not in this image and no host binary is mounted for it: "
            f"{agent.install_hint}")
    return agentshell.wrapper(agent.command, agent.args, AGENT_DIR, hint)


def apply(config: Config, req: AgentRequest, spec: SessionSpec, *, uid: int, gid: int,
          host_env: Mapping[str, str], host_home: Path, session_dir: Path,
          user_env_names: set[str], root_is_you: bool = False) -> SessionSpec:
    """The agent's command, variables, mounts and label on top of ``spec``. Pure but for
    looking at host files (the binary, shared files). On a remote engine, which cannot
    see this machine's files, the binary and shared files are copied into volumes there
    (each Mount's ``far``, rendered by mux/session/mounts.py). ``root_is_you``: rootless
    Docker, whose uid 0 is the user running mux (mux/engine/vm.py): the agent runs as it,
    never as a subordinate uid that could not write the workdir."""
    if req.headless and req.prompt is None:
        raise ConfigError("--headless needs --prompt: the one-shot run's instructions")
    if spec.network == "none":
        raise ConfigError("an agent needs the network (its API, through mux's proxy); not --network none")
    agent = resolve(req.name, config, host_env, extra_args=req.args)
    rule = covering_rule(agent, config.raw_credentials, str(config.source or "config"))
    keys = placeholders(agent, rule.header)  # type: ignore[attr-defined]
    leaked = sorted((user_env_names | {k for k, _ in agent.env}) & set(keys))
    if leaked:
        raise ConfigError(
            f"{leaked[0]} is set by --env, [docker] env or [agents.{agent.name}] env: it would put a real "
            f"key in the {agent.name} session, which gets a placeholder there and the key from the proxy",
            hint=f"remove {leaked[0]} from there",
        )
    user_share = config.agents.get(req.name)
    shared = shared_files(agent, host_home, strict=user_share is not None and user_share.share is not None)
    program = PurePosixPath(agent.command).name
    mounts = list(spec.mounts)
    if agent.binary is not None:  # remote: copied into a volume there, once per binary
        mounts.append(Mount(str(agent.binary), f"{AGENT_DIR}/{program}", True,
                            far=Far("program", program, at=AGENT_DIR)))
    copies = tuple((s.host, s.target) for s in shared)  # remote: in a volume of the session's, linked from HOME
    mounts += [Mount(str(s.host), f"{CONTAINER_HOME}/{s.target}", True,
                     far=Far("own", "shared", files=copies, at=SHARED_DIR, link=f"{SHARED_DIR}/{s.target}"))
               for s in shared]
    scripts = agentshell.files(session_dir, program, wrapper_text(agent))
    wrapper = Far("own", agentshell.BIN_DIR, files=tuple((path, path.name) for path, _, _ in scripts), at=AGENT_BIN)
    mounts += [Mount(str(session_dir / agentshell.BIN_DIR), AGENT_BIN, True, far=wrapper),
               # remote: login shells' snippet linked to the wrapper's volume
               Mount(str(scripts[1][0]), agentshell.PROFILE, True,
                     far=wrapper._replace(link=f"{AGENT_BIN}/{agentshell.PROFILE_FILE}"))]
    env = [*((k, PLACEHOLDER) for k in keys), *agent.env]
    return spec._replace(
        command=command(agent, req), scripts=spec.scripts + scripts,
        env=tuple(env) + spec.env,
        mounts=tuple(mounts),
        policy=spec.policy._replace(user=f"{uid}:{gid}" if root_is_you else agent_user(uid, gid, spec.workdir)),
        home=spec.home or session_dir / "home",
        labels=spec.labels + (("mux.agent", agent.name),),
        tty=not req.headless,
    )


def prepare_home(runner: Runner, name: str, spec: SessionSpec, session_dir: Path) -> None:
    """Before `docker run`: the HOME's seed files and the shared files' parent
    directories (made by mux, not by dockerd as root), all owned by the agent's user.
    A HOME volume (--copy) is filled from the same directory (mux.session.volumes)."""
    from mux.engine.runner import host_step

    agentshell.write_files(runner, spec)
    home = spec.home or (session_dir / HOME_SEED if spec.home_volume else None)
    if home is None or spec.user is None:
        return
    preset = PRESETS.get(name)
    targets = [m.target for m in spec.mounts] + [path for path, _ in spec.links]
    dirs = sorted({home / PurePosixPath(t).parent.relative_to(CONTAINER_HOME)
                   for t in targets if t.startswith(CONTAINER_HOME + "/")})
    dirs += sorted({(home / rel).parent for rel, _ in (preset.seed if preset else ())})
    dirs = [d for d in dict.fromkeys(dirs) if d != home]  # HOME itself: made by hostfiles

    def fail(exc: OSError) -> MuxError:
        return MuxError(f"cannot prepare the agent's HOME in {home}: {exc.strerror}")

    def make() -> None:
        try:
            for d in [home, *dirs]:
                d.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise fail(exc) from None

    if dirs or not home.exists():
        host_step(runner, ["mkdir", "-p", "-m", "700", *(dirs or [home])], make)
    for rel, text in preset.seed if preset else ():
        target = home / rel

        def write(target: Path = target, text: str = text) -> None:
            try:
                if not target.exists():
                    target.write_text(text)
            except OSError as exc:
                raise fail(exc) from None

        host_step(runner, ["tee", target], write)
    uid, gid = (int(x) for x in spec.user.split(":"))
    if os.getuid() == 0 and uid != 0:  # mux as root, the agent as the workdir's owner

        def chown() -> None:
            try:
                for path in [home, *home.rglob("*")]:
                    os.chown(path, uid, gid, follow_symlinks=False)
            except OSError as exc:
                raise fail(exc) from None

        host_step(runner, ["chown", "-R", spec.user, home], chown)

