"""`mux new` wired to the credential proxy, end to end through the real CLI."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import DEBIAN, docker, mux, session_dir
from tests.integration.proxy.harness import free_port
from tests.integration.proxy.servers import EchoUpstream, Pki

pytestmark = pytest.mark.docker
TOKEN = "tok-3f9a1c-never-in-a-container"


@pytest.fixture
def proxied(images, mux_home: Path, pki: Pki, gateway: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict]:
    """A mux config with a [proxy] table and a bearer rule for the gateway; the
    proxy is not running yet. Stopped (and its sessions removed) afterwards."""
    port = free_port()
    config = Path(os.environ["MUX_CONFIG"])
    config.write_text(
        f'[docker]\nimage = "{DEBIAN}"\npull = "never"\n'
        f"[proxy]\nport = {port}\ntimeout = 30\n"
        # The test's upstream listens on the bridge gateway, which the destination
        # policy refuses by default: allow exactly that address.
        f'[proxy.filters]\nallowed_networks = ["{gateway}/32"]\n'
        f'[credentials.api]\ndomains = ["{gateway}"]\nauth_type = "bearer"\nvalue = "${{API_TOKEN}}"\n'
    )
    monkeypatch.setenv("MUX_PROXY_UPSTREAM_CA", str(pki.ca))
    env = {"API_TOKEN": TOKEN}
    yield {"env": env, "port": port, "data": Path(os.environ["MUX_DATA_DIR"])}
    mux("delete", "--all", "--force")
    mux("proxy", "stop")


def test_new_starts_the_proxy_and_the_agent_never_sees_the_token(proxied, api, unique_name) -> None:
    assert mux("proxy", "status", env=proxied["env"]).returncode == 5
    printed = mux("new", "--dry-run", unique_name, env=proxied["env"]).stdout
    created = mux("-v", "new", unique_name, env=proxied["env"])
    assert created.returncode == 0, created.stderr
    assert mux("proxy", "status").returncode == 0  # started by `mux new`

    out = mux("exec", unique_name, "--", "curl", "-sS", "--max-time", "30", f"{api.url}/v1/models")
    assert out.stdout == "upstream ok\n", out.stderr
    assert api.requests[-1][2]["Authorization"] == f"Bearer {TOKEN}"

    inspect = docker("container", "inspect", f"mux-{unique_name}").stdout
    env_dump = mux("exec", unique_name, "--", "env").stdout
    secret = (session_dir(unique_name, proxied["data"]) / "proxy.env").read_text().split(":")[2].split("@")[0]
    for text in (inspect, env_dump, printed, created.stderr):
        assert TOKEN not in text
    for text in (printed, created.stderr):  # printed commands name the env-file, not the secret
        assert secret not in text and "--env-file" in text
    assert oct((session_dir(unique_name, proxied["data"]) / "proxy.env").stat().st_mode & 0o777) == "0o600"

    registry = proxied["data"] / "proxy" / "sessions.json"
    assert key(unique_name) in json.loads(registry.read_text())["sessions"]
    assert mux("delete", "--force", unique_name).returncode == 0
    assert key(unique_name) not in json.loads(registry.read_text())["sessions"]  # its secret opens nothing


def test_proxy_that_cannot_start_means_no_session(proxied, unique_name) -> None:
    assert "API_TOKEN" not in os.environ  # the rule's ${API_TOKEN} cannot be resolved
    result = mux("new", unique_name)
    assert result.returncode == 5, result.stderr
    assert "API_TOKEN" in result.stderr and "Traceback" not in result.stderr
    assert docker("container", "inspect", f"mux-{unique_name}", check=False).returncode != 0
    assert not session_dir(unique_name, proxied["data"]).exists()
    assert mux("proxy", "status").returncode == 5


def test_no_proxy_flag_and_network_none_get_no_proxy(proxied, unique_name) -> None:
    for flags in (["--no-proxy"], ["--network", "none"]):
        printed = mux("new", "--dry-run", *flags, unique_name, env=proxied["env"], check=True).stdout
        assert "HTTPS_PROXY" not in printed and "--env-file" not in printed and "mux-proxy" not in printed
    assert mux("proxy", "status").returncode == 5  # nothing started for them


def test_private_repo_cloned_and_pushed_through_the_proxy(images, mux_home, pki, gateway, tmp_path,
                                                          monkeypatch, unique_name) -> None:
    """`mux new --repo https://...` with no credential anywhere but the proxy's
    memory: the host clone and the agent's push both get it injected."""
    import subprocess

    from tests.integration.proxy.servers import TLSGitServer

    seed, root = tmp_path / "seed", tmp_path / "served"
    root.mkdir()
    for args in (["init", "-q", "-b", "main", str(seed)],
                 ["-C", str(seed), "commit", "-q", "--allow-empty", "-m", "first"],
                 ["clone", "-q", "--bare", str(seed), str(root / "app.git")],
                 ["-C", str(root / "app.git"), "config", "http.receivepack", "true"]):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], check=True, capture_output=True)
    config = Path(os.environ["MUX_CONFIG"])
    config.write_text(
        f'[docker]\nimage = "{DEBIAN}"\npull = "never"\n[proxy]\nport = {free_port()}\ntimeout = 30\n'
        f'[proxy.filters]\nallowed_networks = ["{gateway}/32"]  # the git server is on the bridge gateway\n'
        f'[credentials.git]\ndomains = ["{gateway}"]\nauth_type = "basic"\nusername = "bot"\n'
        'password = "${GIT_TOKEN}"\n'
    )
    monkeypatch.setenv("MUX_PROXY_UPSTREAM_CA", str(pki.ca))
    env = {"GIT_TOKEN": TOKEN}
    try:
        with TLSGitServer(root, gateway, pki, auth=("bot", TOKEN)) as server:
            url = f"{server.url}/app.git"
            # No --branch: the session starts on its own branch mux/NAME, the one
            # git_push = "session" (the default) lets it push, so a plain push just works.
            made = mux("new", "--repo", url, unique_name, env=env)
            assert made.returncode == 0, made.stderr
            push = mux("exec", unique_name, "--", "sh", "-c",
                       "git commit -q --allow-empty -m 'from the agent' && git push -q -u origin HEAD")
            assert push.returncode == 0, push.stderr
            log = subprocess.run(["git", "--git-dir", str(root / "app.git"), "log", "-1", "--format=%s",
                                  f"mux/{unique_name}"], capture_output=True, text=True, check=True).stdout
            assert log == "from the agent\n"
            other = mux("exec", unique_name, "--", "git", "push", "origin", "HEAD:agent/work")
            assert other.returncode != 0
            assert f"mux: push to refs/heads/agent/work refused: session {unique_name}" in other.stderr
        clone = session_dir(unique_name) / "repo"
        assert clone.is_dir()
        stored = subprocess.run(["grep", "-rl", TOKEN, str(clone), str(Path(os.environ["MUX_DATA_DIR"]) / "cache")],
                                capture_output=True, text=True)
        assert stored.stdout == ""  # the token is in no file mux or git wrote
        assert TOKEN not in docker("container", "inspect", f"mux-{unique_name}").stdout
    finally:
        mux("delete", "--force", unique_name)
        mux("proxy", "stop")


def key(name: str) -> str:
    """A session's name in the proxy's registry: the proxy serves every instance."""
    return f"{os.environ['MUX_INSTANCE']}+{name}"


def _status(env: dict[str, str] | None = None) -> dict:
    return json.loads(mux("proxy", "status", "--json", env=env).stdout)


def _reach(name: str, api: EchoUpstream) -> str:
    return mux("exec", name, "--", "curl", "-sS", "--max-time", "30", f"{api.url}/v1/{name}").stdout


def test_config_change_restarts_the_proxy_and_older_sessions_keep_working(proxied, api, unique_name) -> None:
    env = proxied["env"]
    first, second = f"{unique_name}a", f"{unique_name}b"
    assert mux("new", first, env=env).returncode == 0
    before = _status()
    assert before["stale"] is False and before["sessions"] == [key(first)] and before["config_digest"]
    # The user edits the config: a new port, and a header rule changed.
    config = Path(os.environ["MUX_CONFIG"])
    new_port = free_port()
    config.write_text(config.read_text().replace(f"port = {proxied['port']}", f"port = {new_port}")
                      .replace('auth_type = "bearer"\nvalue', 'header = "X-Api-Key"\nvalue'))
    assert _status()["stale"] is True
    doctor = {c["name"]: c for c in json.loads(mux("doctor", "--json").stdout)["checks"]}
    assert doctor["proxy"]["ok"] is False and "stale" in doctor["proxy"]["detail"]
    made = mux("new", second, env=env)
    assert made.returncode == 0, made.stderr
    assert "restarting the proxy" in made.stderr
    after = _status()
    assert after["stale"] is False and after["pid"] != before["pid"]
    assert after["config_digest"] != before["config_digest"] and after["sessions"] == sorted([key(first), key(second)])
    assert set(after["ports"]) == {proxied["port"], new_port}
    for name in (first, second):  # the older session still reaches it, on its old port
        assert _reach(name, api) == "upstream ok\n"
        assert api.requests[-1][2].get("X-Api-Key") == TOKEN  # the new rule applies to both
        assert "Authorization" not in api.requests[-1][2]


def test_start_and_exec_revive_a_stopped_proxy(proxied, api, unique_name) -> None:
    env = proxied["env"]
    assert mux("new", unique_name, env=env).returncode == 0
    assert mux("proxy", "stop").returncode == 0
    assert _reach(unique_name, api) == ""  # nothing listens: the agent has no network
    # exec brings it back (with the token from this environment)...
    assert mux("exec", unique_name, "--", "true", env=env).returncode == 0
    assert _status()["running"] is True and _reach(unique_name, api) == "upstream ok\n"
    # ...and so does start, after a reboot-like stop of both.
    assert mux("stop", unique_name).returncode == 0 and mux("proxy", "stop").returncode == 0
    assert mux("start", unique_name, env=env).returncode == 0
    assert _status()["running"] is True and _reach(unique_name, api) == "upstream ok\n"
    # A proxy that cannot start (the rule's ${API_TOKEN} is unset here) is exit 5, saying why.
    assert mux("proxy", "stop").returncode == 0
    failed = mux("exec", unique_name, "--", "true")
    assert failed.returncode == 5 and "API_TOKEN" in failed.stderr, failed.stderr


def test_parallel_new_start_one_proxy_and_register_every_session(proxied, unique_name) -> None:
    import subprocess
    import sys

    names = [f"{unique_name}{i}" for i in range(6)]
    procs = [subprocess.Popen([sys.executable, "-m", "mux", "new", n], env={**os.environ, **proxied["env"]},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for n in names]
    results = [(p.wait(timeout=300), p.stderr.read() if p.stderr else "") for p in procs]
    assert [code for code, _ in results] == [0] * len(names), results
    status = _status()
    assert status["running"] is True and status["sessions"] == sorted(key(n) for n in names)
    assert "restarting" not in "".join(err for _, err in results)
    # Deleting every session that uses the proxy stops it: nothing listens for no one.
    assert mux("delete", "--all", "--force").returncode == 0
    assert mux("proxy", "status").returncode == 5


def test_an_unreadable_registry_is_exit_5_naming_it_and_never_reset(proxied, unique_name) -> None:
    registry = proxied["data"] / "proxy" / "sessions.json"
    registry.parent.mkdir(parents=True, exist_ok=True)
    registry.write_text('{"sessions": {"other": "feed"}, "ports": ')  # cut short
    result = mux("new", unique_name, env=proxied["env"])
    assert result.returncode == 5, result.stderr
    assert str(registry) in result.stderr and "Traceback" not in result.stderr
    assert registry.read_text() == '{"sessions": {"other": "feed"}, "ports": '
    assert docker("container", "inspect", f"mux-{unique_name}", check=False).returncode != 0
    assert not session_dir(unique_name, proxied["data"]).exists()
