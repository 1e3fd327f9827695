"""``[proxy]`` and ``[credentials.NAME]`` tables -> frozen dataclasses.

Both parsers take the whole config document (a dict from TOML) and the name of
the file it came from, which every error message names together with the key,
the bad value and what is allowed.

Secrets: credential values normally hold ``${VAR}`` references. mux never
writes an expanded credential anywhere; the proxy process reloads the config
file and expands them from its own environment when it starts
(:func:`expand_credentials`), so tokens live only in the proxy's memory.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NoReturn

from mux.errors import ConfigError
from mux.expand import expand as expand_vars
from mux.proxy import domains
from mux.proxy.audit import DEFAULT_KEEP, DEFAULT_MAX_BYTES
from mux.proxy.limits import (
    DEFAULT_AUTH_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_SESSION_CONNECTIONS,
    DEFAULT_MAX_UNAUTHENTICATED,
)

DEFAULT_PORT = 8080
DEFAULT_TIMEOUT = 10.0
PORT_ENV = "MUX_PROXY_PORT"
UPSTREAM_CA_ENV = "MUX_PROXY_UPSTREAM_CA"
AUTH_TYPES = ("bearer", "basic")
GIT_PUSH_MODES = ("session", "any", "none")
DEFAULT_PUSH_PREFIX = "mux/{session}"
EGRESS_MODES = ("open", "proxy-only")
_HOST_ADDRESS = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*")
_HEADER = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
_FORBIDDEN_HEADERS = {"host", "proxy-authorization", "content-length", "transfer-encoding"}


@dataclass(frozen=True)
class Filters:
    blocked_domains: tuple[str, ...] = ()
    allowlist_only: bool = False
    allowed_domains: tuple[str, ...] = ()
    # CIDRs the destination policy lets through (see mux.proxy.destinations).
    allowed_networks: tuple[str, ...] = ()

    def refusal(self, host: str) -> str | None:
        """Why mux's policy refuses ``host``, or None when it may pass."""
        if domains.any_match(self.blocked_domains, host):
            return f"{host} is in [proxy.filters] blocked_domains"
        if self.allowlist_only and not domains.any_match(self.allowed_domains, host):
            return f"{host} is not in [proxy.filters] allowed_domains (allowlist_only = true)"
        return None


@dataclass(frozen=True)
class ProxySettings:
    enabled: bool = True
    port: int = DEFAULT_PORT
    # Empty: loopback plus the Docker bridge gateway, found when the proxy starts.
    bind: tuple[str, ...] = ()
    # Seconds `start` (and `mux new`) wait for the proxy to accept connections.
    timeout: float = DEFAULT_TIMEOUT
    upstream_ca: Path | None = None
    filters: Filters = field(default_factory=Filters)
    # "open" | "proxy-only" (mux.egress.relay); None: proxy-only if allowlist_only, else open
    egress: str | None = None
    # The name or address sessions reach the proxy at (default: host-gateway, or what a
    # VM engine documents; see mux/engine/vm.py).
    host_address: str | None = None
    # The audit log rotates at this size, keeping this many old files (mux.proxy.audit).
    audit_max_bytes: int = DEFAULT_MAX_BYTES
    audit_keep: int = DEFAULT_KEEP
    # Connection limits and the unauthenticated-connection timeout (mux.proxy.limits).
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    max_session_connections: int = DEFAULT_MAX_SESSION_CONNECTIONS
    max_unauthenticated_connections: int = DEFAULT_MAX_UNAUTHENTICATED
    auth_timeout: float = DEFAULT_AUTH_TIMEOUT
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT


@dataclass(frozen=True)
class CredentialRule:
    name: str
    domains: tuple[str, ...]
    header: str = "Authorization"
    auth_type: str | None = None
    # Secret material: kept out of repr so a traceback or log line cannot show it.
    value: str | None = field(default=None, repr=False)
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    # What a session may push through this rule (mux.proxy.gitpush): "session" only
    # refs/heads/<push_prefix>[/...], "any", or "none"; read_only: no writes at all.
    git_push: str = "session"
    push_prefix: str = DEFAULT_PUSH_PREFIX
    read_only: bool = False

    def header_value(self) -> str:
        if self.auth_type == "basic":
            raw = f"{self.username}:{self.password}".encode()
            return "Basic " + base64.b64encode(raw).decode()
        if self.auth_type == "bearer":
            return f"Bearer {self.value}"
        return self.value or ""


def default_settings(env: Mapping[str, str] | None = None) -> ProxySettings:
    """Settings when the config has no ``[proxy]`` table (e.g. ``mux proxy start``)."""
    return ProxySettings(port=_env_port(env if env is not None else os.environ))


def parse_proxy_settings(
    raw: Mapping[str, Any], source: str, env: Mapping[str, str] | None = None
) -> ProxySettings | None:
    """The ``[proxy]`` table of config document ``raw``; None when there is none.

    Strings in ``[proxy]`` (not secrets) get ``${VAR}`` expanded from ``env``
    (default: this process's environment); already-expanded values pass unchanged.
    """
    table = raw.get("proxy")
    if table is None:
        return None
    table = _expand_tree(table, os.environ if env is None else env, source, "[proxy]")
    chk = _Checker(source)
    table = chk.table(table, "[proxy]", {"enabled", "port", "bind", "timeout", "upstream_ca", "filters", "egress",
                                         "host_address", "audit_max_bytes", "audit_keep", "max_connections",
                                         "max_session_connections", "max_unauthenticated_connections",
                                         "auth_timeout", "idle_timeout"})
    host_address = table.get("host_address")
    if host_address is not None and (not isinstance(host_address, str) or not _HOST_ADDRESS.fullmatch(host_address)):
        chk.fail("[proxy] host_address", host_address, "a host name or IPv4 address, like host.docker.internal")
    egress = table.get("egress")
    if egress is not None and egress not in EGRESS_MODES:
        chk.fail("[proxy] egress", egress, '"open" or "proxy-only"')
    port = _env_port(os.environ, source) if "port" not in table else chk.port(table["port"])
    timeout = table.get("timeout", DEFAULT_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        chk.fail("[proxy] timeout", timeout, "a number of seconds greater than 0")
    ca = table.get("upstream_ca")
    if ca is not None and (not isinstance(ca, str) or not ca):
        chk.fail("[proxy] upstream_ca", ca, "the path of a PEM file")
    ftable = chk.table(
        table.get("filters", {}), "[proxy.filters]",
        {"blocked_domains", "allowlist_only", "allowed_domains", "allowed_networks"},
    )
    filters = Filters(
        blocked_domains=chk.patterns(ftable.get("blocked_domains", []), "[proxy.filters] blocked_domains"),
        allowlist_only=chk.boolean(ftable.get("allowlist_only", False), "[proxy.filters] allowlist_only"),
        allowed_domains=chk.patterns(ftable.get("allowed_domains", []), "[proxy.filters] allowed_domains"),
        allowed_networks=chk.networks(ftable.get("allowed_networks", []), "[proxy.filters] allowed_networks"),
    )
    return ProxySettings(
        enabled=chk.boolean(table.get("enabled", True), "[proxy] enabled"),
        port=port,
        bind=chk.binds(table.get("bind", []), "[proxy] bind"),
        timeout=float(timeout),
        upstream_ca=Path(ca).expanduser() if ca else None,
        filters=filters,
        egress=egress,
        host_address=host_address,
        audit_max_bytes=chk.integer(table.get("audit_max_bytes", DEFAULT_MAX_BYTES), "[proxy] audit_max_bytes",
                                    4096, 1 << 40, "a size in bytes, at least 4096 (default 4 MiB: 4194304)"),
        audit_keep=chk.integer(table.get("audit_keep", DEFAULT_KEEP), "[proxy] audit_keep", 0, 100,
                               "a number of old files to keep, from 0 to 100"),
        **{key: chk.integer(table.get(key, default), f"[proxy] {key}", 1, 1 << 20, "a number from 1 to 1048576")
           for key, default in (("max_connections", DEFAULT_MAX_CONNECTIONS),
                                ("max_session_connections", DEFAULT_MAX_SESSION_CONNECTIONS),
                                ("max_unauthenticated_connections", DEFAULT_MAX_UNAUTHENTICATED))},
        auth_timeout=float(chk.seconds(table.get("auth_timeout", DEFAULT_AUTH_TIMEOUT), "[proxy] auth_timeout")),
        idle_timeout=float(chk.seconds(table.get("idle_timeout", DEFAULT_IDLE_TIMEOUT), "[proxy] idle_timeout")),
    )


def parse_credentials(raw: Mapping[str, Any], source: str) -> tuple[CredentialRule, ...]:
    """The ``[credentials.NAME]`` tables of ``raw``, values as written (``${VAR}`` kept)."""
    chk = _Checker(source)
    tables = chk.table(raw.get("credentials", {}), "[credentials]", None)
    rules: list[CredentialRule] = []
    seen: dict[str, str] = {}
    for name, table in tables.items():
        where = f"[credentials.{name}]"
        t = chk.table(table, where, {"domains", "header", "value", "auth_type", "username", "password",
                                     "git_push", "push_prefix", "read_only"})
        pats = chk.patterns(t.get("domains"), f"{where} domains", required=True)
        for p in pats:
            if p in seen:
                chk.fail(f"{where} domains", p, f"a domain no other rule names ({seen[p]} has it)")
            seen[p] = where
        header = t.get("header", "Authorization")
        if not isinstance(header, str) or not _HEADER.match(header) or header.lower() in _FORBIDDEN_HEADERS:
            chk.fail(f"{where} header", header, 'an HTTP header name such as "Authorization" or "X-Api-Key"')
        auth = t.get("auth_type")
        if auth is not None and auth not in AUTH_TYPES:
            chk.fail(f"{where} auth_type", auth, "\"bearer\" or \"basic\"")
        strs = {k: chk.string(t[k], f"{where} {k}") for k in ("value", "username", "password") if k in t}
        need = {"basic": ("username", "password")}.get(str(auth), ("value",))
        kind = f"auth_type {auth or '(none)'} needs {' and '.join(need)}"
        for key in need:
            if key not in strs:
                chk.fail(f"{where} {key}", "(missing)", f"a string; {kind}")
        for key in sorted(set(strs) - set(need)):
            chk.fail(f"{where} {key}", "(set)", f"no {key}: {kind}")
        git_push = t.get("git_push", "session")
        if git_push not in GIT_PUSH_MODES:
            chk.fail(f"{where} git_push", git_push, '"session", "any" or "none"')
        prefix = t.get("push_prefix", DEFAULT_PUSH_PREFIX)
        if not isinstance(prefix, str) or not valid_push_prefix(prefix):
            chk.fail(f"{where} push_prefix", prefix,
                     'a branch path with {session} in it, like "mux/{session}" or "alice/mux/{session}"')
        read_only = chk.boolean(t.get("read_only", False), f"{where} read_only")
        rules.append(CredentialRule(name=name, domains=pats, header=header, auth_type=auth, **strs,
                                    git_push=git_push, push_prefix=prefix, read_only=read_only))
    return tuple(rules)


_PREFIX_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")


def valid_push_prefix(prefix: str) -> bool:
    """A branch path under refs/heads/ holding ``{session}`` once: each session its own
    namespace (two sessions sharing one could overwrite each other's work)."""
    if prefix.count("{session}") != 1:
        return False
    parts = prefix.replace("{session}", "s").split("/")
    return all(_PREFIX_PART.fullmatch(p) and not p.endswith((".lock", ".")) and ".." not in p for p in parts)


def push_ref_prefix(rule: CredentialRule, session: str) -> str | None:
    """The refs session ``session`` may push through ``rule``: this ref and those under it;
    "*" for git_push = "any", None for "none" (or a read-only rule)."""
    if rule.read_only or rule.git_push == "none":
        return None
    if rule.git_push == "any":
        return "*"
    return "refs/heads/" + rule.push_prefix.replace("{session}", session)


def push_prefixes(raw_credentials: Mapping[str, Any], session: str, source: str) -> dict[str, str | None]:
    """Credential rule -> the refs ``session`` may push through it (see push_ref_prefix),
    for ``mux list --json`` and ``mux proxy status --json``."""
    rules = parse_credentials({"credentials": dict(raw_credentials)}, source)
    return {r.name: push_ref_prefix(r, session) for r in rules}


def expand(text: str, env: Mapping[str, str], source: str, where: str) -> str:
    """``${VAR}`` and ``${VAR:-default}`` from ``env``, as everywhere in the config."""
    return expand_vars(text, env, f"{source}: {where}",
                       hint="export {name}=... before starting the proxy (it reads secrets at start-up)")


def expand_credentials(
    rules: tuple[CredentialRule, ...], env: Mapping[str, str], source: str
) -> tuple[CredentialRule, ...]:
    """Rules with their secrets filled in from ``env``: for the proxy process only."""
    out = []
    for r in rules:
        vals = {
            k: expand(v, env, source, f"[credentials.{r.name}] {k}") if v is not None else None
            for k, v in (("value", r.value), ("username", r.username), ("password", r.password))
        }
        out.append(replace(r, value=vals["value"], username=vals["username"], password=vals["password"]))
    return tuple(out)


def _expand_tree(value: Any, env: Mapping[str, str], source: str, table: str) -> Any:
    """Expand every string under one table; ``table`` is its header, e.g. ``[proxy]``."""
    if not isinstance(value, dict):
        return value

    def one(v: Any, where: str) -> Any:
        if isinstance(v, str):
            return expand(v, env, source, where)
        if isinstance(v, list):
            return [one(x, where) for x in v]
        return v

    return {
        k: _expand_tree(v, env, source, f"{table[:-1]}.{k}]")
        if isinstance(v, dict)
        else one(v, f"{table} {k}")
        for k, v in value.items()
    }


def _env_port(env: Mapping[str, str], source: str = "environment") -> int:
    text = env.get(PORT_ENV)
    if not text:
        return DEFAULT_PORT
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ConfigError(f"{source}: ${PORT_ENV} = {text!r} is not a port; use a number from 1 to 65535")
    return int(text)


class _Checker:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, value: object, allowed: str) -> NoReturn:
        raise ConfigError(f"{self.source}: {key} = {value!r} is not valid; use {allowed}")

    def table(self, value: object, where: str, allowed: set[str] | None) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(where, value, "a table")
        unknown = sorted(set(value) - allowed) if allowed is not None else []
        if unknown:
            raise ConfigError(
                f"{self.source}: unknown key {unknown[0]!r} in {where}; "
                f"allowed keys: {', '.join(sorted(allowed or ()))}"
            )
        return value

    def boolean(self, value: object, key: str) -> bool:
        if not isinstance(value, bool):
            self.fail(key, value, "true or false")
        return value

    def integer(self, value: object, key: str, low: int, high: int, allowed: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.fail(key, value, allowed)
        return value

    def seconds(self, value: object, key: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 3600:
            self.fail(key, value, "a number of seconds greater than 0, at most 3600")
        return float(value)

    def string(self, value: object, key: str) -> str:
        if not isinstance(value, str) or not value:
            self.fail(key, value, "a non-empty string (\"${VAR}\" takes it from the environment)")
        return value

    def port(self, value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
            self.fail("[proxy] port", value, "a number from 1 to 65535")
        return value

    def patterns(self, value: object, key: str, required: bool = False) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(domains.is_valid_pattern(v) for v in value) or (
            required and not value
        ):
            self.fail(key, value, "a list of domains such as [\"api.example.com\", \"*.example.com\"]")
        return tuple(domains.normalize_host(v) for v in value)

    def networks(self, value: object, key: str) -> tuple[str, ...]:
        from mux.proxy.destinations import parse_networks  # here: sockets and fcntl: for [proxy] networks only

        allowed = 'a list of networks in CIDR form, such as ["10.1.0.0/16", "127.0.0.1/32"]'
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail(key, value, allowed)
        try:
            return tuple(str(n) for n in parse_networks(value))
        except ValueError as exc:
            raise ConfigError(f"{self.source}: {key}: {exc}; use {allowed}") from None

    def binds(self, value: object, key: str) -> tuple[str, ...]:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list):
            self.fail(key, value, "an IP address or a list of them, such as [\"127.0.0.1\", \"172.17.0.1\"]")
        for item in items:
            check_bind_address(item, lambda v: self.fail(key, v, "a specific IP address, never 0.0.0.0"))
        return tuple(str(i) for i in items)


def check_bind_address(value: object, fail: Any) -> None:
    """Reject anything but one concrete address: listening everywhere would expose credentials."""
    try:
        addr = ipaddress.ip_address(value)  # type: ignore[arg-type]
    except (ValueError, TypeError):
        fail(value)
        return
    if addr.is_unspecified:
        fail(value)
