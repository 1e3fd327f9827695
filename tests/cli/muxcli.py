"""Helpers for the CLI tests: the real `mux` entry point in-process, a fake `docker`.

No test here reaches a Docker engine: every process mux starts must be
registered with ``fp``, and an unregistered one fails the test.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from mux import __version__, paths
from mux.cli import main
from mux.engine import argv as A
from mux.engine.runner import quote
from mux.session.sessions import PS_FORMAT

FROZEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
IMAGE = "mux-test/busybox"
CID = "0123abcd" * 8  # the container ID of every session ps_line describes
PS_ALL = ["docker", "ps", "-a", "--no-trunc", "--filter", "label=mux.session", "--format", PS_FORMAT]


NEW_ID = "f00d" * 16  # what `docker run -d` prints
TOP_STARTED = ("UID PID PPID C STIME TTY TIME CMD\n"
               "root 9 8 0 05:09 ? 00:00:00 /sbin/docker-init -- /bin/sh\n"
               "root 10 9 0 05:09 ? 00:00:00 /bin/sh\n")


def top(cid: str = NEW_ID) -> list[str]:
    return ["docker", "top", cid]


def register_run(fp, argv: list[str], cid: str = NEW_ID) -> None:  # type: ignore[no-untyped-def]
    """A `docker run -d` that starts its command: the run, then the started check."""
    fp.register(argv, stdout=cid + "\n")
    fp.register(top(cid), stdout=TOP_STARTED)


def mounts(cid: str = CID) -> list[str]:
    """How a start checks that the session's bind-mounted directories still exist."""
    from mux.session.lifecycle import BIND_SOURCES

    return ["docker", "container", "inspect", "--format", BIND_SOURCES, cid]


def probe(name: str) -> list[str]:
    """How a not-found session checks for a container merely holding its name."""
    return ["docker", "container", "inspect", "--format", "{{.Id}}", f"mux-{name}"]


def ps_one(name: str) -> list[str]:
    return ["docker", "ps", "-a", "--no-trunc", "--filter", "label=mux.session",
            "--filter", f"label=mux.session={name}", "--format", PS_FORMAT]


def ps_line(name: str, state: str = "running", **labels: str) -> str:
    row = {"id": CID, "container": f"mux-{name}", "state": state, "docker_image": IMAGE,
           "docker_status": "Exited (0) 2 minutes ago" if state == "exited" else "Up 2 minutes",
           "session": name, "backend": "docker", "workdir": f"/home/u/{name}", "image": IMAGE,
           "created": "2026-01-02T03:04:05Z", "version": __version__, "repo": "", "branch": ""}
    row.update(labels)
    return json.dumps(row) + "\n"


@dataclass
class Outcome:
    code: int
    out: str
    err: str


def run(*args: str) -> Outcome:
    """`mux ARGS...` through its real entry point (error handler and exit codes included)."""
    with CliRunner().isolation() as (out, err, _):
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            sys.stdout.flush()  # print() output still sits in the text wrapper
            sys.stderr.flush()
    return Outcome(code, out.getvalue().decode(), err.getvalue().decode())


class _Frozen(datetime):
    @classmethod
    def now(cls, tz: object = None) -> datetime:  # type: ignore[override]
        return FROZEN


@dataclass
class Home:
    root: Path
    data: Path
    config: Path
    proj: Path

    def write_config(self, text: str) -> None:
        self.config.write_text(text)

    def session_dir(self, name: str) -> Path:
        return self.data / "sessions" / name


BASE_CONFIG = (f'[docker]\nimage = "{IMAGE}"\npull = "never"\n\n'
               '[git]\nuser_name = "Ada Lovelace"\nuser_email = "ada@example.com"\n')


@pytest.fixture
def home(mux_home: Path, monkeypatch: pytest.MonkeyPatch) -> Home:
    """mux_home plus: no user/system config reachable, a fixed clock, cwd = a project dir."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(mux_home / "xdg"))
    # The local engine, whatever docker context the developer's shell has chosen.
    monkeypatch.setenv("DOCKER_CONFIG", str(mux_home / "docker-config"))
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    monkeypatch.setattr(paths, "SYSTEM_CONFIG", str(mux_home / "etc" / "mux" / "config.toml"))
    monkeypatch.setattr("mux.session.create.datetime", _Frozen)
    proj = (mux_home / "proj").resolve()
    proj.mkdir()
    monkeypatch.chdir(proj)
    h = Home(root=mux_home, data=mux_home / "data", config=mux_home / "config.toml", proj=proj)
    h.write_config(BASE_CONFIG)
    return h


@pytest.fixture
def execs(monkeypatch: pytest.MonkeyPatch, fp) -> list[list[str]]:  # type: ignore[no-untyped-def]
    """Commands handed the terminal, recorded: exec'd with os.execvp (the test
    process stays), or run on it as a child (docker attach, exec and logs)."""
    calls: list[list[str]] = []

    def fake_execvp(file: str, args: list[str]) -> None:
        assert file == args[0]
        calls.append(list(args))
        raise SystemExit(0)  # a real exec never returns

    monkeypatch.setattr(os, "execvp", fake_execvp)
    for verb in ("attach", "exec", "logs"):
        fp.register(["docker", verb, fp.any()], occurrences=100,
                    callback=lambda process: calls.append([str(a) for a in process.args]))
    return calls


# What a workdir session mounts over the user's project (mux/workspace/protect.py), spelled out
# here so a change to the list shows in the tests: its own git directory at .git,
# the rest read-only onto themselves.
PROTECTED = [".gitmodules", ".envrc", ".vscode", ".idea", ".mcp.json", ".claude/settings.json",
             ".claude/settings.local.json", ".claude/commands", ".claude/agents", ".bashrc", ".bash_profile",
             ".zshrc", ".zprofile", ".profile"]


def protected_mounts(workdir: Path, session: Path) -> list[str]:
    """The mounts over a workdir that is not a git repository."""
    return ["-v", f"{session}/git:/workspace/.git",
            *(arg for rel in PROTECTED for arg in ("-v", f"{workdir}/{rel}:/workspace/{rel}:ro"))]


def placeholder_steps(workdir: Path, session: Path) -> list[str]:
    """The host steps that make an empty workdir's git directory and placeholders, as printed."""
    dirs = {".git", ".vscode", ".idea", ".claude", ".claude/commands", ".claude/agents"}
    order = [".git", *PROTECTED[:5], ".claude", *PROTECTED[5:]]
    return [quote(["mkdir", f"{session}/git"]),
            *(quote(["mkdir" if rel in dirs else "touch", f"{workdir}/{rel}"]) for rel in order)]


def run_argv(home: Home, name: str = "s1", *, image: str = IMAGE, env: list[str] | None = None,
             middle: list[str] | None = None, tail: list[str] | None = None,
             volumes: list[str] | None = None) -> list[str]:
    """The `docker run` mux issues for BASE_CONFIG, with the given pieces (``volumes``:
    the -v arguments after the session's own, the protected paths by default)."""
    workdir = home.proj
    git = ["-e", "GIT_CONFIG_COUNT=3", "-e", "GIT_CONFIG_KEY_0=safe.directory",
           "-e", "GIT_CONFIG_VALUE_0=/workspace", "-e", "GIT_CONFIG_KEY_1=user.name",
           "-e", "GIT_CONFIG_VALUE_1=Ada Lovelace", "-e", "GIT_CONFIG_KEY_2=user.email",
           "-e", "GIT_CONFIG_VALUE_2=ada@example.com"]
    return [
        "docker", "run", "-d", "-it", "--init", "--name", f"mux-{name}",
        "--cidfile", f"{home.session_dir(name)}/container.id", "--hostname", name,
        "--label", f"mux.session={name}", "--label", "mux.backend=docker",
        "--label", f"mux.workdir={workdir}", "--label", f"mux.image={image}",
        "--label", "mux.created=2026-01-02T03:04:05Z", "--label", f"mux.version={__version__}",
        "-v", f"{workdir}:/workspace", "-w", "/workspace",
        "-u", f"{os.getuid()}:{os.getgid()}",
        "-v", f"{home.session_dir(name)}/home:/home/mux", "-e", "HOME=/home/mux",
        "-v", f"{home.session_dir(name)}/passwd:/etc/passwd:ro", "-v", f"{home.session_dir(name)}/group:/etc/group:ro",
        *(protected_mounts(workdir, home.session_dir(name)) if volumes is None else volumes),
        *(git if env is None else env),
        *(middle or []),
        "--pids-limit", "4096", *A.SECURITY,
        "--stop-signal", "SIGHUP", "--stop-timeout", "10", "--pull", "never", image,
        *(tail if tail is not None else ["/bin/sh", "-c", A.SHELL_FALLBACK, "mux-session", "/bin/bash"]),
    ]
