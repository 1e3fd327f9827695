"""A real smart-HTTP git server on loopback, for tests and benchmarks.

``git http-backend`` (git's own CGI program) behind a threaded
``http.server``, serving every bare repository under ``root``::

    with GitHTTPServer(root, auth=("u", "p")) as srv:
        clone(f"{srv.url}/project.git", ...)

Optional HTTP Basic auth. ``hold_uploads()`` makes fetches wait inside the
server until ``release()``, so a test can interrupt a clone that is certainly
in flight without guessing at timing. Binds 127.0.0.1 only.
"""

from __future__ import annotations

import base64
import hmac
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

_BACKEND = Path(
    subprocess.run(["git", "--exec-path"], capture_output=True, text=True, check=True).stdout.strip()
) / "git-http-backend"
# Request headers http-backend reads, by their CGI variable names.
_CGI_HEADERS = {
    "Content-Type": "CONTENT_TYPE",
    "Content-Encoding": "HTTP_CONTENT_ENCODING",  # git gzips large fetch requests
    "Git-Protocol": "HTTP_GIT_PROTOCOL",  # protocol v2
}


class GitHTTPServer:
    def __init__(self, root: Path, *, auth: tuple[str, str] | None = None) -> None:
        self.root = Path(root)
        self.auth = auth
        self.requests: list[tuple[str, str, int, int]] = []  # (method, path, status, bytes sent)
        self.seen: list[tuple[str, str]] = []  # (method, path) as soon as a request's headers arrive
        self._lock = threading.Lock()
        self._gate = threading.Event()
        self._gate.set()
        self.upload_waiting = threading.Event()  # set when a held fetch is waiting
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def url_with_auth(self, user: str, password: str) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{user}:{password}@{parts.netloc}"

    def hold_uploads(self) -> None:
        self._gate.clear()

    def release(self) -> None:
        self._gate.set()

    def bytes_sent(self) -> int:
        """Response bytes so far: what a clone or fetch cost the server."""
        with self._lock:
            return sum(n for *_, n in self.requests)

    def start(self) -> GitHTTPServer:
        handler = type("Handler", (_Handler,), {"server_state": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> GitHTTPServer:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    server_state: GitHTTPServer
    # HTTP/1.0: the connection closes after each response, so CGI output can be
    # streamed without knowing its length.
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep test output clean; self.server_state.requests has the log

    def _record(self, status: int, sent: int = 0) -> None:
        state = self.server_state
        with state._lock:
            state.requests.append((self.command, urlsplit(self.path).path, status, sent))

    def _authorized(self) -> bool:
        auth = self.server_state.auth
        if auth is None:
            return True
        expected = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        return hmac.compare_digest(self.headers.get("Authorization", ""), expected)

    def _serve(self) -> None:
        with self.server_state._lock:
            self.server_state.seen.append((self.command, urlsplit(self.path).path))
        if not self._authorized():
            self._record(401)
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        parts = urlsplit(self.path)
        body = self._read_body()
        if self.command == "POST" and parts.path.endswith("git-upload-pack"):
            state = self.server_state
            if not state._gate.is_set():
                state.upload_waiting.set()
                state._gate.wait()
        self._run_backend(parts.path, parts.query, body)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _run_backend(self, path: str, query: str, body: bytes) -> None:
        env = {
            "PATH": "/usr/bin:/bin",
            "GIT_PROJECT_ROOT": str(self.server_state.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": self.client_address[0],
            "REMOTE_USER": self.server_state.auth[0] if self.server_state.auth else "",
            "SERVER_PROTOCOL": "HTTP/1.0",
        }
        for header, variable in _CGI_HEADERS.items():
            if header in self.headers:
                env[variable] = self.headers[header]
        proc = subprocess.Popen([_BACKEND], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
        assert proc.stdin is not None and proc.stdout is not None
        feeder = threading.Thread(target=_feed, args=(proc.stdin, body), daemon=True)
        feeder.start()
        status, headers = _cgi_headers(proc.stdout)
        sent = 0
        try:
            self.send_response(status)
            for key, value in headers:
                self.send_header(key, value)
            self.end_headers()
            while chunk := proc.stdout.read(65536):
                self.wfile.write(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away (an interrupted clone): nothing to answer
        finally:
            self._record(status, sent)
            proc.stdout.close()
            proc.kill()
            proc.wait()
            feeder.join()


def _feed(stdin: object, body: bytes) -> None:
    try:
        stdin.write(body)  # type: ignore[attr-defined]
        stdin.close()  # type: ignore[attr-defined]
    except BrokenPipeError:
        pass


def _cgi_headers(stdout: object) -> tuple[int, list[tuple[str, str]]]:
    status, headers = 200, []
    while True:
        line = stdout.readline().decode("latin-1").rstrip("\r\n")  # type: ignore[attr-defined]
        if not line:
            return status, headers
        key, _, value = line.partition(":")
        if key.lower() == "status":
            status = int(value.strip().split()[0])
        else:
            headers.append((key.strip(), value.strip()))
