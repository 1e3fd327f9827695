"""Where the proxy keeps its files. One place, so the CLI and the proxy process agree."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mux.ownfiles import write_private
from mux.paths import data_dir

# mitmproxy loads its CA from ``<confdir>/mitmproxy-ca.pem`` (key + certificate);
# mux writes that file itself so that creating the CA does not need mitmproxy.
CA_BASENAME = "mitmproxy"
# Where the public bundle directory is mounted inside a session's container.
CONTAINER_CA_DIR = "/etc/mux-proxy"
BUNDLE_NAME = "ca-bundle.pem"


@dataclass(frozen=True)
class ProxyFiles:
    root: Path

    @classmethod
    def default(cls) -> ProxyFiles:
        return cls(Path(data_dir(), "proxy"))

    @property
    def ca_key(self) -> Path:
        """Private key + certificate of mux's CA (mode 0600)."""
        return self.root / f"{CA_BASENAME}-ca.pem"

    @property
    def public(self) -> Path:
        """Directory mounted read-only into sessions; holds nothing secret."""
        return self.root / "public"

    @property
    def ca_cert(self) -> Path:
        return self.public / "mux-ca.pem"

    @property
    def bundle(self) -> Path:
        """Public roots + mux's CA (+ the upstream CA): what tools in a session trust."""
        return self.public / BUNDLE_NAME

    @property
    def upstream_roots(self) -> Path:
        """What the proxy trusts upstream: public roots + ``upstream_ca``."""
        return self.root / "upstream-roots.pem"

    @property
    def pid(self) -> Path:
        return self.root / "proxy.pid"

    @property
    def state(self) -> Path:
        """Written by the proxy once it listens: pid, port, addresses."""
        return self.root / "state.json"

    @property
    def policy(self) -> Path:
        """Written by ``start`` for the process: port, addresses, filters (no secrets)."""
        return self.root / "policy.json"

    @property
    def log(self) -> Path:
        return self.root / "proxy.log"

    @property
    def audit(self) -> Path:
        return self.root / "audit.jsonl"

    @property
    def sessions(self) -> Path:
        """Session name -> sha256 of its proxy secret (mode 0600)."""
        return self.root / "sessions.json"

    @property
    def relay_env(self) -> Path:
        """``MUX_RELAY_KEY=...`` (mode 0600): the egress relay's env-file. The key makes the
        proxy believe the client address the relay names (mux.proxy.front)."""
        return self.root / "relay.env"

    @property
    def lock(self) -> Path:
        return self.root / ".lock"

    def ensure(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        self.public.mkdir(exist_ok=True)
        os.chmod(self.public, 0o755)


def write_public(path: Path, data: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


RELAY_KEY_VAR = "MUX_RELAY_KEY"


def relay_key(files: ProxyFiles) -> str:
    """The relay's key, made once (and kept: relays outlive proxy restarts)."""
    import re
    import secrets

    try:
        found = files.relay_env.read_text().strip().partition("=")[2]
        if re.fullmatch(r"[0-9a-f]{32}", found):
            return found
    except FileNotFoundError:
        pass
    files.ensure()
    key = secrets.token_hex(16)
    write_private(files.relay_env, f"{RELAY_KEY_VAR}={key}\n")
    return key
