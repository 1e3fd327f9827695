"""Which engine a command uses, and local or remote, from docker's own files (no docker call)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from mux.engine import choice as engine
from mux.errors import ConfigError


def make_context(config_dir: Path, name: str, host: str) -> None:
    meta = config_dir / "contexts" / "meta" / hashlib.sha256(name.encode()).hexdigest()
    meta.mkdir(parents=True)
    (meta / "meta.json").write_text(json.dumps(
        {"Name": name, "Metadata": {}, "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": False}}}))


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    make_context(tmp_path, "box", "ssh://me@box.test")
    make_context(tmp_path, "desk", "unix:///run/user/1000/docker.sock")
    make_context(tmp_path, "tcpbox", "tcp://10.0.0.5:2376")
    return tmp_path


def env(cfg: Path, **extra: str) -> dict[str, str]:
    return {"DOCKER_CONFIG": str(cfg), **extra}


@pytest.mark.parametrize(("flag", "configured", "extra", "name", "source", "passed"), [
    (None, None, {}, "default", "default", False),
    ("box", None, {}, "box", "--context", True),
    ("box", "desk", {"DOCKER_HOST": "tcp://x.test:1", "DOCKER_CONTEXT": "desk"}, "box", "--context", True),
    (None, "box", {"DOCKER_HOST": "ssh://env.test"}, "default", "DOCKER_HOST", False),
    (None, "box", {"DOCKER_CONTEXT": "desk"}, "desk", "DOCKER_CONTEXT", False),
    (None, "box", {}, "box", "[docker] context", True),
], ids=["nothing-local", "flag", "flag-beats-env", "docker-host-beats-config", "docker-context-beats-config",
        "config"])
def test_choice_order(cfg, flag, configured, extra, name, source, passed) -> None:  # type: ignore[no-untyped-def]
    chosen = engine.resolve(flag, configured, env(cfg, **extra))
    assert (chosen.name, chosen.source, chosen.pass_context) == (name, source, passed)
    assert chosen.base == (("docker", "--context", name) if passed else ("docker",))


def test_current_context_from_docker_config(cfg: Path) -> None:
    (cfg / "config.json").write_text(json.dumps({"currentContext": "box"}))
    chosen = engine.resolve(None, None, env(cfg))
    assert (chosen.name, chosen.host, chosen.remote, chosen.pass_context) == ("box", "ssh://me@box.test", True, False)
    # mux's config outranks `docker context use` (docker's own flag would too).
    assert engine.resolve(None, "desk", env(cfg)).name == "desk"


@pytest.mark.parametrize(("flag", "extra", "remote"), [
    ("box", {}, True), ("desk", {}, False), ("tcpbox", {}, True),
    ("default", {}, False), ("default", {"DOCKER_HOST": "ssh://me@other.test"}, True),
    (None, {"DOCKER_HOST": "unix:///tmp/d.sock"}, False), (None, {"DOCKER_HOST": "tcp://127.0.0.1:2375"}, True),
])
def test_local_or_remote(cfg, flag, extra, remote) -> None:  # type: ignore[no-untyped-def]
    assert engine.resolve(flag, None, env(cfg, **extra)).remote is remote


@pytest.mark.parametrize(("flag", "configured", "extra", "message"), [
    ("nosuch", None, {}, "--context: there is no docker context named 'nosuch'"),
    ("-H", None, {}, "--context: invalid docker context name '-H'"),
    (None, "../x", {}, "[docker] context: invalid docker context name '../x'"),
    (None, None, {"DOCKER_CONTEXT": "gone"}, "DOCKER_CONTEXT: there is no docker context named 'gone'"),
], ids=["missing", "option-like", "path-like", "env-missing"])
def test_bad_context_is_a_config_error(cfg, flag, configured, extra, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as caught:
        engine.resolve(flag, configured, env(cfg, **extra))
    assert caught.value.message == message


def test_context_without_docker_endpoint(cfg: Path) -> None:
    meta = cfg / "contexts" / "meta" / hashlib.sha256(b"k8s").hexdigest()
    meta.mkdir(parents=True)
    (meta / "meta.json").write_text('{"Name": "k8s", "Endpoints": {}}')
    with pytest.raises(ConfigError, match="has no docker endpoint"):
        engine.resolve("k8s", None, env(cfg))


@pytest.mark.parametrize(("host", "args"), [
    ("ssh://box.test", ["--", "box.test"]),
    ("ssh://me@box.test:2222", ["-l", "me", "-p", "2222", "--", "box.test"]),
    ("ssh://root@127.0.0.1:32768", ["-l", "root", "-p", "32768", "--", "127.0.0.1"]),
    ("ssh://me@[::1]", ["-l", "me", "--", "::1"]),
])
def test_tunnel_target_from_the_engine(host: str, args: list[str]) -> None:
    from mux.egress.tunnel import ssh_target

    assert ssh_target(engine.Engine("box", host, "--context")).args() == args


@pytest.mark.parametrize("host", ["tcp://box.test:2376", "ssh://-oProxyCommand=x", "ssh://me@box.test:99999",
                                  "ssh://a b@box.test"])
def test_tunnel_target_refuses_what_is_not_a_plain_ssh_host(host: str) -> None:
    from mux.egress.tunnel import ssh_target

    with pytest.raises(ConfigError):
        ssh_target(engine.Engine("box", host, "--context"))
