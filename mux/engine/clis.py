"""Which container CLI mux drives (docker or podman), and every difference between them.

mux builds engine commands verb first, in docker's words (mux/engine/argv.py's EngineArgv);
the runner puts the engine's base argv in front and passes each through :func:`translate`
when the engine's CLI is podman, so no feature knows which CLI runs it, and what
``--dry-run`` prints is what runs, ready to paste. With docker nothing changes: not one
byte of any argv.

Podman 4.3 (Debian 12's, the floor) differs from docker 20.10 in what is handled here:
``{{.Label "k"}}`` is spelled ``{{index .Labels "k"}}``; ``ps``'s ``{{.State}}`` is
prose ("Up 3 seconds ago"), the raw state is ``{{.ListContainer.State}}``;
``{{.ServerVersion}}`` and ``{{.Server.Arch}}`` do not exist (``podman info`` has them
as ``.Version.Version`` and ``.Host.Arch``); ``network inspect`` has no
``.Containers`` (``ps --filter network=`` lists them); ``--add-host X:host-gateway``
is rejected; its error messages are worded differently (:func:`docker_wording` maps
the ones mux reads back to docker's). Rootless, a session also gets
``--userns=keep-id`` (files it writes in /workspace belong to the user, and its uid is
the user's), and on cgroup v1 ``--memory``/``--cpus`` are dropped with one warning,
since podman would ignore them anyway.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from mux.errors import ConfigError

DOCKER = "docker"
PODMAN = "podman"
CLIS = (DOCKER, PODMAN)
ENV = "MUX_DOCKER_CLI"
LABEL = "mux.cli"  # on a podman session's container: the CLI it was made with
# What a rootless container reaches this machine's loopback at (slirp4netns, with
# allow_host_loopback): the stand-in for docker's host-gateway.
HOST_LOOPBACK = "10.0.2.2"
LOOPBACK_NETWORK = "slirp4netns:allow_host_loopback=true"
LIMIT_FLAGS = ("--memory", "--memory-swap", "--cpus")
LIMITS_IGNORED = ("podman ignores --memory and --cpus for a rootless user on cgroup v1; "
                  "this session runs without them (`mux doctor` shows the cgroup version)")
CREATE_VERBS = ("run", "create")
ACTIVE = DOCKER  # the CLI this mux command chose (mux.cli.State): messages name its commands
INHIBIT_OPTION = "com.docker.network.bridge.inhibit_ipv4=true"


def choose(configured: str | None, env: Mapping[str, str] | None = None) -> str:
    """The CLI of this mux command: $MUX_DOCKER_CLI, then ``[docker] cli``, then docker."""
    env = os.environ if env is None else env
    if env.get(ENV):
        return check(env[ENV], f"${ENV}")
    if configured is not None:
        return check(configured, "[docker] cli")
    return DOCKER


def check(value: str, what: str) -> str:
    if value not in CLIS:
        raise ConfigError(f"{what}: must be one of {', '.join(CLIS)}, got {value!r}")
    return value


def rootless() -> bool:
    """Podman run by a normal user is rootless (its own user namespace, slirp4netns)."""
    return os.geteuid() != 0


def cgroup_v2() -> bool:
    return os.path.exists("/sys/fs/cgroup/cgroup.controllers")


def limits_ignored(is_rootless: bool) -> bool:
    return is_rootless and not cgroup_v2()


def limits_count(args: list[str]) -> int:
    """How many --memory/--cpus options a command line has (the runner warns when some went)."""
    return sum(arg.split("=", 1)[0] in LIMIT_FLAGS for arg in args)


def _template(fmt: str, verb: str) -> str:
    fmt = fmt.replace('.Label "', 'index .Labels "')
    if verb == "network":  # see INHIBIT_OPTION: on podman, being internal is the same promise
        fmt = fmt.replace(f'{{{{index .Options "{INHIBIT_OPTION.split("=")[0]}"}}}}', "{{.Internal}}")
    if verb == "ps":
        fmt = re.sub(r"\.State\b(?![.\w])", ".ListContainer.State", fmt)
    if verb == "info":
        fmt = fmt.replace("{{.ServerVersion}}", "{{.Version.Version}}")
    return fmt


def _verb(args: list[str]) -> tuple[str, int]:
    """The command's verb (``container inspect`` counts as ``inspect``, ``container ls``
    as ``ps``) and the index of its first option."""
    if args[1:2] == ["container"] and len(args) > 2:
        verb = {"ls": "ps", "list": "ps"}.get(args[2], args[2])
        return verb, 3
    return (args[1] if len(args) > 1 else ""), 2


FORMAT_VERBS = frozenset(("ps", "inspect", "info", "network", "volume", "image", "images", "version"))


def translate(args: list[str], *, is_rootless: bool = False, drop_limits: bool = False) -> list[str]:
    """A docker command line as podman's: ``args`` is the engine's base argv (``podman``)
    and the verb-first command the Runner was given, written in docker's words."""
    verb, first = _verb(args)
    rest = args[first:]
    if verb == "version" and rest == ["--format", "{{.Server.Arch}}"]:
        return [PODMAN, "info", "--format", "{{.Host.Arch}}"]
    if (verb == "network" and rest[:1] == ["inspect"] and len(rest) == 4 and rest[1] == "--format"
            and rest[2] == "{{range .Containers}}{{.Name}} {{end}}"):
        return [PODMAN, "ps", "-a", "--filter", f"network={rest[3]}", "--format", "{{.Names}} "]
    if verb == "network" and rest[:1] == ["create"] and INHIBIT_OPTION in rest:
        # docker needs it for an --internal network to give the host no address there;
        # podman's --internal already isolates fully (rootless: no host address answers),
        # and rejects the option.
        at = rest.index(INHIBIT_OPTION)
        if rest[at - 1] == "-o":
            rest = rest[:at - 1] + rest[at + 1:]
    head = [PODMAN, *args[1:first]]
    if verb in FORMAT_VERBS:
        return head + _formats(rest, verb)
    if verb in CREATE_VERBS:
        return head + _create(rest, is_rootless, drop_limits)
    return head + rest  # exec, logs, cp, start, stop, rm...: the same words


def _formats(rest: list[str], verb: str) -> list[str]:
    out: list[str] = []
    for i, arg in enumerate(rest):
        if i and rest[i - 1] == "--format":
            out.append(_template(arg, verb))
        elif arg.startswith("--format="):
            out.append("--format=" + _template(arg[len("--format="):], verb))
        else:
            out.append(arg)
    return out


def _create(rest: list[str], is_rootless: bool, drop_limits: bool) -> list[str]:
    """`run`/`create` options, rewritten up to the image; the image and its command as they are."""
    out: list[str] = []
    i = 0
    while i < len(rest):
        arg, value = rest[i], rest[i + 1] if i + 1 < len(rest) else None
        name = arg.split("=", 1)[0]
        if arg == "--" or not arg.startswith("-"):
            return out + rest[i:]  # the image: nothing after it is an option of ours
        if value is not None and arg in VALUE_OPTIONS:
            i += 2
            if arg == "--add-host" and value.endswith(":host-gateway") and is_rootless:
                value = value[: -len("host-gateway")] + HOST_LOOPBACK
                if not any(a.split("=", 1)[0] in ("--network", "--net") for a in rest):
                    # 10.0.2.2 is the host's loopback only with this option; only a container
                    # asking for the host (a proxied session) gets it, not every session.
                    out += ["--network", LOOPBACK_NETWORK]
            if drop_limits and arg in LIMIT_FLAGS:
                continue
            out += [arg, value]
            if arg == "--label" and value.startswith("mux.session="):
                out += ["--label", f"{LABEL}={PODMAN}"]
                if is_rootless and not any(a == "--userns" or a.startswith("--userns=") for a in rest):
                    out.append("--userns=keep-id")
            continue
        i += 1
        if not (drop_limits and name in LIMIT_FLAGS):
            out.append(arg)
    return out


# docker run/create options that take a value (the rest are flags): enough to find
# the image, after which nothing is an option of docker's.
VALUE_OPTIONS = frozenset("""
--add-host --cidfile --cpus --entrypoint --env -e --env-file --group-add --hostname -h --label -l
--memory -m --memory-swap --mount --name --network --net --network-alias --pids-limit --platform
--publish -p --pull --restart --security-opt --stop-signal --stop-timeout --tmpfs --ulimit --user -u
--userns --volume -v --workdir -w --cap-add --cap-drop --device --dns --ip --log-driver --log-opt
--shm-size --sysctl --cgroup-parent
--volumes-from --ipc --pid --uts --cgroupns --log-level --runtime --init-path --health-cmd --expose --link --gpus
""".split())



# Podman's wording of the failures mux reads back, and docker's (mux matches docker's).
WORDING = (
    (re.compile(r'(?:creating container storage: )?the container name "([^"]+)" is already in use by '
                r'(\w+)\. You have to remove that container[^\n]*'),
     r'Conflict. The container name "/\1" is already in use by container "\2". You have to remove '
     r'(or rename) that container to be able to reuse that name.'),
    (re.compile(r'no container with name or ID "([^"]+)" found: no such container'), r"No such container: \1"),
    (re.compile(r"inspecting object: no such container (\S+)"), r"No such container: \1"),
    (re.compile(r"(?:inspecting object: network \S+: )?unable to find network with name or ID (\S+): "
                r"network not found"), r"No such network: \1"),
    (re.compile(r'no volume with name "([^"]+)" found: no such volume'), r"No such volume: \1"),
    (re.compile(r"(\S+): image not known"), r"No such image: \1"),
)
NOISE = re.compile(r'^time="[^"]*" level=warning msg="[^\n]*is not a shared mount[^\n]*\n?', re.M)


def docker_wording(stderr: str) -> str:
    """Podman's stderr with the messages mux understands in docker's words."""
    text = NOISE.sub("", stderr)
    for pattern, docker in WORDING:
        text = pattern.sub(docker, text)
    return text


ROOTLESS_HINT = "rootless podman needs some set-up on this machine: `mux doctor` names what is missing"
ROOTLESS_FAILURES = ("/dev/net/tun", "newuidmap", "newgidmap", "cannot set up namespace", "xdg_runtime_dir",
                     "podman-init", "catatonit", "cannot clone")


RLIMIT_HINT = ("rootful podman cannot raise the containers' ulimits here (no CAP_SYS_RESOURCE): set "
               "default_ulimits = [\"nofile=1024:1024\", \"nproc=4096:4096\"] under [containers] in "
               "/etc/containers/containers.conf, or run podman rootless, as a normal user")


def failure_hint(stderr: str) -> str | None:
    """A hint for a podman failure that comes from the machine's set-up."""
    lowered = stderr.lower()
    if "error setting rlimit" in lowered:
        return RLIMIT_HINT
    return ROOTLESS_HINT if any(word in lowered for word in ROOTLESS_FAILURES) else None


def own_words(text: str) -> str:
    """A message's docker commands (`docker rename ...`, `docker pull ...`) as podman's:
    the hints of mux's features are written for docker."""
    return re.sub(r"`docker (?!save IMAGE \| )", "`podman ", text)


def words(text: str) -> str:
    """``text`` (a message or hint of mux's) in the words of this command's CLI: the
    suggested `docker ...` commands become `podman ...` ones on a podman engine."""
    return own_words(text) if ACTIVE != DOCKER else text


# Docker's own wording of the failures the Runner reads (podman's is mapped to it above).
SOCKET_DENIED = ("permission denied", "docker", ".sock")  # all three: the socket refused this user
NOT_ANSWERING = ("cannot connect to the docker daemon", "is the docker daemon running")
# docker ends with a "See 'docker run --help'." (newer: "Run 'docker run --help' for more
# information") line that says nothing useful, and starts its lines with these prefixes.
USAGE_LINES = ("See '", "Run '")
PREFIXES = ("docker: ", "Error: ", "Error response from daemon: ")


def socket_denied(lowered: str) -> bool:
    return all(word in lowered for word in SOCKET_DENIED)


def not_answering(lowered: str) -> bool:
    return any(words in lowered for words in NOT_ANSWERING)


# What to install when the CLI itself is missing from PATH.
MISSING_HINTS = {
    DOCKER: "install the Docker CLI (Debian: `apt-get install docker.io`) or put it on PATH",
    PODMAN: "install podman (Debian/Ubuntu: `apt-get install podman catatonit slirp4netns uidmap`; "
            "Fedora: `dnf install podman`)",
}
