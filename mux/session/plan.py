"""`mux new`, planned: config + flags + facts gathered beforehand -> the final spec and the
ordered steps that make it. Pure but for looking at host files (the workdir's .git, the
programs to mount; a remote engine's program volumes are named by a digest, remembered in
the data dir): no processes, nothing made. mux/session/create.py does the steps, with their
undo; `--dry-run` does the same steps with a runner that prints instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from mux import __version__, paths, validate
from mux.config import Config, Limits
from mux.engine import argv as A
from mux.errors import ConfigError
from mux.names import CONTAINER_HOME, CREATED_FORMAT, WORKSPACE, session_name
from mux.session import account, layout
from mux.session.mounts import for_engine
from mux.spec import Mount, RunPolicy, SessionSpec

if TYPE_CHECKING:
    from mux.proxy.settings import ProxySettings


class NewOptions(NamedTuple):
    """What the user asked for on the command line; None means "use the config"."""

    name: str
    workdir: Path | None = None
    image: str | None = None
    env: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    network: str | None = None
    memory: str | None = None
    cpus: str | None = None
    memory_swap: str | None = None
    pull: str | None = None
    command: tuple[str, ...] = ()
    repo: str | None = None
    branch: str | None = None
    proxy: bool | None = None
    egress: str | None = None  # --egress open|proxy-only (mux.egress.relay)
    ports: tuple[str, ...] = ()  # -p/--publish, added to [docker] ports
    agent: str | None = None  # mux/session/agents.py: COMMAND is then the agent's arguments
    prompt: str | None = None
    headless: bool = False
    copy: bool = False  # /workspace is a volume holding a copy of the workdir (mux/session/volumes.py)
    unprotected: bool = False  # a workdir session without mux/workspace/protect.py's protection


class HostFacts(NamedTuple):
    """Everything about the host a spec depends on, gathered in one place."""

    uid: int  # who the session runs as, in the engine's ids (rootless Docker: 0 is you)
    gid: int
    env: Mapping[str, str]
    cwd: Path
    now: datetime
    git_name: str | None = None
    git_email: str | None = None
    data_dir: Path | None = None  # None: paths.data_dir()
    login: str = "mux"  # the host's names for uid and gid (mux.session.account.host_names)
    group: str = "mux"
    remote: bool = False  # the engine cannot see this machine's files
    rootless: Mapping[str, Any] | None = None  # the engine's docker info when rootless Docker run by you

    def session_dir(self, name: str) -> Path:
        """Session ``name``'s files under this host's data dir, in its instance."""
        return Path(paths.session_dir(name, paths.sessions_root(self.data_dir or paths.data_dir(), self.env)))


def git_env(name: str | None, email: str | None) -> list[tuple[str, str | None]]:
    """Git settings as GIT_CONFIG_* variables: command-line scope, so they win over
    files and count as protected configuration (safe.directory is honoured)."""
    pairs = [("safe.directory", WORKSPACE)]
    pairs += [(k, v) for k, v in (("user.name", name), ("user.email", email)) if v]
    env: list[tuple[str, str | None]] = [("GIT_CONFIG_COUNT", str(len(pairs)))]
    for i, (key, value) in enumerate(pairs):
        env += [(f"GIT_CONFIG_KEY_{i}", key), (f"GIT_CONFIG_VALUE_{i}", value)]
    return env


def build_spec(config: Config, opts: NewOptions, host: HostFacts) -> SessionSpec:
    """Check every input and assemble the spec. Pure: no processes, no files written."""
    name = session_name(opts.name)
    d = config.docker
    session_dir = host.session_dir(name)
    image = validate.image(opts.image, "--image") if opts.image else d.image
    repo_labels = repo_options(opts)
    if repo_labels:
        workdir = session_dir / "repo"  # cloned there before `docker run`
    else:
        workdir = (host.cwd / (opts.workdir or ".")).resolve()
        validate.host_path(workdir, "--workdir")
    network = validate.network(opts.network, "--network") if opts.network else d.network
    limits = Limits(
        memory=validate.memory(opts.memory, "--memory") if opts.memory else d.limits.memory,
        cpus=validate.cpus(opts.cpus, "--cpus") if opts.cpus else d.limits.cpus,
        memory_swap=validate.memory(opts.memory_swap, "--memory-swap", allow_unlimited=True)
        if opts.memory_swap else d.limits.memory_swap,
        pids=d.limits.pids or None,  # 0: no limit
    )
    if limits.memory_swap and limits.memory_swap != "-1":
        if not limits.memory:
            raise ConfigError("--memory-swap needs a memory limit too (--memory or [docker.limits] memory)")
        if validate.memory_bytes(limits.memory_swap, "memory_swap") < validate.memory_bytes(limits.memory, "memory"):
            raise ConfigError(
                f"memory_swap {limits.memory_swap!r} is smaller than memory {limits.memory!r}: "
                "it is memory plus swap, so it must be at least as large"
            )
    if host.rootless is not None:
        from mux.engine.vm import check_limits

        check_limits(host.rootless, limits)
    if d.limits.pids is None and not (host.rootless or {}).get("CgroupDriver") == "none":
        limits = limits._replace(pids=A.DEFAULT_PIDS)  # an engine without cgroups has no pids limit either
    # The user's mounts, checked (mux adds its own below)
    yours = tuple(Mount.parse(v) for v in d.volumes) + tuple(
        Mount.parse(validate.volume(v, "--volume", host.cwd)) for v in opts.volumes)
    mounts = yours
    protection = None
    if not (repo_labels or opts.copy or host.remote):  # the user's own tree, mounted read-write
        from mux.workspace import protect

        protection = protect.plan(workdir, session_dir, protect.wanted(d.protect, opts.unprotected))
        mounts += protection.mounts
    taken = (WORKSPACE, CONTAINER_HOME, "/etc/passwd", "/etc/group") if d.run_as_user else (WORKSPACE,)
    for mount in mounts:
        target = mount.target.rstrip("/")
        if target in taken:
            raise ConfigError(f"volume {mount.text!r} mounts over {target}, which mux mounts itself "
                              "(the working directory, the session's HOME and user)")
    from mux import ownfiles

    where = "--copy source" if opts.copy else "--workdir" if opts.workdir else "the working directory"
    ownfiles.check_spec_sources(None if repo_labels else workdir, tuple(m.text for m in yours),
                                ownfiles.own_paths(host.data_dir or paths.data_dir(), config.source, host.env),
                                workdir_what=where)
    env: list[tuple[str, str | None]] = []
    if config.git.inject_config:
        env += git_env(config.git.user_name or host.git_name, config.git.user_email or host.git_email)
    rust = None
    if d.rust.sccache:  # [docker.rust] (mux/session/sccache.py); before the user's env, so theirs wins
        from mux.session.sccache import rust_wiring, scoped

        scope = scoped(d.rust, session_dir=session_dir,
                       source=repo_labels[0][1] if repo_labels else str(workdir))  # the repository's caches
        rust = rust_wiring(d.rust._replace(cache_dir=scope.cache_dir), session_dir=session_dir,
                           cargo_cache_dir=scope.cargo_dir, volume_key=scope.key)
        mounts += rust.mounts
        env += rust.env
    host_env = dict(host.env)
    src = str(config.source) if config.source else "config"
    env += [validate.env_entry(e, f"{src}: [docker] env", host_env) for e in d.env]
    env += [validate.env_entry(e, "--env", host_env) for e in opts.env]
    run_as_user = d.run_as_user
    uid, gid, login, group = host.uid, host.gid, host.login, host.group
    if run_as_user and host.rootless is None:  # rootless Docker: its uid 0 is you already
        from mux.workspace.repo import local_path, validate_repo_url

        source = local_path(validate_repo_url(opts.repo)) if opts.repo else None
        uid, gid = account.session_ids(
            host.uid, host.gid, str(source or host.cwd) if repo_labels else str(workdir),
            allow_root=d.run_as_root or host.env.get(account.ROOT_ENV) == "1")
        if uid != host.uid:
            login, group = account.host_names(uid, gid, {})
    labels = [
        ("mux.session", name), ("mux.backend", "docker"), ("mux.workdir", str(workdir)),
        ("mux.image", image), ("mux.created", host.now.strftime(CREATED_FORMAT)),
        ("mux.version", __version__), *repo_labels,
    ]
    if not repo_labels:  # a workdir that is a git repository: its HEAD now, for `mux diff`
        from mux.workspace.heads import base_labels

        labels += base_labels(workdir / ".git")
    instance = paths.instance(host.env)
    if instance:
        labels.append(("mux.instance", instance))
    spec = SessionSpec(
        name=name, image=image, workdir=workdir, labels=tuple(labels),
        command=tuple(opts.command), shell=d.shell, env=tuple(env),
        mounts=mounts, network=network, limits=limits._replace(pids=None),
        policy=RunPolicy(user=f"{uid}:{gid}" if run_as_user else None, pids_limit=limits.pids),
        home=session_dir / "home" if run_as_user else None,
        hostname=None if (network or "").startswith("container:") else name,  # docker refuses both
        accounts=tuple((session_dir / f, text) for f, text in
                       account.files(login, uid, group, gid, d.shell).items())
        if run_as_user else (),  # host files: a remote engine goes without (mux.session.mounts)
        stop_timeout=d.stop_timeout, pull=opts.pull or d.pull,
        ports=d.ports + tuple(validate.publish(p, "--publish") for p in opts.ports),
        cidfile=session_dir / layout.CIDFILE,
        cache_dirs=rust.dirs_to_create if rust else (),
        uid0=host.rootless is None and (not run_as_user or uid == 0),
        git_dir=protection.git_dir if protection else None,
        git_source=protection.git_source if protection else None,
        placeholders=protection.placeholders if protection else (),
    )
    spec = for_engine(spec, remote=host.remote, instance=paths.instance(host.env))
    return agent_spec(config, opts, host, spec, user_env=d.env + opts.env)


def agent_spec(config: Config, opts: NewOptions, host: HostFacts, spec: SessionSpec,
               user_env: tuple[str, ...]) -> SessionSpec:
    """--agent: the preset's command, variables and mounts (mux/session/agents.py)."""
    if not opts.agent:
        if opts.prompt is not None or opts.headless:
            raise ConfigError("--prompt and --headless need --agent")
        return spec
    if opts.proxy is False:
        raise ConfigError("--agent needs the proxy (the session holds no key; the proxy injects it), "
                          "not --no-proxy")
    from mux.session.agents import AgentRequest, apply

    req = AgentRequest(opts.agent, opts.prompt, opts.headless, tuple(opts.command))
    uid, gid = host.uid, host.gid
    if spec.user and not spec.user.startswith("0:"):  # mux chose one (mux as root: the workdir's owner)
        uid, gid = (int(x) for x in spec.user.split(":"))
    made = apply(config, req, spec, uid=uid, gid=gid, host_env=host.env,
                 host_home=Path(host.env.get("HOME") or Path.home()),
                 session_dir=host.session_dir(spec.name),
                 user_env_names={e.partition("=")[0] for e in user_env},
                 root_is_you=host.rootless is not None)
    made = for_engine(made, remote=host.remote, instance=paths.instance(host.env))
    from mux import ownfiles  # a `share` entry is mounted (or copied) too: never mux's own files

    own = ownfiles.own_paths(host.data_dir or paths.data_dir(), config.source, host.env)
    mine = host.session_dir(spec.name)  # what mux wrote for this session (the agent's wrapper)
    added = [m for m in made.mounts if m not in spec.mounts]
    ownfiles.check_spec_sources(None, tuple(m.text for m in added if not Path(m.source).is_relative_to(mine)),
                                own, workdir_what="")
    for fill in made.fills[len(spec.fills):]:
        for source, _ in fill.files:
            if not source.is_relative_to(mine):
                ownfiles.refuse(source, f"[agents.{opts.agent}] share", own)
    return made._replace(uid0=False)  # an agent never runs as root (mux.session.agents.agent_user)


def repo_options(opts: NewOptions) -> list[tuple[str, str]]:
    """Check --repo/--branch; the labels they give (the branch may be filled in
    after the clone, when the remote's default branch is known)."""
    if opts.branch and not opts.repo:
        raise ConfigError("--branch needs --repo: it names the branch of the repository to clone")
    if not opts.repo:
        return []
    if opts.workdir:
        raise ConfigError("--repo and --workdir exclude each other: a repo session works in its clone")
    from mux.workspace.repo import redact_url, validate_branch, validate_repo_url

    url = validate_repo_url(opts.repo)
    branch = validate_branch(opts.branch) if opts.branch else ""
    return [("mux.repo", redact_url(url)), ("mux.branch", branch)]


def proxy_settings(config: Config, opts: NewOptions, network: str | None) -> ProxySettings | None:
    """The proxy settings when this session goes through the proxy, else None.

    On when the config has a [proxy] table (unless enabled = false); --proxy and
    --no-proxy decide per session. network "none" has no network to proxy."""
    wanted = opts.proxy if opts.proxy is not None else (
        bool(config.proxy and config.proxy.enabled) or opts.egress == "proxy-only")
    wanted = wanted or bool(opts.agent)  # an agent's key comes only from the proxy
    if not wanted or network == "none":
        return None
    if config.proxy is not None:
        return config.proxy
    from mux.proxy.settings import default_settings

    return default_settings()


class Step(NamedTuple):
    """One step of `mux new`, in the order they run."""

    name: str
    boundary: str | None  # the mux.interrupts boundary once it is done (test_trust interrupts each)
    undo: str | None  # what Undo removes once it ran (mux/session/create.py), None: nothing of its own
    what: str


STEPS = {s.name: s for s in (
    Step("proxy", "proxy-started", None, "the proxy running these settings (not with --dry-run)"),
    Step("claim", "claimed", "files", "the session directory, claimed atomically (the name's lock)"),
    Step("tunnel", None, "far", "a remote engine's ssh tunnel to the proxy"),
    Step("wire", "proxy-wired", "proxy", "the session's proxy secret registered, its env-file written"),
    Step("clone", "cloned", None, "--repo cloned into the session directory (host git, before any agent)"),
    Step("dirs", "dirs", None, "HOME, passwd and group, cache directories; a workdir's protection"),
    Step("agent-home", "agent-home", None, "the agent's wrapper and seeded HOME"),
    Step("volumes", None, "container", "volumes created and filled, the container created, copied into, started"),
    Step("run", "run", "container", "docker run"),
    Step("started", "started", None, "the session's command checked to have started"),
)}


class Plan(NamedTuple):
    spec: SessionSpec  # final but for what only the steps learn (the proxy's wiring, the clone's branch)
    proxy: ProxySettings | None  # None: the session goes without the proxy
    egress: str  # its mux.egress (mux/egress/relay.py)
    steps: tuple[Step, ...]


def plan(config: Config, opts: NewOptions, host: HostFacts, *,
         warn: Callable[[str], None] = lambda message: None) -> Plan:
    """Every check and decision of `mux new` that needs no engine: exit 2 here leaves
    nothing behind. ``warn`` gets the warnings, in the order they are found."""
    spec = build_spec(config, opts, host)
    if config.git.inject_config:
        from mux.workspace import gitident

        warning = gitident.warning(config.git.user_name or host.git_name, config.git.user_email or host.git_email)
        if warning:
            warn(f"mux: warning: {warning}")
    if config.docker.rust.sccache and config.docker.rust.cache_scope == "global":
        warn("mux: warning: [docker.rust] cache_scope = \"global\": every session shares one compiler "
             "cache, so any session's agent can poison every other session's builds")
    if not (opts.repo or opts.copy) and (opts.unprotected or config.docker.protect == ()):
        why = "--unprotected" if opts.unprotected else "[docker] protect = []"
        warn(f"mux: warning: {why}: the agent can write this workdir's .git (its hooks and config), "
             ".envrc, .vscode/ and the other files your own tools run")
    for port in spec.ports:
        if validate.exposes_publicly(port):
            warn(f"mux: warning: -p {port} publishes on every interface of this host: "
                 "other machines can reach it")
    proxy = proxy_settings(config, opts, spec.network)
    from mux.egress.relay import decide

    egress = decide(config, opts.egress, proxy is not None, spec.network)
    if egress == "proxy-only" and spec.ports:  # docker drops -p on an --internal network, silently
        raise ConfigError(f"-p {spec.ports[0]}: a proxy-only session's network is internal, and docker "
                          "publishes no port from it",
                          hint=f"drop -p (and [docker] ports); `mux forward {spec.name} PORT` reaches it once it runs")
    if proxy is not None:  # `mux list` shows it
        spec = spec._replace(labels=spec.labels + (("mux.egress", egress),))
    in_volumes = opts.copy or host.remote  # the engine cannot see this machine's files
    if in_volumes:
        from mux.session.volumes import as_volume_spec

        spec = as_volume_spec(spec)
    names = ["proxy"] if proxy is not None else []
    names += ["claim"] + (["tunnel"] if proxy is not None and host.remote else [])
    names += ["wire"] if proxy is not None else []
    names += ["clone"] if opts.repo else []
    names += ["dirs"] + (["agent-home"] if opts.agent else [])
    names += ["volumes" if in_volumes else "run", "started"]
    return Plan(spec, proxy, egress, tuple(STEPS[n] for n in names))
