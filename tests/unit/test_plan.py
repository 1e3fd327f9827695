"""mux.session.plan.plan: config + flags + host facts -> the final spec and the ordered
steps of `mux new` (pure: nothing runs, nothing is written)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from mux.config import Config, DockerSettings, GitSettings
from mux.errors import ConfigError
from mux.proxy.settings import ProxySettings
from mux.session.plan import STEPS, HostFacts, NewOptions, plan

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
QUIET = Config(git=GitSettings(inject_config=False))
PROXIED = QUIET._replace(proxy=ProxySettings())


@pytest.fixture
def host(tmp_path: Path) -> HostFacts:
    (tmp_path / "proj").mkdir()
    return HostFacts(uid=1000, gid=1001, env={"HOME": "/home/u"}, cwd=tmp_path / "proj", now=NOW,
                     data_dir=tmp_path / "data")


@pytest.mark.parametrize(("config", "opts", "remote", "steps"), [
    pytest.param(QUIET, NewOptions(name="s1"), False, ["claim", "dirs", "run", "started"], id="workdir"),
    pytest.param(QUIET, NewOptions(name="s1", copy=True), False, ["claim", "dirs", "volumes", "started"],
                 id="copy"),
    pytest.param(PROXIED, NewOptions(name="s1"), False, ["proxy", "claim", "wire", "dirs", "run", "started"],
                 id="proxied"),
    pytest.param(QUIET, NewOptions(name="s1", repo="https://git.test/a.git", proxy=True), False,
                 ["proxy", "claim", "wire", "clone", "dirs", "run", "started"], id="repo-proxied"),
    pytest.param(PROXIED, NewOptions(name="s1", repo="https://git.test/a.git"), True,
                 ["proxy", "claim", "tunnel", "wire", "clone", "dirs", "volumes", "started"], id="remote-repo"),
    pytest.param(QUIET, NewOptions(name="s1", network="none", proxy=True), False,
                 ["claim", "dirs", "run", "started"], id="network-none-has-no-proxy"),
])
def test_the_steps_in_order(host: HostFacts, config: Config, opts: NewOptions, remote: bool,
                            steps: list[str]) -> None:
    made = plan(config, opts, host._replace(remote=remote))
    assert [s.name for s in made.steps] == steps
    assert made.steps == tuple(STEPS[n] for n in steps)


def test_the_boundaries_are_those_the_interrupt_tests_hit() -> None:
    assert [s.boundary for s in STEPS.values() if s.boundary] == [
        "proxy-started", "claimed", "proxy-wired", "cloned", "dirs", "agent-home", "run", "started"]


def test_a_proxied_plan_carries_its_egress_label(host: HostFacts) -> None:
    made = plan(PROXIED, NewOptions(name="s1"), host)
    assert made.proxy == ProxySettings() and made.egress == "open"
    assert made.spec.labels[-1] == ("mux.egress", "open")
    unproxied = plan(QUIET, NewOptions(name="s1"), host)
    assert unproxied.proxy is None and all(k != "mux.egress" for k, _ in unproxied.spec.labels)


def test_copy_plans_the_volumes(host: HostFacts) -> None:
    spec = plan(QUIET, NewOptions(name="s1", copy=True), host).spec
    assert (spec.workspace_volume, spec.home_volume, spec.home) == ("mux-s1-workspace", "mux-s1-home", None)
    assert dict(spec.labels)["mux.workdir"] == "volume:mux-s1-workspace"


def test_warnings_come_in_order_and_nothing_is_printed(host: HostFacts, capsys: pytest.CaptureFixture[str]) -> None:
    config = QUIET._replace(docker=DockerSettings(protect=()))
    said: list[str] = []
    plan(config, NewOptions(name="s1", ports=("0.0.0.0:8080:80",)), host, warn=said.append)
    assert said == [
        "mux: warning: [docker] protect = []: the agent can write this workdir's .git (its hooks and config), "
        ".envrc, .vscode/ and the other files your own tools run",
        "mux: warning: -p 0.0.0.0:8080:80 publishes on every interface of this host: other machines can reach it",
    ]
    assert capsys.readouterr() == ("", "")


def test_a_proxy_only_session_publishes_nothing(host: HostFacts) -> None:
    with pytest.raises(ConfigError, match="a proxy-only session's network is internal"):
        plan(PROXIED, NewOptions(name="s1", egress="proxy-only", ports=("127.0.0.1:8080:80",)), host)
