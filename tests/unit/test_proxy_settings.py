"""``[proxy]`` / ``[credentials.*]`` parsing, domain patterns, and the session wiring's shape."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from mux.errors import ConfigError
from mux.proxy import domains
from mux.proxy.files import ProxyFiles
from mux.proxy.session import Wiring, session_wiring
from mux.proxy.settings import (
    Filters,
    ProxySettings,
    expand_credentials,
    parse_credentials,
    parse_proxy_settings,
)

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


def test_wiring_bridge(files: ProxyFiles, tmp_path: Path) -> None:
    w = session_wiring(ProxySettings(port=8123), "demo", None, files=files)
    args = w.docker_args()
    env_file = tmp_path / "sessions" / "demo" / "proxy.env"
    assert args[:2] == ["--env-file", str(env_file)]
    assert ["--add-host", "host.docker.internal:host-gateway"] == args[-2:]
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
    w = session_wiring(ProxySettings(port=8124), "h", "host", files=files)
    assert w.add_hosts == () and w.proxy_address == "127.0.0.1:8124"
    dry = session_wiring(ProxySettings(), "dry", None, dry_run=True, files=files)
    assert dry.env_file == tmp_path / "sessions" / "dry" / "proxy.env"
    assert not dry.env_file.exists()
    assert '"dry"' not in files.sessions.read_text()  # nothing registered either
