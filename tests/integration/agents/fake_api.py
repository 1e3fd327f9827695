"""A local HTTPS fake of the Anthropic Messages API, under a ``*.test`` name and a test CA.

It records every request (path and headers) and answers ``POST /v1/messages``
with one text reply, streamed (SSE) or not, as the real API does. Nothing
here talks to any other address.
"""

from __future__ import annotations

import json
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.integration.proxy.servers import make_pki


def make_ca_and_cert(directory: Path, dns_name: str) -> tuple[Path, Path, Path]:
    """(CA PEM, server certificate PEM, key PEM) for ``dns_name``."""
    pki = make_pki(directory, [dns_name], ca_name="mux agents test CA")
    return pki.ca, pki.cert, pki.key


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] = field(default_factory=dict)


def _sse(reply: str, model: str) -> bytes:
    events = [
        ("message_start", {"type": "message_start", "message": {
            "id": "msg_fake", "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 3, "output_tokens": 1}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": reply}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                           "usage": {"output_tokens": 2}}),
        ("message_stop", {"type": "message_stop"}),
    ]
    return b"".join(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in events)


def _message(reply: str, model: str) -> bytes:
    return json.dumps({
        "id": "msg_fake", "type": "message", "role": "assistant", "model": model,
        "content": [{"type": "text", "text": reply}], "stop_reason": "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": 3, "output_tokens": 2},
    }).encode()


def _responses_sse(reply: str, model: str) -> bytes:
    """OpenAI's Responses API, streamed: what codex reads."""
    item = {"id": "msg_fake", "type": "message", "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": reply, "annotations": []}]}
    usage = {"input_tokens": 3, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 2,
             "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 5}
    response = {"id": "resp_fake", "object": "response", "created_at": 0, "model": model}
    events = [
        {"type": "response.created", "response": {**response, "status": "in_progress", "output": []}},
        {"type": "response.output_item.added", "output_index": 0,
         "item": {**item, "status": "in_progress", "content": []}},
        {"type": "response.output_text.delta", "item_id": "msg_fake", "output_index": 0, "content_index": 0,
         "delta": reply},
        {"type": "response.output_item.done", "output_index": 0, "item": item},
        {"type": "response.completed",
         "response": {**response, "status": "completed", "output": [item], "usage": usage}},
    ]
    return b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)


class FakeMessagesAPI:
    """``with FakeMessagesAPI(dir, "fake.test", reply) as api: api.port, api.seen``.

    Also answers OpenAI's ``POST /v1/responses`` (codex) with the same reply."""

    def __init__(self, directory: Path, name: str, reply: str, bind: str = "127.0.0.1") -> None:
        self.name, self.reply = name, reply
        self.ca, cert, key = make_ca_and_cert(directory, name)
        self.seen: list[Seen] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _record(self) -> Seen:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else {}
                except ValueError:
                    body = {}
                seen = Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()},
                            body if isinstance(body, dict) else {})
                api.seen.append(seen)
                return seen

            def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("request-id", "req_fake")
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802
                self._record()
                self._send(404, b'{"type":"error","error":{"type":"not_found_error","message":"fake"}}')

            def do_HEAD(self) -> None:  # noqa: N802
                self._record()
                self._send(200, b"")

            def do_POST(self) -> None:  # noqa: N802
                seen = self._record()
                if self.path.split("?")[0].endswith("/responses"):
                    self._send(200, _responses_sse(api.reply, str(seen.body.get("model") or "gpt-fake")),
                               "text/event-stream")
                    return
                if not self.path.startswith("/v1/messages") or self.path.startswith("/v1/messages/count"):
                    self._send(404, b'{"type":"error","error":{"type":"not_found_error","message":"fake"}}')
                    return
                model = str(seen.body.get("model") or "claude-fake")
                if seen.body.get("stream"):
                    self._send(200, _sse(api.reply, model), "text/event-stream")
                else:
                    self._send(200, _message(api.reply, model))

        self.server = ThreadingHTTPServer((bind, 0), Handler)
        self.server.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"https://{self.name}:{self.port}"

    def __enter__(self) -> FakeMessagesAPI:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
