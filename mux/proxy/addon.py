"""The proxy's policy as a mitmproxy addon: who may use it, what is refused, what is injected.

Order of decisions for every CONNECT and every plain-HTTP request, whatever came
before it on the same client connection:
1. proxy authentication (exactly one Proxy-Authorization, a registered session's
   user and secret, checked against the registry as it is now) -> else 407;
2. name filters (blocked / allowlist, on the host as written) -> else 403;
3. destination policy (``destinations``: the resolved address may not be the
   host, loopback, private, link-local...) -> else 403; the address checked is
   pinned, and ``server_connect`` connects to exactly that address;
4. CONNECT to a host with a credential rule is intercepted (TLS terminated, the
   header injected into each request); any other CONNECT is tunnelled untouched,
   and once its ClientHello is read its sockets leave mitmproxy (``splice``).
Rules match the CONNECT target (or, for plain HTTP, the absolute URL's host); a
credential is only injected into HTTPS, where mitmproxy has verified the upstream.

A connection is a tunnel only once its CONNECT succeeded (``http_connected``);
requests inside it are attributed to the CONNECT's session, which must still be
registered with the same secret for each one. A refused or failed CONNECT closes
the client connection (``Connection: close``): nothing after it is read.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
from pathlib import Path
from typing import NamedTuple

from mitmproxy import connection, http, tls
from mitmproxy.proxy import server_hooks

from mux.proxy import domains
from mux.proxy.audit import DEFAULT_KEEP, DEFAULT_MAX_BYTES, WINDOW, AuditLog, stamp
from mux.proxy.destinations import Destinations, Unresolvable, refusal_text
from mux.proxy.front import front as front_of
from mux.proxy.limits import Limits
from mux.proxy.registry import Registry
from mux.proxy.registry import digest as registry_digest
from mux.proxy.settings import CredentialRule, Filters
from mux.proxy.splice import Splicer

log = logging.getLogger("mux.proxy")
REALM = 'Basic realm="mux proxy"'


class Tunnel(NamedTuple):
    """A CONNECT that succeeded: whose it is (re-checked per request) and where it goes."""

    session: str
    user: str
    secret_digest: str
    host: str
    port: int


class MuxPolicy:
    def __init__(
        self, registry: Registry, filters: Filters, rules: tuple[CredentialRule, ...], audit: Path,
        audit_max_bytes: int = DEFAULT_MAX_BYTES, audit_keep: int = DEFAULT_KEEP, limits: Limits | None = None,
    ) -> None:
        self.registry = registry
        self.filters = filters
        self.rules = rules
        self.audit_path = audit
        self.audit_log = AuditLog(audit, audit_max_bytes, audit_keep)
        self._flusher: asyncio.Task[None] | None = None
        self.limits = limits or Limits()
        self.destinations = Destinations(filters.allowed_networks)
        # Passthrough tunnels leave mitmproxy once the ClientHello is read (mux.proxy.splice).
        self.splicer = Splicer(self.limits.idle_timeout, self._spliced_closed)
        # client connection id -> its tunnel, once a CONNECT succeeded: requests inside
        # an intercepted tunnel carry no proxy credentials of their own.
        self.tunnels: dict[str, Tunnel] = {}
        # client connection id -> {(host, port): the checked address to connect to}
        self.pins: dict[str, dict[tuple[str, int], str]] = {}
        # server connection id -> the address as the client wrote it (restored once connected)
        self.written: dict[str, tuple[str, int]] = {}

    def rule_for(self, host: str) -> CredentialRule | None:
        return next((r for r in self.rules if domains.any_match(r.domains, host)), None)

    # -- hooks -------------------------------------------------------------------

    def running(self) -> None:
        # Summaries of unauthenticated refusals are written when their minute ends,
        # even if nothing else is logged after it.
        self._flusher = asyncio.ensure_future(self._flush_summaries())

    def done(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
        self.audit_log.flush_summaries(everything=True)

    async def _flush_summaries(self) -> None:
        while True:
            await asyncio.sleep(WINDOW / 4)
            self.audit_log.flush_summaries()

    async def http_connect(self, flow: http.HTTPFlow) -> None:
        session = self._authenticate(flow)
        if session is None:
            return
        if self._filter(flow, session) or await self._refuse_destination(flow, session):
            return
        user, secret = _basic_credentials(_one(flow.request.headers, "Proxy-Authorization"))
        flow.metadata["mux_tunnel"] = Tunnel(session, user, registry_digest(secret),
                                             flow.request.host, flow.request.port)
        if self.rule_for(flow.request.host) is None:
            # Intercepted tunnels are audited request by request; others only here.
            self._audit(flow, session, injected=False, status=200)

    def http_connected(self, flow: http.HTTPFlow) -> None:
        # Only now is the client connection a tunnel: a CONNECT answered 502 (closed
        # port) or refused leaves an HTTP connection that must not carry its session.
        tunnel = flow.metadata.get("mux_tunnel")
        if isinstance(tunnel, Tunnel):
            self.tunnels[flow.client_conn.id] = tunnel

    def http_connect_error(self, flow: http.HTTPFlow) -> None:
        # Whatever the client sends after a failed CONNECT is not read: close.
        if flow.response is not None:
            flow.response.headers["Connection"] = "close"

    def client_connected(self, client: connection.Client) -> None:
        front, peer = front_of(), client.peername
        named = front.client((str(peer[0]), int(peer[1]))) if front is not None and peer else None
        if named is not None:
            client.peername = named  # through the egress relay: limits, logs, audit are the client's
        why = self.limits.connected(client.id, str(client.peername[0]) if client.peername else "?")
        if why is not None:
            client.error = f"mux proxy: {why}"  # mitmproxy closes it before reading a byte
            return
        asyncio.get_running_loop().call_later(self.limits.auth_timeout, self._expire, client.id)

    def _expire(self, conn: str) -> None:
        """Close a connection that has sent no request with a session's secret in time."""
        if not self.limits.is_unauthenticated(conn):
            return
        from mitmproxy import ctx

        handler = ctx.master.addons.get("proxyserver").connections.get(conn)
        io = handler.transports.get(handler.client) if handler is not None else None
        if io is not None and io.handler is not None:
            io.handler.cancel("mux proxy: no authenticated request in time (auth_timeout)")

    def tls_clienthello(self, data: tls.ClientHelloData) -> None:
        address = data.context.server.address
        if address is None or self.rule_for(address[0]) is None:
            data.ignore_connection = True
            if data.context.client.id in self.tunnels:  # its CONNECT was authenticated and checked
                self.splicer.take(data.context)
        else:
            # Talk to the CONNECT target under its own name, whatever SNI the client sent.
            data.context.server.sni = address[0]

    async def requestheaders(self, flow: http.HTTPFlow) -> None:
        flow.metadata["mux_start"] = time.time()
        tunnel = self.tunnels.get(flow.client_conn.id)
        if tunnel is None:
            # Plain HTTP through the proxy: every request authenticates itself.
            found = self._authenticate(flow)
            if found is None or self._filter(flow, found):
                return
            session = found
        elif self._tunnel_refused(flow, tunnel):
            return
        else:
            session = tunnel.session
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
        if client.id not in self.splicer.spliced:  # a spliced tunnel counts until its sockets close
            self.limits.disconnected(client.id)
        self.tunnels.pop(client.id, None)
        self.pins.pop(client.id, None)

    def _spliced_closed(self, conn: str) -> None:
        self.limits.disconnected(conn)

    # -- helpers -----------------------------------------------------------------

    def _authenticate(self, flow: http.HTTPFlow) -> str | None:
        user, secret = _basic_credentials(_one(flow.request.headers, "Proxy-Authorization"))
        session = self.registry.check(user, secret) if user else None
        busy = self.limits.authenticated(flow.client_conn.id, session) if session is not None else None
        if busy is not None:
            flow.response = http.Response.make(
                503, f"mux proxy: {busy}\n".encode(), {"Content-Type": "text/plain", "Connection": "close"})
            self._audit(flow, session, injected=False, status=503)
            return None
        if session is None:
            flow.response = http.Response.make(
                407,
                b"mux proxy: authentication required; use the proxy URL mux gave this session\n",
                {"Proxy-Authenticate": REALM, "Content-Type": "text/plain"},
            )
            self._audit(flow, None, injected=False, status=407)
        return session

    def _tunnel_refused(self, flow: http.HTTPFlow, tunnel: Tunnel) -> bool:
        """403 (and close) for a request in a tunnel whose session is gone or was re-made,
        or that names another destination than the CONNECT did."""
        pinned = self.pins.get(flow.client_conn.id, {}).get((tunnel.host, tunnel.port))
        if self.registry.check_digest(tunnel.user, tunnel.secret_digest) != tunnel.session:
            why = f"session {tunnel.session} is no longer registered with this secret"
        elif flow.request.port != tunnel.port or flow.request.host not in (tunnel.host, pinned):
            why = f"{flow.request.host}:{flow.request.port} is not this tunnel's destination"
        else:
            return False
        flow.response = http.Response.make(
            403, f"mux proxy: refused: {why}\n".encode(), {"Content-Type": "text/plain", "Connection": "close"})
        self._audit(flow, tunnel.session, injected=False, status=403)
        return True

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
            "time": stamp(),
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
        if session is None and status == 407:
            # Anyone who reaches the proxy can send these: a count per client per minute.
            peer = flow.client_conn.peername
            self.audit_log.unauthenticated(str(peer[0]) if peer else "?", entry)
        else:
            self.audit_log.write(entry)


def _ends_at_close(resp: http.Response) -> bool:
    if resp.is_http2 or resp.is_http3 or resp.status_code in (204, 304) or resp.status_code < 200:
        return False
    return "content-length" not in resp.headers and "transfer-encoding" not in resp.headers


def _one(headers: http.Headers, name: str) -> str:
    """The header's value when it is sent exactly once; "" when absent or repeated
    (two Proxy-Authorization lines are ambiguous: neither is believed)."""
    values = headers.get_all(name)
    return values[0] if len(values) == 1 else ""


def _basic_credentials(header: str) -> tuple[str, str]:
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic":
        return "", ""
    try:
        user, _, secret = base64.b64decode(token.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    return user, secret
