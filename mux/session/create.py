"""`mux new`: the plan's steps done (mux/session/plan.py), undone on failure or interrupt."""

from __future__ import annotations

import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from mux import interrupts, paths
from mux.config import Config
from mux.engine import argv as A
from mux.engine.runner import Runner
from mux.errors import DockerError, MuxError
from mux.names import container_name
from mux.session import account, hostfiles, layout
from mux.session.mounts import for_engine
from mux.session.plan import HostFacts, NewOptions, Plan, plan
from mux.session.startcheck import wait_started
from mux.spec import SessionSpec

if TYPE_CHECKING:
    from mux.egress.reach import Probe
    from mux.proxy.settings import ProxySettings
    from mux.session.startcheck import Outcome


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
    SIGTERM, what this run made is removed before the error is reported. The steps are
    mux.session.plan's, in its order; with a dry-run runner each prints what it would run."""
    host = gather_host(runner, config)
    made = plan(config, opts, host, warn=lambda message: print(message, file=runner.err, flush=True))
    spec = made.spec
    if spec.ports:  # exit 2 before anything is made; an old engine gets the guard (mux/egress/loopback.py)
        from mux.egress.loopback import ensure_guard

        ensure_guard(runner, spec.ports, guarded=config.docker.loopback_guarded, session=spec.name)
    if opts.agent:  # every shell there finds the agent: PATH from the image, its wrapper first
        from mux.session.agentshell import with_path

        spec = with_path(runner, spec)
    if runner.engine.remote:
        from mux.session.volumes import refuse_local_paths

        refuse_local_paths(runner.engine, spec, repo=bool(opts.repo), copy=opts.copy,
                           proxied=made.proxy is not None)
    with interrupts.deferred() as guard:
        steps = Steps(runner, config, opts, made._replace(spec=spec), host.session_dir(spec.name), guard, progress)
        todo = list(made.steps)
        if todo[0].name == "proxy":
            steps.proxy()
            todo.pop(0)
        try:
            for step in todo:
                getattr(steps, step.name.replace("-", "_"))()
        except BaseException as exc:
            steps.failed(exc)
            raise
        if not runner.dry_run:
            hostfiles.release_creation(steps.session_dir)
    started = steps.started_as
    assert started is not None
    if not started.running:
        print(f"mux: note: the command of session {steps.spec.name} has already ended "
              f"(exit code {started.exit_code}); `mux logs {steps.spec.name}` shows its output", file=sys.stderr)
    return steps.spec


class Steps:
    """The steps of one `mux new` (mux.session.plan.STEPS), each a method named like it:
    what it does, the undo it enables, the boundary it reports."""

    def __init__(self, runner: Runner, config: Config, opts: NewOptions, made: Plan, session_dir: Path,
                 guard: interrupts.Guard, progress: bool) -> None:
        self.runner, self.config, self.opts, self.guard, self.progress = runner, config, opts, guard, progress
        self.spec, self.proxy_settings, self.egress = made.spec, made.proxy, made.egress
        self.session_dir = session_dir
        self.undo = Undo(runner, self.spec, self.session_dir)
        self.probe: Probe | None = None
        self.far: str | None = None  # where a remote engine's tunnel to the proxy listens there
        self.ref = self.spec.container
        self.started_as: Outcome | None = None

    def proxy(self) -> None:
        if self.runner.dry_run or self.proxy_settings is None:
            return
        from mux.egress.wiring import ensure_running

        with self.guard.allowed():
            # ProxyError (exit 5): no session without its policy
            ensure_running(self.proxy_settings, self.config.source)
        interrupts.boundary("proxy-started")

    def claim(self) -> None:
        if not self.runner.dry_run:
            if not hostfiles.claim_session_dir(self.session_dir):
                raise name_taken(self.runner, self.spec.name, self.session_dir)
            interrupts.boundary("claimed")  # made, not yet in the undo: the deferral covers it
            self.undo.files = True

    def tunnel(self) -> None:
        """A remote engine: the proxy's tunnel first (a proxy-only relay forwards to its end there)."""
        from mux.session.volumes import tunnel_up

        assert self.proxy_settings is not None
        self.undo.proxy = not self.runner.dry_run
        self.far = tunnel_up(self.runner, self.proxy_settings.port)
        self.undo.far = not self.runner.dry_run

    def wire(self) -> None:
        assert self.proxy_settings is not None
        self.undo.proxy = not self.runner.dry_run
        spec = wire_proxy(self.runner, self.proxy_settings, self.spec, proxy_only=self.egress == "proxy-only",
                          tunnel_end=self.far)
        # its CA bundle: mounted, or copied into a session on another machine
        self.spec = for_engine(spec, remote=self.runner.engine.remote, instance=paths.instance())
        interrupts.boundary("proxy-wired")

    def clone(self) -> None:
        from mux.workspace.repo import validate_repo_url

        assert self.opts.repo is not None
        with self.guard.allowed():
            # No --branch: the session's own branch, what git_push = "session" lets it push.
            branch = self.opts.branch or f"mux/{self.spec.name}"
            self.spec = hostfiles.clone_repo(self.runner, self.spec, validate_repo_url(self.opts.repo), branch,
                                             self.progress, proxied=self.proxy_settings is not None)
        interrupts.boundary("cloned")

    def dirs(self) -> None:
        spec = self.spec
        hostfiles.make_dirs(self.runner, spec, self.session_dir)
        if spec.git_dir is not None or spec.placeholders:
            from mux.workspace import protect

            protect.prepare(self.runner, spec, self.session_dir)
            if spec.git_dir is not None:  # mux as root: the session's own git directory is its user's
                hostfiles.hand_over(self.runner, spec, [spec.git_dir], recursive=True)
        interrupts.boundary("dirs")

    def agent_home(self) -> None:
        from mux.session.agents import prepare_home

        assert self.opts.agent is not None
        prepare_home(self.runner, self.opts.agent, self.spec, self.session_dir)
        interrupts.boundary("agent-home")

    def _container_next(self) -> None:
        self.undo.spec = self.spec
        self.guard.checkpoint()
        self.undo.container = not self.runner.dry_run

    def volumes(self) -> None:
        """Create, fill and start; it removes what it made if that fails."""
        from mux.session import volumes as V

        self._container_next()
        V.create_session(self.runner, self.spec, self.session_dir, remove_source=bool(self.opts.repo),
                         copies=self.spec.copies, cp_limit=self.config.docker.cp_limit)
        self.undo.volumes = [] if self.runner.dry_run else V.session_volumes(self.spec)
        if self.far is not None:  # from inside the session, while its start is checked: no wait of its own
            self.probe = V.reach_probe(self.runner, self.spec, self.far)

    def run(self) -> None:
        self._container_next()
        try:
            with self.guard.allowed():
                made = self.runner.run(A.run_argv(self.spec), shield=True)  # Ctrl-C waits for it, then undoes it
        except DockerError:
            self.undo.run_finished = True
            raise
        interrupts.boundary("run")  # the container exists; the undo finds it by --cidfile
        self.undo.run_finished = True
        self.ref = made.stdout.strip() or self.spec.container

    def started(self) -> None:
        started = self.started_as = wait_started(self.runner, self.ref)
        interrupts.boundary("started")
        if started.cannot_start:
            why = started.exec_error.split("] ", 1)[-1]
            raise MuxError(f"the command of session {self.spec.name!r} cannot start: {why}",
                           hint="check the command after `--`: is it in the image, on its PATH, executable?")
        if self.probe is not None:
            self.probe.verdict()  # exit 5 unless its network reaches the proxy (mux/egress/reach.py)
        self.guard.checkpoint()

    def failed(self, exc: BaseException) -> None:
        """Undo what was made; raise the error as the user should read it."""
        if self.probe is not None:
            self.probe.cancel()
        problems = self.undo() if not self.runner.dry_run else []
        if problems:
            note = "; and it could not undo everything: " + "; ".join(problems)
            hint = "`mux doctor` lists what is left and how to remove it"
            if isinstance(exc, MuxError):
                exc.message += note
                exc.hint = hint
            else:
                raise MuxError("interrupted" + note, hint=hint) from None
        if isinstance(exc, DockerError):
            raise explain_run_failure(self.runner, self.spec, exc) from None


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
