"""Pure functions: typed values in, engine commands out. No I/O here.

Every builder returns an :class:`EngineArgv`, verb first (``["ps", "-a", ...]``): which CLI
runs it, and against which engine, is the Runner's business (mux/engine/runner.py puts the
engine's base argv in front and translates for podman).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from mux.names import CONTAINER_HOME, WORKSPACE

if TYPE_CHECKING:
    from mux.spec import Mount, RunPolicy, SessionSpec


class EngineArgv(list[str]):
    """A container-engine command, verb first: ``EngineArgv(["start", ref])``. The Runner
    runs it as ``docker start REF``, ``docker --context box start REF`` or ``podman start
    REF``; a plain list is a host command (git, ssh, sh) and runs as it is. Adding words
    keeps the type (``+`` and ``+=``); a slice is a plain list."""

    def __init__(self, words: Iterable[object] = ()) -> None:
        super().__init__(os.fspath(w) if isinstance(w, os.PathLike) else str(w) for w in words)

    def __add__(self, other: Iterable[object]) -> EngineArgv:  # type: ignore[override]
        return EngineArgv([*self, *other])


# The default session runs the configured shell, or /bin/sh when the image lacks
# it; the shell's path is an argument ($1), never part of the script text.
SHELL_FALLBACK = (
    'if [ -x "$1" ]; then exec "$1"; fi; '
    'echo "mux: $1 is not in this image, using /bin/sh" >&2; exec /bin/sh'
)
# An interactive shell ignores SIGTERM but ends on SIGHUP, the signal a closing
# terminal sends; every other program's default action on SIGHUP is to exit too.
STOP_SIGNAL = "SIGHUP"
# What policy_args renders for the default RunPolicy (mux.spec.DROPPED_CAPS says why).
SECURITY = ["--security-opt", "no-new-privileges",
            *(a for cap in ("NET_RAW", "MKNOD", "SETFCAP", "AUDIT_WRITE", "SETPCAP") for a in ("--cap-drop", cap))]
DEFAULT_PIDS = 4096  # [docker.limits] pids: a fork bomb stops there, a big build does not


def option(flag: str, value: object | None) -> list[str]:
    """``[flag, value]`` when the value is set, else nothing."""
    return [] if value is None else [flag, str(value)]


def repeated(flag: str, values: Iterable[object]) -> list[str]:
    out: list[str] = []
    for value in values:
        out += [flag, str(value)]
    return out


def env_args(env: Iterable[tuple[str, str | None]]) -> list[str]:
    return repeated("-e", (name if value is None else f"{name}={value}" for name, value in env))


def mount_args(mounts: Iterable[Mount]) -> list[str]:
    """The mounts as docker -v takes them; what a remote engine gets instead of this
    machine's paths was decided before (mux.session.mounts.for_engine)."""
    return repeated("-v", (m.text for m in mounts))


def policy_args(policy: RunPolicy) -> list[str]:
    """The run policy's limits on what the session's processes may do (the user: -u, see run_argv)."""
    argv = option("--pids-limit", policy.pids_limit)
    argv += ["--security-opt", "no-new-privileges"] if policy.no_new_privileges else []
    argv += repeated("--cap-drop", policy.cap_drop) + repeated("--cap-add", policy.cap_add)
    return argv


def run_argv(spec: SessionSpec) -> EngineArgv:
    argv = EngineArgv(["run", "-d", *(["-it"] if spec.tty else []), "--init", "--name", spec.container])
    argv += option("--cidfile", spec.cidfile)  # the ID of what docker made, even if start fails
    argv += option("--hostname", spec.hostname)
    argv += repeated("--label", (f"{k}={v}" for k, v in spec.labels))
    argv += ["-v", f"{spec.workspace_volume or spec.workdir}:{WORKSPACE}", "-w", WORKSPACE]
    argv += option("-u", spec.policy.user)
    home = spec.home_volume or spec.home
    if home is not None:
        argv += ["-v", f"{home}:{CONTAINER_HOME}", "-e", f"HOME={CONTAINER_HOME}"]
    argv += repeated("-v", (f"{path}:/etc/{path.name}:ro" for path, _ in spec.accounts))
    argv += mount_args(spec.mounts)
    argv += repeated("--env-file", spec.env_files)
    argv += env_args(spec.env)
    argv += option("--network", spec.network)
    argv += repeated("--add-host", spec.extra_hosts)
    argv += repeated("--dns", spec.dns)
    argv += repeated("-p", spec.ports)
    argv += option("--memory", spec.limits.memory)
    argv += option("--memory-swap", spec.limits.memory_swap)
    argv += option("--cpus", spec.limits.cpus)
    argv += policy_args(spec.policy)
    argv += ["--stop-signal", STOP_SIGNAL, "--stop-timeout", str(spec.stop_timeout)]
    argv += option("--pull", spec.pull)
    argv.append(spec.image)
    if spec.command:
        argv += spec.command
    else:
        argv += ["/bin/sh", "-c", SHELL_FALLBACK, "mux-session", spec.shell]
    return argv


def create_argv(spec: SessionSpec) -> EngineArgv:
    """`docker create` of what run_argv would run (started later, after copies into it)."""
    argv = run_argv(spec)
    assert argv[:2] == ["run", "-d"]
    return EngineArgv(["create", *argv[2:]])


def cp_argv(source: object, dest: object, *, follow_link: bool = False) -> EngineArgv:
    return EngineArgv(["cp", *(["-L"] if follow_link else []), str(source), str(dest)])


def volume_create_argv(name: str, labels: Iterable[tuple[str, str]]) -> EngineArgv:
    return EngineArgv(["volume", "create", *repeated("--label", (f"{k}={v}" for k, v in labels)), name])


def volume_rm_argv(names: Sequence[str]) -> EngineArgv:
    return EngineArgv(["volume", "rm", *names])


def volume_ls_argv(*, instance: str | None = None) -> EngineArgv:
    """Volumes of mux sessions, one per line: NAME<tab>SESSION<tab>INSTANCE."""
    argv = EngineArgv(["volume", "ls", "--filter", "label=mux.session"])
    argv += ["--filter", f"label=mux.instance={instance}"] if instance else []
    return argv + ["--format", '{{.Name}}\t{{.Label "mux.session"}}\t{{.Label "mux.instance"}}']


def volume_names_argv(label: str) -> EngineArgv:
    """Names of the volumes carrying ``label``, one per line."""
    return EngineArgv(["volume", "ls", "-q", "--filter", f"label={label}"])


def fill_helper_argv(name: str, volume: str, mount: str, image: str, *, pull: str | None,
                     labels: Iterable[tuple[str, str]]) -> EngineArgv:
    """A container that is created (never started) only so `docker cp` can write into
    ``volume`` at ``mount``; its command never runs."""
    return EngineArgv(["create", "--name", name, *repeated("--label", (f"{k}={v}" for k, v in labels)),
            *option("--pull", pull), "--network", "none", "-v", f"{volume}:{mount}", image, "true"])


def cleanup_argv(image: str, directory: object, entries: Sequence[str], *,
                 labels: Iterable[tuple[str, str]]) -> EngineArgv:
    """Remove ``entries`` of ``directory`` as root, in a throw-away container of ``image``
    that sees nothing else (`mux delete` of files a container made as root)."""
    return EngineArgv(["run", "--rm", "--pull", "never", "--network", "none", "-u", "0:0",
            *repeated("--label", (f"{k}={v}" for k, v in labels)), "-v", f"{directory}:/x",
            "--entrypoint", "rm", image, "-rf", "--", *(f"/x/{e}" for e in entries)])


def special_cleanup_argv(image: str, directory: object, *, labels: Iterable[tuple[str, str]]) -> EngineArgv:
    """Remove device nodes and clear setuid/setgid bits under ``directory`` as root, in a
    throw-away container of ``image`` that sees nothing else: files a uid-0 session left
    that this user cannot change (mux/workspace/special.py). Prints each path it changed."""
    return EngineArgv(["run", "--rm", "--pull", "never", "--network", "none", "-u", "0:0",
            "--security-opt", "no-new-privileges", "--cap-drop", "ALL",
            "--cap-add", "FOWNER", "--cap-add", "DAC_OVERRIDE",
            *repeated("--label", (f"{k}={v}" for k, v in labels)), "-v", f"{directory}:/x",
            "--entrypoint", "find", image, "/x", "-xdev",
            "(", "-type", "b", "-o", "-type", "c", ")", "-print", "-exec", "rm", "-f", "{}", "+",
            "-o", "-type", "f", "(", "-perm", "-4000", "-o", "-perm", "-2000", ")",
            "-print", "-exec", "chmod", "ug-s", "{}", "+"])


def ps_argv(fmt: str, *, name: str | None = None, instance: str | None = None,
            label: str = "mux.session") -> EngineArgv:
    argv = EngineArgv(["ps", "-a", "--no-trunc", "--filter", f"label={label}"])
    if name is not None:
        argv += ["--filter", f"label=mux.session={name}"]
    if instance is not None:
        argv += ["--filter", f"label=mux.instance={instance}"]
    return argv + ["--format", fmt]


def inspect_argv(container: str, fmt: str) -> EngineArgv:
    return EngineArgv(["container", "inspect", "--format", fmt, container])


# Lifecycle commands name the container by ID (sessions.Session.ref), found by
# label: the name mux-NAME may be held by a container that is not the session.
def start_argv(container: str) -> EngineArgv:
    return EngineArgv(["start", container])


def stop_argv(container: str) -> EngineArgv:
    return EngineArgv(["stop", container])


def rm_argv(containers: Sequence[str], *, force: bool = False) -> EngineArgv:
    return EngineArgv(["rm", *(["-f"] if force else []), *containers])


def attach_argv(container: str) -> EngineArgv:
    return EngineArgv(["attach", container])


def exec_argv(container: str, command: Sequence[str], *, tty: bool) -> EngineArgv:
    return EngineArgv(["exec", "-i", *(["-t"] if tty else []), container, *command])


def logs_argv(container: str, *, follow: bool = False, tail: int | None = None) -> EngineArgv:
    return EngineArgv(["logs", *(["-f"] if follow else []), *option("--tail", tail), container])


def top_argv(container: str) -> EngineArgv:
    return EngineArgv(["top", container])


def server_arch_argv() -> EngineArgv:
    return EngineArgv(["version", "--format", "{{.Server.Arch}}"])


def copy_in_argv(source: object, container: str, target: str) -> EngineArgv:
    return EngineArgv(["cp", str(source), f"{container}:{target}"])


def probe_argv(container: str, helper: str, port: int) -> EngineArgv:
    """Whether something listens on ``port`` in the container (exit 0) or not (1)."""
    return EngineArgv(["exec", container, helper, "-z", str(port)])


def tunnel_argv(container: str, helper: str) -> EngineArgv:
    """The stream every connection of a `mux forward` goes through."""
    return EngineArgv(["exec", "-i", container, helper, "-m"])
