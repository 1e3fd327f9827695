"""``[proxy]`` / ``[credentials.*]`` parsing, domain patterns, and the session wiring's shape."""

from __future__ import annotations

import base64
import ipaddress
from pathlib import Path

import pytest

from mux.config import Config
from mux.egress import relay as egress
from mux.egress.wiring import Wiring, session_wiring
from mux.engine.argv import run_argv
from mux.engine.runner import Runner
from mux.errors import ConfigError, ProxyError
from mux.proxy import destinations, domains, registry
from mux.proxy.destinations import Destinations, host_addresses, refusal_text
from mux.proxy.files import ProxyFiles
from mux.proxy.settings import (
    Filters,
    ProxySettings,
    expand_credentials,
    parse_credentials,
    parse_proxy_settings,
)
from mux.session.create import wire_proxy
from mux.spec import SessionSpec

SRC = "/home/u/.config/mux/config.toml"


def test_no_proxy_table_means_none() -> None:
    assert parse_proxy_settings({"docker": {}}, SRC) is None


def test_defaults_and_env_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MUX_PROXY_PORT", raising=False)
    assert parse_proxy_settings({"proxy": {}}, SRC) == ProxySettings()
    monkeypatch.setenv("MUX_PROXY_PORT", "9999")
    assert parse_proxy_settings({"proxy": {}}, SRC).port == 9999  # type: ignore[union-attr]
    assert parse_proxy_settings({"proxy": {"port": 7000}}, SRC).port == 7000  # type: ignore[union-attr]


def test_full_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CA_DIR", "/etc/corp")
    raw = {"proxy": {
        "enabled": False, "port": 3128, "bind": "127.0.0.1", "timeout": 2.5,
        "upstream_ca": "${CA_DIR}/ca.pem",
        "filters": {"blocked_domains": ["Evil.COM."], "allowlist_only": True, "allowed_domains": ["*.github.com"]},
    }}
    s = parse_proxy_settings(raw, SRC)
    assert s == ProxySettings(
        enabled=False, port=3128, bind=("127.0.0.1",), timeout=2.5, upstream_ca=Path("/etc/corp/ca.pem"),
        filters=Filters(("evil.com",), True, ("*.github.com",)),
    )


@pytest.mark.parametrize(
    ("table", "needles"),
    [
        pytest.param({"colour": 1}, ["'colour'", "[proxy]", "allowed keys"], id="unknown-key"),
        pytest.param({"port": "8080"}, ["[proxy] port", "'8080'", "1 to 65535"], id="port-string"),
        pytest.param({"port": 0}, ["[proxy] port", "0"], id="port-zero"),
        pytest.param({"port": True}, ["[proxy] port", "True"], id="port-bool"),
        pytest.param({"enabled": "yes"}, ["[proxy] enabled", "'yes'", "true or false"], id="enabled-string"),
        pytest.param({"timeout": -1}, ["[proxy] timeout", "-1", "greater than 0"], id="timeout-negative"),
        pytest.param({"bind": "0.0.0.0"}, ["[proxy] bind", "0.0.0.0", "never 0.0.0.0"], id="bind-everywhere"),
        pytest.param({"bind": ["::"]}, ["[proxy] bind", "'::'"], id="bind-everywhere-v6"),
        pytest.param({"bind": "localhost"}, ["[proxy] bind", "'localhost'", "IP address"], id="bind-name"),
        pytest.param({"upstream_ca": 5}, ["[proxy] upstream_ca", "5", "PEM file"], id="ca-int"),
        pytest.param({"filters": []}, ["[proxy.filters]", "a table"], id="filters-not-table"),
        pytest.param({"filters": {"block": []}}, ["'block'", "[proxy.filters]", "blocked_domains"],
                     id="filters-unknown"),
        pytest.param({"filters": {"allowed_domains": "a.com"}}, ["[proxy.filters] allowed_domains", "'a.com'",
                     "list of domains"], id="allowed-not-list"),
        pytest.param({"filters": {"blocked_domains": ["a*.com"]}}, ["[proxy.filters] blocked_domains", "a*.com"],
                     id="bad-wildcard"),
        pytest.param({"filters": {"allowlist_only": 1}}, ["[proxy.filters] allowlist_only", "true or false"],
                     id="allowlist-int"),
        pytest.param({"upstream_ca": "${MUX_TEST_NOPE}"}, ["[proxy] upstream_ca", "MUX_TEST_NOPE"], id="unset-var"),
        pytest.param({"audit_max_bytes": 10}, ["[proxy] audit_max_bytes", "10", "at least 4096"],
                     id="audit-size-tiny"),
        pytest.param({"audit_max_bytes": "4MiB"}, ["[proxy] audit_max_bytes", "size in bytes"], id="audit-size-str"),
        pytest.param({"audit_keep": -1}, ["[proxy] audit_keep", "0 to 100"], id="audit-keep-negative"),
        pytest.param({"max_connections": 0}, ["[proxy] max_connections", "1 to 1048576"], id="max-conn-zero"),
        pytest.param({"auth_timeout": 0}, ["[proxy] auth_timeout", "greater than 0"], id="auth-timeout-zero"),
        pytest.param({"idle_timeout": "1m"}, ["[proxy] idle_timeout", "seconds"], id="idle-timeout-str"),
    ],
)
def test_bad_proxy_table(table: dict[str, object], needles: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        parse_proxy_settings({"proxy": table}, SRC)
    message = str(info.value) + (info.value.hint or "")
    for needle in [SRC, *needles]:
        assert needle in message


def test_credentials_parse_and_expand() -> None:
    raw = {"credentials": {
        "gh": {"domains": ["api.github.com", "*.githubusercontent.com"], "auth_type": "bearer", "value": "${GH}"},
        "git": {"domains": ["git.example.com"], "auth_type": "basic", "username": "bot", "password": "${PW:-x}"},
        "key": {"domains": ["api.example.com"], "header": "X-Api-Key", "value": "${KEY}"},
    }}
    rules = parse_credentials(raw, SRC)
    assert [r.name for r in rules] == ["gh", "git", "key"]
    assert rules[0].value == "${GH}"  # parsing never expands secrets
    assert "${GH}" not in repr(rules) and "value" not in repr(rules)
    gh, git, key = expand_credentials(rules, {"GH": "t0k", "KEY": "k3y"}, SRC)
    assert gh.header_value() == "Bearer t0k"
    assert git.header_value() == "Basic " + base64.b64encode(b"bot:x").decode()
    assert (key.header, key.header_value()) == ("X-Api-Key", "k3y")


def test_expand_credentials_unset_var_names_rule() -> None:
    rules = parse_credentials({"credentials": {"gh": {"domains": ["a.io"], "value": "${MUX_TEST_NOPE}"}}}, SRC)
    with pytest.raises(ConfigError, match=r"\[credentials.gh\] value.*MUX_TEST_NOPE"):
        expand_credentials(rules, {}, SRC)


@pytest.mark.parametrize(
    ("table", "needles"),
    [
        pytest.param({"domains": ["a.io"], "value": "v", "scope": 1}, ["'scope'", "[credentials.r]"], id="unknown-key"),
        pytest.param({"value": "v"}, ["[credentials.r] domains", "None"], id="no-domains"),
        pytest.param({"domains": [], "value": "v"}, ["[credentials.r] domains", "[]"], id="empty-domains"),
        pytest.param({"domains": "a.io", "value": "v"}, ["[credentials.r] domains", "'a.io'"], id="domains-string"),
        pytest.param({"domains": ["a.io"], "auth_type": "token", "value": "v"},
                     ["[credentials.r] auth_type", "'token'", "\"bearer\" or \"basic\""], id="bad-auth-type"),
        pytest.param({"domains": ["a.io"], "auth_type": "basic", "username": "u"},
                     ["[credentials.r] password", "username and password"], id="basic-no-password"),
        pytest.param({"domains": ["a.io"], "auth_type": "basic", "username": "u", "password": "p", "value": "v"},
                     ["[credentials.r] value", "username and password"], id="basic-with-value"),
        pytest.param({"domains": ["a.io"], "auth_type": "bearer"}, ["[credentials.r] value", "(missing)"],
                     id="bearer-no-value"),
        pytest.param({"domains": ["a.io"], "value": 42}, ["[credentials.r] value", "42", "non-empty string"],
                     id="value-int"),
        pytest.param({"domains": ["a.io"], "value": "v", "header": "Bad Header"},
                     ["[credentials.r] header", "'Bad Header'"], id="header-space"),
        pytest.param({"domains": ["a.io"], "value": "v", "header": "Proxy-Authorization"},
                     ["[credentials.r] header", "Proxy-Authorization"], id="header-proxy-auth"),
    ],
)
def test_bad_credentials(table: dict[str, object], needles: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        parse_credentials({"credentials": {"r": table}}, SRC)
    for needle in [SRC, *needles]:
        assert needle in str(info.value)


def test_credentials_not_a_table_and_duplicate_domain() -> None:
    with pytest.raises(ConfigError, match=r"\[credentials\.r\].*a table"):
        parse_credentials({"credentials": {"r": "token"}}, SRC)
    dup = {"a": {"domains": ["x.io"], "value": "1"}, "b": {"domains": ["X.io"], "value": "2"}}
    with pytest.raises(ConfigError, match=r"\[credentials\.b\] domains.*x.io.*\[credentials\.a\]"):
        parse_credentials({"credentials": dup}, SRC)


@pytest.mark.parametrize(
    ("pattern", "host", "expected"),
    [
        ("example.com", "example.com", True),
        ("example.com", "EXAMPLE.com.", True),
        ("example.com", "api.example.com", False),
        ("*.example.com", "api.example.com", True),
        ("*.example.com", "a.b.example.com", True),
        ("*.example.com", "example.com", False),
        ("*.example.com", "badexample.com", False),
        ("172.17.0.1", "172.17.0.1", True),
    ],
)
def test_domain_matching(pattern: str, host: str, expected: bool) -> None:
    assert domains.matches(pattern, host) is expected


def test_filters_refusal() -> None:
    f = Filters(blocked_domains=("*.ads.io",), allowlist_only=True, allowed_domains=("*.ads.io", "ok.io"))
    assert "blocked_domains" in (f.refusal("x.ads.io") or "")
    assert "allowed_domains" in (f.refusal("other.io") or "")
    assert f.refusal("ok.io") is None
    assert Filters().refusal("anything.io") is None


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ProxyFiles:
    monkeypatch.setenv("MUX_DATA_DIR", str(tmp_path))
    return ProxyFiles.default()


def spec(name: str, network: str | None = None) -> SessionSpec:
    return SessionSpec(name=name, image="img", workdir=Path("/w"), labels=(), network=network)


def test_wiring_bridge(files: ProxyFiles, tmp_path: Path) -> None:
    # The path `mux new` takes: create.wire_proxy folds the wiring into the spec, argv.run_argv prints it.
    args = run_argv(wire_proxy(Runner(), ProxySettings(port=8123), spec("demo")))
    env_file = tmp_path / "sessions" / "demo" / "proxy.env"
    assert args[args.index("--env-file") + 1] == str(env_file)
    assert args[args.index("--add-host") + 1] == "host.docker.internal:host-gateway"
    assert f"{files.public}:/etc/mux-proxy:ro" in args
    for var in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS", "GIT_SSL_CAINFO"):
        assert f"{var}=/etc/mux-proxy/ca-bundle.pem" in args
    assert any(a.startswith("NO_PROXY=localhost,") for a in args) and any(a.startswith("no_proxy=") for a in args)
    lines = env_file.read_text().splitlines()
    assert [ln.split("=", 1)[0] for ln in lines] == ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"]
    assert lines[0].startswith("HTTP_PROXY=http://mux-demo:") and lines[0].endswith("@host.docker.internal:8123")
    assert env_file.stat().st_mode & 0o777 == 0o600
    secret = lines[0].split(":")[2].split("@")[0]
    assert secret not in " ".join(args) and secret not in files.sessions.read_text()
    assert files.sessions.stat().st_mode & 0o777 == 0o600


def test_wiring_host_none_and_dry_run(files: ProxyFiles, tmp_path: Path) -> None:
    assert session_wiring(ProxySettings(), "demo", "none", files=files) == Wiring()
    args = run_argv(wire_proxy(Runner(), ProxySettings(port=8124), spec("h", "host")))
    assert "--add-host" not in args
    assert (tmp_path / "sessions" / "h" / "proxy.env").read_text().splitlines()[0].endswith("@127.0.0.1:8124")
    dry = run_argv(wire_proxy(Runner(dry_run=True), ProxySettings(), spec("dry")))
    assert dry[dry.index("--env-file") + 1] == str(tmp_path / "sessions" / "dry" / "proxy.env")
    assert not (tmp_path / "sessions" / "dry").exists()
    assert '"dry"' not in files.sessions.read_text()  # nothing registered either


# -- the destination policy (mux.proxy.destinations) ----------------------------------


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"), ("127.255.0.9", "loopback"), ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"), ("2002:7f00:1::", "loopback"), ("::127.0.0.1", "loopback"),
        ("0.0.0.0", "unspecified"), ("::", "unspecified"),
        ("169.254.169.254", "link-local"), ("fe80::1", "link-local"),
        ("10.1.2.3", "private"), ("172.17.0.1", "private"), ("192.168.1.1", "private"), ("fd00::5", "private"),
        ("::ffff:10.0.0.1", "private"),
        ("100.64.0.1", "shared"), ("224.0.0.251", "multicast"), ("ff02::1", "multicast"),
        ("255.255.255.255", "reserved"),
    ],
)
def test_refused_address_kinds(address: str, kind: str) -> None:
    reason = Destinations().refusal(ipaddress.ip_address(address))
    assert reason is not None and kind in reason


def test_public_addresses_pass_and_own_addresses_do_not(monkeypatch: pytest.MonkeyPatch) -> None:
    d = Destinations()
    # A host with a public address of its own (only global addresses pass the table).
    monkeypatch.setattr(destinations, "host_addresses", lambda: frozenset({ipaddress.ip_address("93.184.216.7")}))
    assert d.refusal(ipaddress.ip_address("93.184.216.34")) is None
    assert d.refusal(ipaddress.ip_address("2606:2800:220:1::1")) is None
    assert "host mux runs on" in (d.refusal(ipaddress.ip_address("93.184.216.7")) or "")
    assert "host mux runs on" in (d.refusal(ipaddress.ip_address("::ffff:93.184.216.7")) or "")


def test_host_addresses_include_loopback_and_the_interfaces() -> None:
    found = {str(a) for a in host_addresses()}
    assert "127.0.0.1" in found


@pytest.mark.parametrize("host", ["127.1", "2130706433", "0x7f000001", "0177.0.0.1", "[::ffff:127.0.0.1]",
                                  "localhost", "localhost.", "LocalHost", "0"])
def test_every_spelling_resolves_to_a_checked_address(host: str) -> None:
    address, reason = Destinations().check(host, 80)
    assert address is None and reason is not None and ("loopback" in reason or "unspecified" in reason)
    address, reason = Destinations(["127.0.0.0/8", "::1/128", "0.0.0.0/8"]).check(host, 80)
    assert reason is None and address is not None


def test_choose_connects_only_to_an_allowed_address() -> None:
    d = Destinations(["127.0.0.1/32"])
    # A name resolving to a refused address and an allowed one: the allowed one, never the other.
    assert d.choose("mixed.test", ["::1", "127.0.0.1"]) == ("127.0.0.1", None)
    assert d.choose("evil.test", ["10.0.0.1"]) == (None, "evil.test is 10.0.0.1, a private address")
    assert d.choose("10.0.0.1", ["10.0.0.1"]) == (None, "10.0.0.1 is a private address")
    with pytest.raises(destinations.Unresolvable):
        d.check("no-such-host.invalid", 80)


def test_refusal_text_names_the_policy_and_the_setting() -> None:
    text = refusal_text("127.1 is 127.0.0.1, a loopback address")
    assert "mux's network policy" in text and "[proxy.filters] allowed_networks" in text and "127.1" in text


def test_allowed_networks_parsed_and_validated() -> None:
    raw = {"proxy": {"filters": {"allowed_networks": ["10.1.0.0/16", "127.0.0.1", "fd00::/8"]}}}
    s = parse_proxy_settings(raw, SRC)
    assert s is not None and s.filters.allowed_networks == ("10.1.0.0/16", "127.0.0.1/32", "fd00::/8")
    for bad, needle in ((["10.1.0.5/16"], "host bits"), (["nope"], "'nope'"), ("10.0.0.0/8", "'10.0.0.0/8'"),
                        ([10], "[10]")):
        with pytest.raises(ConfigError) as info:
            parse_proxy_settings({"proxy": {"filters": {"allowed_networks": bad}}}, SRC)
        assert SRC in str(info.value) and "[proxy.filters] allowed_networks" in str(info.value)
        assert needle in str(info.value) and "CIDR" in str(info.value)


def test_the_proxy_connects_to_the_pinned_address_not_a_new_lookup() -> None:
    """No DNS rebinding window: what was checked at CONNECT is what server_connect dials."""
    import asyncio

    from mitmproxy.proxy.server_hooks import ServerConnectionHookData
    from mitmproxy.test import tflow

    from mux.proxy.addon import MuxPolicy
    from mux.proxy.registry import Registry

    policy = MuxPolicy(Registry(Path("/nonexistent/sessions.json")), Filters(), (), Path("/dev/null"))
    client = tflow.tclient_conn()
    pinned = tflow.tserver_conn()
    pinned.address = ("rebind.test", 443)
    policy.pins[client.id] = {("rebind.test", 443): "93.184.216.34"}
    asyncio.run(policy.server_connect(ServerConnectionHookData(server=pinned, client=client)))
    assert pinned.address == ("93.184.216.34", 443) and pinned.error is None
    other = tflow.tserver_conn()
    other.address = ("127.1", 80)  # not checked before (say, a Host header inside a tunnel)
    asyncio.run(policy.server_connect(ServerConnectionHookData(server=other, client=client)))
    assert other.error is not None and "loopback" in other.error


# -- the session registry -------------------------------------------------------------


def test_registry_unreadable_is_an_error_naming_the_file(files: ProxyFiles) -> None:
    registry.register(files, "a", "s1")
    for text in ("{not json", '{"sessions": ["a"]}', "[]"):
        files.sessions.write_text(text)
        with pytest.raises(ProxyError) as info:
            registry.register(files, "b", "s2")
        assert str(files.sessions) in info.value.message and info.value.exit_code == 5
        with pytest.raises(ProxyError):
            registry.forget(files, "a")
        assert files.sessions.read_text() == text  # never reset



# -- egress modes (mux.egress.relay) ------------------------------------------------------


def config_with(proxy: dict[str, object] | None) -> Config:
    from mux.config import parse

    return parse({"proxy": proxy} if proxy is not None else {}, Path("/c.toml"), {})


@pytest.mark.parametrize(
    ("proxy", "cli", "proxied", "network", "expected"),
    [
        pytest.param({}, None, True, None, "open", id="default-open"),
        pytest.param({}, "proxy-only", True, None, "proxy-only", id="flag"),
        pytest.param({"egress": "proxy-only"}, None, True, None, "proxy-only", id="config"),
        pytest.param({"egress": "proxy-only"}, "open", True, None, "open", id="flag-beats-config"),
        pytest.param({"filters": {"allowlist_only": True}}, None, True, None, "proxy-only", id="allowlist-implies"),
        pytest.param({"filters": {"allowlist_only": True}, "egress": "open"}, None, True, None, "open",
                     id="allowlist-with-egress-open"),
        pytest.param({"filters": {"allowlist_only": True}}, None, False, None, "open", id="allowlist-no-proxy"),
        pytest.param({}, None, False, "none", "none", id="network-none"),
        pytest.param({}, None, True, "host", "open", id="open-on-host"),
    ],
)
def test_egress_mode(proxy: dict[str, object], cli: str | None, proxied: bool, network: str | None,
                     expected: str) -> None:
    assert egress.decide(config_with(proxy), cli, proxied, network) == expected


@pytest.mark.parametrize(
    ("proxy", "cli", "proxied", "network", "needle"),
    [
        pytest.param({}, "proxy-only", True, "host", "network 'host'", id="host"),
        pytest.param({}, "proxy-only", True, "none", "network 'none'", id="none"),
        pytest.param({"egress": "proxy-only"}, None, True, "my-net", "network 'my-net'", id="other-network"),
        pytest.param({"filters": {"allowlist_only": True}}, None, True, "host", "allowlist_only", id="implied"),
        pytest.param({}, "proxy-only", False, None, "needs the proxy", id="no-proxy"),
    ],
)
def test_egress_proxy_only_conflicts_are_usage_errors(proxy: dict[str, object], cli: str | None, proxied: bool,
                                                      network: str | None, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        egress.decide(config_with(proxy), cli, proxied, network)
    assert info.value.exit_code == 2 and needle in str(info.value) + (info.value.hint or "")


def test_egress_config_value_checked() -> None:
    with pytest.raises(ConfigError, match=r"\[proxy\] egress.*'closed'.*\"open\" or \"proxy-only\""):
        parse_proxy_settings({"proxy": {"egress": "closed"}}, SRC)


def test_relay_binaries_are_static() -> None:
    for arch in ("amd64", "arm64"):
        data = (egress.RELAY_BIN / f"mux-relay-{arch}").read_bytes()
        assert data[:4] == b"\x7fELF" and b"ld-linux" not in data  # static: runs in any image


def test_two_instances_register_the_same_session_name_apart(files: ProxyFiles, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    urls = {}
    for inst in ("one", "two"):
        monkeypatch.setenv("MUX_INSTANCE", inst)
        wire_proxy(Runner(), ProxySettings(port=8125), spec("same"))
        from mux.paths import session_dir

        urls[inst] = Path(session_dir("same"), "proxy.env").read_text().splitlines()[0]
    assert urls["one"].startswith("HTTP_PROXY=http://mux-one+same:")
    assert urls["two"].startswith("HTTP_PROXY=http://mux-two+same:")
    assert registry.names(files) == ["one+same", "two+same"]
    monkeypatch.setenv("MUX_INSTANCE", "one")
    from mux.egress.wiring import forget_session

    forget_session("same", files)
    assert registry.names(files) == ["two+same"]  # the other instance's session still opens the proxy


def test_the_running_proxy_keeps_its_sessions_when_the_registry_turns_unreadable(files: ProxyFiles) -> None:
    import os
    import time as _time

    registry.register(files, "a", "s1")
    view = registry.Registry(files.sessions)
    assert view.check("mux-a", "s1") == "a"
    files.sessions.write_text("{broken")
    later = _time.time() + 5
    os.utime(files.sessions, (later, later))  # a new mtime: the proxy re-reads it on the next miss
    assert view.check("mux-b", "s2") is None  # the miss re-reads the broken file...
    assert view.check("mux-a", "s1") == "a"  # ...and keeps what it knew instead of dropping everyone
