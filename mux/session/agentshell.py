"""The agent in every shell of its session, not only in its main process.

`mux exec NAME -- claude`, a shell from `mux exec -it NAME bash`, a login shell
(`bash -l`), the agent's own tool calls: each finds the agent's command and runs
it as the session's main process does. How:

- **One wrapper, also the main process.** A short /bin/sh script named like the
  agent's program, written by mux into the session's data dir and mounted
  read-only at /opt/mux/bin (on a remote engine: copied into a volume of the
  session's, read-only). It runs the image's own program if the image has one on
  PATH, else the host's binary mounted at /opt/mux/agents, with the agent's
  arguments (codex's ``-c`` settings, ``[agents.NAME] args``) before the caller's.
  The session's command is this wrapper, so a shell cannot get other settings
  than the main process. Its text is printed by `-v`/`--dry-run` (the host step
  that writes it). The agent's variables (base URL, placeholder key) are the
  container's, which every `docker exec` inherits.
- **PATH is the container's.** ``-e PATH=/opt/mux/bin:IMAGE_PATH``, the image's
  own PATH read with `docker image inspect` (docker's default when it sets none),
  so `docker exec` finds the wrapper and the image's programs stay where they were.
  The wrapper dir comes first: the agent's name means the agent, with its settings,
  in every shell of the session.
- **Login shells** reset PATH in /etc/profile and then read /etc/profile.d/*.sh:
  a snippet mounted read-only there puts /opt/mux/bin back in front.
"""

from __future__ import annotations

import json
import re
import shlex
from functools import partial
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from mux.engine.argv import EngineArgv
from mux.engine.runner import host_step, write_argv
from mux.errors import ConfigError, DockerError, MuxError

if TYPE_CHECKING:
    from mux.engine.runner import Runner
    from mux.spec import SessionSpec

AGENT_BIN = "/opt/mux/bin"  # the wrappers, first on the session's PATH
PROFILE = "/etc/profile.d/mux-agent.sh"  # login shells
PROFILE_FILE = ".profile"  # its source, next to the wrapper (not executable: never a command)
BIN_DIR = "bin"  # under the session's data dir: what is mounted at AGENT_BIN
# What dockerd gives a container whose image sets no PATH.
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MAX_PATH = 4096
PATH_TEXT = re.compile(rf"[\x20-\x7e]{{1,{MAX_PATH}}}")  # printable ASCII, bounded
# NUL (no program receives it) and what str.splitlines() would turn into "\n" (runner.write_argv)
UNWRITABLE = "\0\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
WRAPPER_MODE = 0o555
PROFILE_MODE = 0o444

PROFILE_TEXT = (
    "# mux: login shells (/etc/profile resets PATH) find the session's agent too (mux/session/agentshell.py)\n"
    f'case ":$PATH:" in *:{AGENT_BIN}:*) ;; *) PATH="{AGENT_BIN}:$PATH"; export PATH ;; esac\n'
)


def wrapper(command: str, args: tuple[str, ...], binary_dir: str, hint: str) -> str:
    """The wrapper's text: ``command`` (a name looked up on PATH outside AGENT_BIN, or
    an absolute path), else ``binary_dir``/its name, with ``args`` first; else ``hint``
    on stderr and exit 2. Every value is one shell-quoted word (shlex.quote)."""
    for value in (command, hint, *args):
        if any(c in value for c in UNWRITABLE):
            raise ConfigError(f"agent argument {value!r} contains a NUL byte or a line separator other "
                              "than newline, which the agent's wrapper script cannot hold")
    program = PurePosixPath(command).name
    q = shlex.quote
    if "/" in command:  # an absolute path in the image: only that
        find = f"if [ -f {q(command)} ] && [ -x {q(command)} ]; then exec {q(command)} \"$@\"; fi\n"
    else:  # the image's own, on PATH; never this wrapper again
        find = (
            f"p={q(program)}; set -f; IFS=:\n"
            "for d in $PATH; do\n"
            f'  if [ -n "$d" ] && [ "$d" != {AGENT_BIN} ] && [ -f "$d/$p" ] && [ -x "$d/$p" ]; then\n'
            '    set +f; unset IFS; exec "$d/$p" "$@"\n'
            "  fi\n"
            "done\n"
            "set +f; unset IFS\n"
        )
    binary = f"{binary_dir}/{program}"
    return (
        "#!/bin/sh\n"
        f"# mux: the session's {program}, run as its main process runs it: the image's own,\n"
        "# else the host's binary mounted read-only; the agent's arguments first (mux/session/agentshell.py)\n"
        + (f"set -- {' '.join(q(a) for a in args)} \"$@\"\n" if args else "")
        + find
        + f"if [ -x {q(binary)} ]; then exec {q(binary)} \"$@\"; fi\n"
        + f"printf '%s\\n' {q('mux: ' + hint)} >&2\n"
        "exit 2\n"
    )


def session_path(image_path: str | None) -> str:
    """The session's PATH: the wrappers first, then the image's own."""
    rest = [d for d in (image_path or DEFAULT_PATH).split(":") if d != AGENT_BIN]
    return ":".join([AGENT_BIN, *rest])


def parse_image_path(out: str) -> str | None:
    """PATH from `docker image inspect --format '{{json .Config.Env}}'` (untrusted:
    bounded, printable, else docker's default); None when the image sets none."""
    try:
        env = json.loads(out[:1 << 20])
    except ValueError:
        return None
    if not isinstance(env, list):
        return None
    for entry in env:
        if isinstance(entry, str) and entry.startswith("PATH="):
            value = entry[len("PATH="):]
            return value if PATH_TEXT.fullmatch(value) else None
    return None


def image_env_argv(image: str) -> EngineArgv:
    return EngineArgv(["image", "inspect", "--format", "{{json .Config.Env}}", image])


def image_path(runner: Runner, image: str, pull: str | None) -> str | None:
    """The image's PATH on the runner's engine, pulling it first when it is not there
    and the pull policy allows (as `docker run` would); None: no image to read."""
    found = runner.query(image_env_argv(image), check=False)
    if found.returncode != 0 and pull != "never":
        runner.run(EngineArgv(["pull", image]))
        found = runner.query(image_env_argv(image), check=False)
    if found.returncode != 0:
        if runner.dry_run:
            return DEFAULT_PATH  # the pull above was printed, not done
        if pull == "never":
            return None  # `docker run --pull never` says so, in its words (create.explain_run_failure)
        raise DockerError(f"cannot read image {image!r} after pulling it: {found.stderr.strip()[:300]}")
    return parse_image_path(found.stdout.strip()) or DEFAULT_PATH


def with_path(runner: Runner, spec: SessionSpec) -> SessionSpec:
    """An agent session's spec with the container-wide PATH that finds its wrapper. A
    user's own ``PATH=...`` (--env, [docker] env) is kept, behind the wrappers."""
    mine = [v for k, v in spec.env if k == "PATH"]
    if mine and mine[-1] is None:
        return spec  # --env PATH: the host's PATH, by the user's choice
    base = mine[-1] if mine else image_path(runner, spec.image, spec.pull)
    if base is None:
        return spec
    env = tuple((k, v) for k, v in spec.env if k != "PATH")
    return spec._replace(env=(("PATH", session_path(base)), *env))


def files(session_dir: Path, program: str, text: str) -> tuple[tuple[Path, str, int], ...]:
    """(host file, text, mode) to write before the session is made."""
    bin_dir = session_dir / BIN_DIR
    return ((bin_dir / program, text, WRAPPER_MODE), (bin_dir / PROFILE_FILE, PROFILE_TEXT, PROFILE_MODE))


def write_files(runner: Runner, spec: SessionSpec) -> None:
    """The agent's wrapper and login snippet, as their printed commands say: owned by
    mux's user (never the agent's when mux is root), readable by the agent's."""
    def fail(path: Path, exc: OSError) -> MuxError:
        return MuxError(f"cannot write the agent's wrapper {path}: {exc.strerror}")

    def make(d: Path) -> None:
        try:
            d.mkdir(exist_ok=True)
            d.chmod(0o755)  # the agent's uid may be another one (mux as root)
        except OSError as exc:
            raise fail(d, exc) from None

    def write(path: Path, content: str, mode: int | None = None) -> None:
        try:
            if mode is None:
                path.write_text(content)
            else:
                path.chmod(mode)
        except OSError as exc:
            raise fail(path, exc) from None

    for d in dict.fromkeys(path.parent for path, _, _ in spec.scripts):
        host_step(runner, ["mkdir", "-p", "-m", "755", d], partial(make, d))
    for path, text, mode in spec.scripts:
        argv, content = write_argv(path, text)
        host_step(runner, argv, partial(write, path, content))
        host_step(runner, ["chmod", f"{mode:o}", path], partial(write, path, "", mode))
