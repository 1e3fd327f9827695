"""The proxy's git policy as a mitmproxy addon: ``git_push`` and ``read_only`` per credential rule.

It runs after :class:`mux.proxy.addon.MuxPolicy` (which authenticates, filters
and injects) and looks only at requests that got a credential. A push
(``receive-pack``) under ``git_push = "session"``/``"none"`` and any write under
``read_only`` is *gated*: the request is streamed, but its headers are not sent
upstream until :class:`mux.proxy.gitpush.PushGate` has read the command list
and allowed it. Then the held bytes and the rest of the body (the pack) stream
through untouched; refused, the body is read and dropped and the proxy answers
itself, so the server receives nothing.

mitmproxy opens the upstream connection and sends the headers as soon as a
request starts streaming (``HttpStream.start_request_stream``); no addon hook
sits between, so :func:`install` wraps that one method for gated flows only.
That is mitmproxy 11.0's internal API: :func:`install` checks that the pieces
it relies on are there and the proxy refuses to start otherwise.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Generator
from functools import partial
from typing import Any

from mitmproxy import http
from mitmproxy.proxy.layers import http as layers_http

from mux.errors import ProxyError
from mux.proxy import gitpush
from mux.proxy.settings import CredentialRule

log = logging.getLogger("mux.proxy")
KEY = "mux_gate"
_Stream = layers_http.HttpStream
_original: Any = None


class GitPolicy:
    def __init__(self, rules: tuple[CredentialRule, ...]) -> None:
        self.rules = {r.name: r for r in rules}

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        name = flow.metadata.get("mux_injected")
        rule = self.rules.get(name) if isinstance(name, str) else None
        if rule is None or flow.response is not None:
            return
        req = flow.request
        ctype = req.headers.get("Content-Type", "")
        refusal = gitpush.read_only_refusal(rule, req.method, req.path, ctype)
        push = refusal is None and gitpush.is_push(req.method, req.path, ctype)
        if push and rule.git_push == "any":
            req.stream = True  # a pack: streamed, not held whole (mitmproxy holds up to 64 MiB)
            return
        if push:
            session = str(flow.metadata.get("mux_session", "")).rsplit("+", 1)[-1]
            gate = gitpush.PushGate(rule, session, req.headers.get("Content-Encoding", ""))
        elif refusal is not None:
            # The credential goes nowhere: neither is it injected nor the request sent.
            req.headers.pop(rule.header, None)
            flow.metadata["mux_injected"] = ""
            gate = gitpush.PushGate(rule, "", refusal=refusal)
        else:
            return
        flow.metadata[KEY] = gate
        req.stream = True

    def request(self, flow: http.HTTPFlow) -> None:
        """A gated request with no body at all never streams: decide it here."""
        gate = flow.metadata.get(KEY)
        if isinstance(gate, gitpush.PushGate) and flow.response is None:
            gate.feed(flow.request.raw_content or b"")
            gate.finish()
            if gate.refusal is not None:
                flow.response = refusal_response(gate.refusal)
                flow.metadata["mux_audit"] = gate.refusal.audit


def refusal_response(refusal: gitpush.Refusal) -> http.Response:
    if refusal.audit.get("refused") == "read_only":
        return http.Response.make(403, (refusal.message + "\n").encode(), {"Content-Type": "text/plain"})
    return http.Response.make(200, gitpush.refusal_result(refusal),
                              {"Content-Type": gitpush.RESULT_TYPE, "Cache-Control": "no-cache"})


def install() -> None:
    """Hold gated requests back until their gate decides (idempotent)."""
    global _original
    needed = ("start_request_stream", "state_stream_request_body", "state_done", "send_response")
    missing = [n for n in needed if not hasattr(_Stream, n)]
    if missing:
        raise ProxyError(f"this mitmproxy lacks HttpStream.{missing[0]}: mux's git policy cannot run",
                         hint="install the mitmproxy release mux supports (11.0)")
    if _original is None:
        _original = _Stream.start_request_stream
        _Stream.start_request_stream = _start_request_stream  # type: ignore[method-assign]


Events = Generator[Any, Any, None]


def _start_request_stream(self: Any) -> Events:
    gate = self.flow.metadata.get(KEY)
    if not isinstance(gate, gitpush.PushGate):
        yield from _original(self)
        return
    self.client_state = partial(_held, self, gate)


def _held(self: Any, gate: gitpush.PushGate, event: Any) -> Events:
    """Body events before the decision: to the gate, none of them upstream."""
    if isinstance(event, layers_http.RequestTrailers):
        self.flow.request.trailers = event.trailers
        return
    end = isinstance(event, layers_http.RequestEndOfMessage)
    if not end and not gate.feed(event.data):
        return
    if end:
        gate.finish()
    if gate.refusal is not None:
        self.flow.response = refusal_response(gate.refusal)
        self.flow.metadata["mux_audit"] = gate.refusal.audit
        if end:
            yield from _answer(self)
        else:
            self.client_state = partial(_dropped, self)
        return
    held = gate.take_held()
    yield from _original(self)  # the upstream connection, then the headers
    if self.client_state != self.state_stream_request_body:
        return  # could not connect: mitmproxy has answered the client
    if held:
        yield from self.state_stream_request_body(layers_http.RequestData(self.stream_id, held))
    if end:
        yield from self.state_stream_request_body(event)


def _dropped(self: Any, event: Any) -> Events:
    """The rest of a refused request: read (the client sends it all before it reads) and dropped."""
    if isinstance(event, layers_http.RequestEndOfMessage):
        yield from _answer(self)


def _answer(self: Any) -> Events:
    self.flow.request.timestamp_end = time.time()
    self.flow.response.timestamp_start = time.time()
    self.client_state = self.state_done
    yield from self.send_response()
