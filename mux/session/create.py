"""`mux new`: config + flags -> SessionSpec -> one `docker run`, undone on failure."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from mux import __version__, interrupts, paths, validate
from mux.config import Config, Limits
from mux.engine import argv as A
from mux.engine.runner import Runner
from mux.errors import ConfigError, DockerError, MuxError
from mux.names import CONTAINER_HOME, CREATED_FORMAT, WORKSPACE, container_name, session_name
from mux.session import account, hostfiles, layout
from mux.session.mounts import for_engine
from mux.session.startcheck import wait_started
from mux.spec import Mount, RunPolicy, SessionSpec

if TYPE_CHECKING:
    from mux.egress.reach import Probe
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


GIT_IDENTITY = ["git", "-C", "/", "config", "--show-scope", "--get-regexp", r"^user\.(name|email)$"]


def host_git_identity(runner: Runner) -> tuple[str | None, str | None]:
    """The host user's git name and email; none when git is missing or unset.

    From the user's global configuration only (~/.gitconfig and
    $XDG_CONFIG_HOME/git/config), never from a repository: the one in the current
    directory may be a workdir an agent wrote, whose .git/config would set the
    identity of the user's next session. ``-C /``: git looks for no repository here;
    and only lines of the global scope count, whatever $GIT_DIR or the system config
    say (``--global`` would read only one of the two global files on git < 2.46)."""
    try:
        result = runner.query(GIT_IDENTITY, check=False, error=MuxError)
    except MuxError:
        return None, None
    found = {}
    for line in result.stdout.splitlines():  # "global<TAB>user.name Ada": the last one wins, as in git
        scope, _, setting = line.partition("\t")
        key, sep, value = setting.partition(" ")
        if scope == "global" and sep:
            found[key] = value
    return found.get("user.name"), found.get("user.email")


def gather_host(runner: Runner, config: Config) -> HostFacts:
    git_name = git_email = None
    if config.git.inject_config and not (config.git.user_name and config.git.user_email):
        git_name, git_email = host_git_identity(runner)
    uid, gid = os.getuid(), os.getgid()
    login, group = account.host_names(uid, gid, os.environ)
    from mux.engine.vm import rootless_info

    rootless = rootless_info(runner)
    if rootless is not None:  # rootless Docker: its uid 0 is you here (mux/engine/vm.py)
        uid = gid = 0
    return HostFacts(
        uid=uid, gid=gid, env=dict(os.environ), cwd=Path.cwd(),
        now=datetime.now(timezone.utc), git_name=git_name, git_email=git_email, login=login, group=group,
        data_dir=Path(paths.data_dir()), remote=runner.engine.remote, rootless=rootless,
    )


def warn_git_identity(config: Config, host: HostFacts) -> None:
    if config.git.inject_config:
        from mux.workspace import gitident

        warning = gitident.warning(config.git.user_name or host.git_name, config.git.user_email or host.git_email)
        if warning:
            print(f"mux: warning: {warning}", file=sys.stderr)


def warn_unprotected(config: Config, opts: NewOptions) -> None:
    if not (opts.repo or opts.copy) and (opts.unprotected or config.docker.protect == ()):
        why = "--unprotected" if opts.unprotected else "[docker] protect = []"
        print(f"mux: warning: {why}: the agent can write this workdir's .git (its hooks and config), "
              ".envrc, .vscode/ and the other files your own tools run", file=sys.stderr)


def name_taken(runner: Runner, name: str, session_dir: Path | None = None) -> MuxError:
    from mux.session.sessions import list_sessions

    holders = list_sessions(runner, name)
    if holders:
        s = holders[0]
        return MuxError(
            f"session {name!r} already exists (container {s.container}, {s.status})",
            hint=f"`mux attach {name}` to use it, or `mux delete {name}` first to replace it",
        )
    if session_dir is not None:
        from mux.session.sessions import is_session_dir

        if not is_session_dir(session_dir):
            return MuxError(f"{session_dir} is in the way: it is not a session's directory (a link or a "
                            "file), and mux never removes what is not its own",
                            hint="look at it, and move it away yourself (`mux doctor` lists such entries)")
        if layout.being_created(session_dir):
            return MuxError(f"session {name!r} is being created by another mux right now")
        return MuxError(
            f"session {name!r} has files in {session_dir} but no container (removed by hand, "
            "or an earlier `mux new` was interrupted)",
            hint=f"`mux delete {name}` removes what was left (it keeps unsaved repo work unless --force)",
        )
    return MuxError(f"container {container_name(name)} already exists but is not a mux session"
                    + (" of this instance" if paths.instance() else ""),
                    hint=f"mux leaves it alone; rename or remove it yourself (`docker rename "
                    f"{container_name(name)} NEW`), or choose another NAME")


class Undo:
    """What this `mux new` has made so far, removed in reverse on failure or interrupt.

    Only what this run made is touched: the session directory it claimed, its
    proxy registration, and the container its own `docker run` created (read from
    --cidfile, else found by this session's labels, instance and creation time).
    """

    def __init__(self, runner: Runner, spec: SessionSpec, session_dir: Path) -> None:
        self.runner, self.spec, self.session_dir = runner, spec, session_dir
        self.files = self.proxy = self.container = False
        self.volumes: list[str] = []  # named volumes (mux/session/volumes.py) this run filled
        self.run_finished = False  # docker run ended by itself: no --cidfile means it made nothing
        self.far = False  # a remote engine's tunnel (and relay, network) may be this session's alone

    def __call__(self) -> list[str]:
        """Undo everything; what could not be undone, as messages."""
        problems = []
        steps = [(self.container, self._container), (bool(self.volumes), self._volumes),
                 (self.far, self._far), (self.proxy, self._proxy), (self.files, self._files)]
        for wanted, step in steps:
            if wanted:
                try:
                    step()
                except MuxError as exc:
                    problems.append(exc.message)
                interrupts.boundary(f"undo{step.__name__}")  # a second signal, mid-undo: deferred too
        return problems

    def _container(self) -> None:
        for ref in self.made():
            self.runner.run(A.rm_argv([ref], force=True))

    def made(self) -> list[str]:
        """IDs of the containers this run's `docker run` made (normally none or one)."""
        assert self.spec.cidfile is not None
        try:
            cid = self.spec.cidfile.read_text().strip()
        except OSError:
            cid = ""
        if not cid and self.run_finished:
            return []
        labels = dict(self.spec.labels)
        from mux.session.sessions import list_sessions

        mine = [s for s in list_sessions(self.runner, self.spec.name)
                if s.created == labels["mux.created"]]
        return [s.id for s in mine if not cid or s.id.startswith(cid) or cid.startswith(s.id)]

    def _volumes(self) -> None:
        self.runner.run(A.volume_rm_argv(self.volumes))

    def _far(self) -> None:
        """On a remote engine: the egress relay and network, and the tunnel, when no
        other session uses them."""
        from mux.egress.relay import remove_if_unused
        from mux.egress.tunnel import stop_if_unused

        remove_if_unused(self.runner)
        stop_if_unused(self.runner, {self.spec.name})

    def _proxy(self) -> None:
        from mux.egress.wiring import forget_session

        forget_session(self.spec.name)

    def _files(self) -> None:
        hostfiles.remove_session_dir(self.session_dir)


def create(runner: Runner, config: Config, opts: NewOptions, *, progress: bool = False) -> SessionSpec:
    """Make session opts.name completely, or leave nothing: on any failure, Ctrl-C or
    SIGTERM, what this run made is removed before the error is reported."""
    host = gather_host(runner, config)
    spec = build_spec(config, opts, host)
    warn_git_identity(config, host)
    if config.docker.rust.sccache and config.docker.rust.cache_scope == "global":
        print("mux: warning: [docker.rust] cache_scope = \"global\": every session shares one compiler "
              "cache, so any session's agent can poison every other session's builds", file=sys.stderr)
    warn_unprotected(config, opts)
    session_dir = host.session_dir(spec.name)
    for port in spec.ports:
        if validate.exposes_publicly(port):
            print(f"mux: warning: -p {port} publishes on every interface of this host: "
                  "other machines can reach it", file=runner.err, flush=True)
    proxy = proxy_settings(config, opts, spec.network)
    from mux.egress.relay import decide

    egress = decide(config, opts.egress, proxy is not None, spec.network)  # exit 2 before anything is made
    if egress == "proxy-only" and spec.ports:  # docker drops -p on an --internal network, silently
        raise ConfigError(f"-p {spec.ports[0]}: a proxy-only session's network is internal, and docker "
                          "publishes no port from it",
                          hint=f"drop -p (and [docker] ports); `mux forward {spec.name} PORT` reaches it once it runs")
    if spec.ports:  # exit 2 before anything is made; an old engine gets the guard (mux/egress/loopback.py)
        from mux.egress.loopback import ensure_guard

        ensure_guard(runner, spec.ports, guarded=config.docker.loopback_guarded, session=spec.name)
    if proxy is not None:  # `mux list` shows it
        spec = spec._replace(labels=spec.labels + (("mux.egress", egress),))
    if opts.agent:  # every shell there finds the agent: PATH from the image, its wrapper first
        from mux.session.agentshell import with_path

        spec = with_path(runner, spec)
    volumes = opts.copy or runner.engine.remote  # the engine cannot see this machine's files
    if volumes:
        from mux.session import volumes as V

        if runner.engine.remote:
            V.refuse_local_paths(runner.engine, spec, repo=bool(opts.repo), copy=opts.copy,
                                 proxied=proxy is not None)
        spec = V.as_volume_spec(spec)
    with interrupts.deferred() as guard:
        if proxy is not None and not runner.dry_run:
            from mux.egress.wiring import ensure_running

            with guard.allowed():
                ensure_running(proxy, config.source)  # ProxyError (exit 5): no session without its policy
            interrupts.boundary("proxy-started")
        undo = Undo(runner, spec, session_dir)
        probe: Probe | None = None
        far: str | None = None  # where a remote engine's tunnel to the proxy listens there
        try:
            if not runner.dry_run:
                if not hostfiles.claim_session_dir(session_dir):
                    raise name_taken(runner, spec.name, session_dir)
                interrupts.boundary("claimed")  # made, not yet in the undo: the deferral covers it
                undo.files = True
            if proxy is not None:
                undo.proxy = not runner.dry_run
                # A remote engine: its tunnel first (a proxy-only relay forwards to its end there)
                far = V.tunnel_up(runner, proxy.port) if runner.engine.remote else None
                undo.far = far is not None and not runner.dry_run
                spec = wire_proxy(runner, proxy, spec, proxy_only=egress == "proxy-only", tunnel_end=far)
                # its CA bundle: mounted, or copied into a session on another machine
                spec = for_engine(spec, remote=runner.engine.remote, instance=paths.instance())
                interrupts.boundary("proxy-wired")
            if opts.repo:
                from mux.workspace.repo import validate_repo_url

                with guard.allowed():
                    # No --branch: the session's own branch, what git_push = "session" lets it push.
                    branch = opts.branch or f"mux/{spec.name}"
                    spec = hostfiles.clone_repo(runner, spec, validate_repo_url(opts.repo), branch,
                                                progress, proxied=proxy is not None)
                interrupts.boundary("cloned")
            hostfiles.make_dirs(runner, spec, session_dir)
            if spec.git_dir is not None or spec.placeholders:
                from mux.workspace import protect

                protect.prepare(runner, spec, session_dir)
                if spec.git_dir is not None:  # mux as root: the session's own git directory is its user's
                    hostfiles.hand_over(runner, spec, [spec.git_dir], recursive=True)
            interrupts.boundary("dirs")
            if opts.agent:
                from mux.session.agents import prepare_home

                prepare_home(runner, opts.agent, spec, session_dir)
                interrupts.boundary("agent-home")
            undo.spec = spec
            guard.checkpoint()
            undo.container = not runner.dry_run
            if volumes:  # create, fill and start; it removes what it made if that fails
                V.create_session(runner, spec, session_dir, remove_source=bool(opts.repo),
                                 copies=spec.copies, cp_limit=config.docker.cp_limit)
                undo.volumes = [] if runner.dry_run else V.session_volumes(spec)
                ref = spec.container
                if far is not None:  # from inside the session, while its start is checked: no wait of its own
                    probe = V.reach_probe(runner, spec, far)
            else:
                try:
                    with guard.allowed():
                        made = runner.run(A.run_argv(spec), shield=True)  # Ctrl-C waits for it, then undoes it
                except DockerError:
                    undo.run_finished = True
                    raise
                interrupts.boundary("run")  # the container exists; the undo finds it by --cidfile
                undo.run_finished = True
                ref = made.stdout.strip() or spec.container
            started = wait_started(runner, ref)
            interrupts.boundary("started")
            if started.cannot_start:
                why = started.exec_error.split("] ", 1)[-1]
                raise MuxError(f"the command of session {spec.name!r} cannot start: {why}",
                               hint="check the command after `--`: is it in the image, on its PATH, executable?")
            if probe is not None:
                probe.verdict()  # exit 5 unless its network reaches the proxy (mux/egress/reach.py)
            guard.checkpoint()
        except BaseException as exc:
            if probe is not None:
                probe.cancel()
            problems = undo() if not runner.dry_run else []
            if problems:
                note = "; and it could not undo everything: " + "; ".join(problems)
                hint = "`mux doctor` lists what is left and how to remove it"
                if isinstance(exc, MuxError):
                    exc.message += note
                    exc.hint = hint
                else:
                    raise MuxError("interrupted" + note, hint=hint) from None
            if isinstance(exc, DockerError):
                raise explain_run_failure(runner, spec, exc) from None
            raise
        if not runner.dry_run:
            hostfiles.release_creation(session_dir)
    if not started.running:
        print(f"mux: note: the command of session {spec.name} has already ended "
              f"(exit code {started.exit_code}); `mux logs {spec.name}` shows its output", file=sys.stderr)
    return spec


PORT_FAILURES = ("address already in use", "port is already allocated", "programming external connectivity")


def explain_run_failure(runner: Runner, spec: SessionSpec, exc: DockerError) -> MuxError:
    """Say what went wrong with `docker run` in the user's terms."""
    err = exc.stderr
    if "is already in use by container" in err:
        return name_taken(runner, spec.name)
    if any(m in err for m in PORT_FAILURES):
        import re

        where = re.search(r"(\S+:\d+)(?::? bind| failed)", err)
        return DockerError(
            "a port published with -p is already in use on this host"
            + (f": {where[1]}" if where else ""),
            hint="publish another host port (like -p 8081:80), or none (-p 80) and see it with `mux port`",
            argv=exc.argv, returncode=exc.returncode, stderr=err,
        )
    if "No such image" in err:
        return DockerError(
            f"image {spec.image!r} is not available locally, and the pull policy forbids pulling",
            hint=f"`docker pull {spec.image}`, or use --pull missing",
            argv=exc.argv, returncode=exc.returncode, stderr=err,
        )
    if "Unable to find image" in err or "pull access denied" in err or "manifest unknown" in err:
        return DockerError(
            f"could not pull image {spec.image!r}: {exc.message.split(': ', 1)[-1]}",
            hint="check the image name and your registry access (`docker pull` it by hand to see why)",
            argv=exc.argv, returncode=exc.returncode, stderr=err,
        )
    return exc


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


def wire_proxy(runner: Runner, proxy: ProxySettings, spec: SessionSpec, *, proxy_only: bool = False,
               tunnel_end: str | None = None) -> SessionSpec:
    """Add the proxy's env, env-file (the only place the session secret is
    written), CA bundle and host alias. The proxy's variables come first so a
    user's own -e still wins. proxy-only: the session runs on mux's egress network
    (``tunnel_end``: on a remote engine, where the proxy's tunnel listens there)."""
    from mux.egress.wiring import proxy_only_network, session_wiring

    via = None
    if proxy_only:
        from mux.egress.relay import NO_DNS

        network, via = proxy_only_network(runner, proxy, tunnel_end)
        spec = spec._replace(network=network, dns=(NO_DNS,))
    else:  # [proxy] host_address, or the name a VM engine documents for this machine
        from mux.engine.vm import proxy_host

        via = proxy_host(runner, proxy.host_address)
    wiring = session_wiring(proxy, spec.name, spec.network, dry_run=runner.dry_run, proxy_host=via)
    return spec._replace(
        env=tuple(wiring.env) + spec.env,
        env_files=spec.env_files + ((wiring.env_file,) if wiring.env_file else ()),
        mounts=spec.mounts + wiring.mounts,
        extra_hosts=spec.extra_hosts + tuple(wiring.add_hosts),
    )
