"""The proxy's policy as a mitmproxy addon: who may use it, what is refused, what is injected.

Order of decisions for every CONNECT and every plain-HTTP request:
1. proxy authentication (a registered session's user and secret) -> else 407;
2. name filters (blocked / allowlist, on the host as written) -> else 403;
3. destination policy (``destinations``: the resolved address may not be the
   host, loopback, private, link-local...) -> else 403; the address checked is
   pinned, and ``server_connect`` connects to exactly that address;
4. CONNECT to a host with a credential rule is intercepted (TLS terminated, the
   header injected into each request); any other CONNECT is tunnelled untouched.
Rules match the CONNECT target (or, for plain HTTP, the absolute URL's host); a
credential is only injected into HTTPS, where mitmproxy has verified the upstream.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import time
from pathlib import Path

from mitmproxy import connection, http, tls
from mitmproxy.proxy import server_hooks

from mux.proxy import domains
from mux.proxy.destinations import Destinations, Unresolvable, refusal_text
from mux.proxy.registry import Registry
from mux.proxy.settings import CredentialRule, Filters

log = logging.getLogger("mux.proxy")
REALM = 'Basic realm="mux proxy"'


class MuxPolicy:
    def __init__(
        self, registry: Registry, filters: Filters, rules: tuple[CredentialRule, ...], audit: Path
    ) -> None:
        self.registry = registry
        self.filters = filters
        self.rules = rules
        self.audit_path = audit
        self.destinations = Destinations(filters.allowed_networks)
        # client connection id -> session name, learnt at CONNECT: requests inside
        # an intercepted tunnel carry no proxy credentials of their own.
        self.tunnels: dict[str, str] = {}
        # client connection id -> {(host, port): the checked address to connect to}
        self.pins: dict[str, dict[tuple[str, int], str]] = {}
        # server connection id -> the address as the client wrote it (restored once connected)
        self.written: dict[str, tuple[str, int]] = {}

    def rule_for(self, host: str) -> CredentialRule | None:
        return next((r for r in self.rules if domains.any_match(r.domains, host)), None)

    # -- hooks -------------------------------------------------------------------

    async def http_connect(self, flow: http.HTTPFlow) -> None:
        session = self._authenticate(flow)
        if session is None:
            return
        if self._filter(flow, session) or await self._refuse_destination(flow, session):
            return
        self.tunnels[flow.client_conn.id] = session
        if self.rule_for(flow.request.host) is None:
            # Intercepted tunnels are audited request by request; others only here.
            self._audit(flow, session, injected=False, status=200)

    def tls_clienthello(self, data: tls.ClientHelloData) -> None:
        address = data.context.server.address
        if address is None or self.rule_for(address[0]) is None:
            data.ignore_connection = True
        else:
            # Talk to the CONNECT target under its own name, whatever SNI the client sent.
            data.context.server.sni = address[0]

    async def requestheaders(self, flow: http.HTTPFlow) -> None:
        flow.metadata["mux_start"] = time.time()
        session = self.tunnels.get(flow.client_conn.id)
        if session is None:
            # Plain HTTP through the proxy: every request authenticates itself.
            session = self._authenticate(flow)
            if session is None or self._filter(flow, session):
                return
        # Also inside a tunnel: a request's Host may name another server than the CONNECT did.
        if await self._refuse_destination(flow, session):
            return
        flow.metadata["mux_session"] = session
        # The session secret is for mux only; never pass it on.
        flow.request.headers.pop("Proxy-Authorization", None)
        rule = self.rule_for(flow.request.host)
        if rule is not None and flow.request.scheme == "https" and flow.client_conn.id in self.tunnels:
            flow.request.headers[rule.header] = rule.header_value()
            flow.metadata["mux_injected"] = rule.name

    def response(self, flow: http.HTTPFlow) -> None:
        resp = flow.response
        if resp is not None and not resp.stream and _ends_at_close(resp):
            # An HTTP/1.0-style body that ends when the server closes: mitmproxy
            # closes the client's TLS without close_notify, which strict clients
            # (git's GnuTLS) read as truncation. The body is complete here, so say
            # its length.
            resp.headers["Content-Length"] = str(len(resp.raw_content or b""))
        if "mux_session" in flow.metadata and flow.request.method != "CONNECT":
            status = flow.response.status_code if flow.response else 0
            self._audit(flow, flow.metadata["mux_session"], bool(flow.metadata.get("mux_injected")), status)

    def error(self, flow: http.HTTPFlow) -> None:
        if "mux_session" in flow.metadata and flow.request.method != "CONNECT":
            self._audit(flow, flow.metadata["mux_session"], bool(flow.metadata.get("mux_injected")), 502)
            log.warning("%s %s: %s", flow.request.method, flow.request.host, flow.error)

    async def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        """Every upstream connection: to the address checked for this client, else checked now."""
        if data.server.address is None:
            return
        host, port = data.server.address
        pinned = self.pins.get(data.client.id, {}).get((host, port))
        if pinned is None:
            pinned, reason, _ = await self._check(host, port)
            if pinned is None:
                data.server.error = f"mux proxy: refused by mux's network policy: {reason}"
                return
        self.written[data.server.id] = (host, port)
        data.server.address = (pinned, port)

    def server_connected(self, data: server_hooks.ServerConnectionHookData) -> None:
        # Give the connection its written name back, so mitmproxy reuses it for the
        # next request to that host (TLS already verifies against the name: server.sni).
        written = self.written.pop(data.server.id, None)
        if written is not None:
            # Server refuses a changed address on an open connection; the socket is
            # already connected to the pinned address, so only the label changes.
            data.server.__dict__["address"] = written

    def server_connect_error(self, data: server_hooks.ServerConnectionHookData) -> None:
        self.written.pop(data.server.id, None)

    def client_disconnected(self, client: connection.Client) -> None:
        self.tunnels.pop(client.id, None)
        self.pins.pop(client.id, None)

    # -- helpers -----------------------------------------------------------------

    def _authenticate(self, flow: http.HTTPFlow) -> str | None:
        user, secret = _basic_credentials(flow.request.headers.get("Proxy-Authorization", ""))
        session = self.registry.check(user, secret) if user else None
        if session is None:
            flow.response = http.Response.make(
                407,
                b"mux proxy: authentication required; use the proxy URL mux gave this session\n",
                {"Proxy-Authenticate": REALM, "Content-Type": "text/plain"},
            )
            self._audit(flow, None, injected=False, status=407)
        return session

    def _filter(self, flow: http.HTTPFlow, session: str) -> bool:
        reason = self.filters.refusal(flow.request.host)
        if reason is None:
            return False
        flow.response = http.Response.make(
            403, f"mux proxy: refused by mux's network policy: {reason}\n".encode(),
            {"Content-Type": "text/plain"},
        )
        self._audit(flow, session, injected=False, status=403)
        return True

    async def _check(self, host: str, port: int) -> tuple[str | None, str, int]:
        """(address to connect to, or None with why and the status to answer: 403 policy, 502 no such name)."""
        loop = asyncio.get_running_loop()
        try:
            address, reason = await loop.run_in_executor(None, self.destinations.check, host, port)
        except Unresolvable as exc:
            return None, str(exc), 502
        return address, reason or "", 403

    async def _refuse_destination(self, flow: http.HTTPFlow, session: str) -> bool:
        """403 unless the destination's address may be reached; else pin that address."""
        host, port = flow.request.host, flow.request.port
        pins = self.pins.setdefault(flow.client_conn.id, {})
        if (host, port) in pins:
            return False
        address, reason, status = await self._check(host, port)
        if address is None:
            body = refusal_text(reason) if status == 403 else f"mux proxy: {reason}\n"
            flow.response = http.Response.make(status, body.encode(), {"Content-Type": "text/plain"})
            self._audit(flow, session, injected=False, status=status)
            return True
        pins[(host, port)] = address
        return False

    def _audit(self, flow: http.HTTPFlow, session: str | None, injected: bool, status: int) -> None:
        start = flow.metadata.get("mux_start") or flow.request.timestamp_start
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "session": session,
            "host": flow.request.host,
            "method": flow.request.method,
            # The path only: query strings often carry tokens.
            "path": "" if flow.request.method == "CONNECT" else flow.request.path.split("?", 1)[0],
            "injected": injected,
            "status": status,
            "duration_ms": round((time.time() - start) * 1000, 1),
        }
        entry.update(flow.metadata.get("mux_audit", {}))  # a refusal's why (mux.proxy.gate)
        with open(self.audit_path, "a") as fh:
            fh.write(json.dumps(entry) + "\n")


def _ends_at_close(resp: http.Response) -> bool:
    if resp.is_http2 or resp.is_http3 or resp.status_code in (204, 304) or resp.status_code < 200:
        return False
    return "content-length" not in resp.headers and "transfer-encoding" not in resp.headers


def _basic_credentials(header: str) -> tuple[str, str]:
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic":
        return "", ""
    try:
        user, _, secret = base64.b64decode(token.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    return user, secret
