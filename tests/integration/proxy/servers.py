"""Test-only TLS servers for the proxy tests: a test CA, an HTTPS echo upstream, a git server.

Everything binds a loopback or Docker-bridge-gateway address given by the test;
nothing here talks to any other address.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.integration import git_http


@dataclass(frozen=True)
class Pki:
    ca: Path  # the test CA certificate (PEM): what the proxy gets as MUX_PROXY_UPSTREAM_CA
    cert: Path  # server certificate for the given addresses, signed by the CA
    key: Path
    ca_name: str


def make_pki(directory: Path, addresses: list[str], ca_name: str = "mux test upstream CA") -> Pki:
    """A test CA and a server certificate for ``addresses`` (IP addresses or names)."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ca_name)])
    ca = (
        x509.CertificateBuilder().subject_name(ca_subject).issuer_name(ca_subject)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, addresses[0])]))
        .issuer_name(ca_subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([_san(a) for a in addresses]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    pki = Pki(directory / "ca.pem", directory / "server.pem", directory / "server.key", ca_name)
    pki.ca.write_bytes(ca.public_bytes(pem))
    pki.cert.write_bytes(cert.public_bytes(pem))
    pki.key.write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    for path in (pki.ca, pki.cert, pki.key):
        path.chmod(0o644)  # the container reads the CA through a mount; nothing here is real
    return pki


def _san(address: str) -> x509.GeneralName:
    """An IP address entry for an address, a DNS name entry for a (``*.test``) name."""
    try:
        return x509.IPAddress(ipaddress.ip_address(address))
    except ValueError:
        return x509.DNSName(address)


class TLSHTTPServer(ThreadingHTTPServer):
    """Threaded HTTP server that does the TLS handshake in the request's thread, with a timeout."""

    daemon_threads = True
    ssl_context: ssl.SSLContext

    def finish_request(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        request.settimeout(30)
        try:
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return  # e.g. the proxy refused our certificate: that is for the test to see
        self.RequestHandlerClass(tls, client_address, self)
        try:  # close_notify on the TLS socket (shutdown_request only sees the plain one)
            tls.unwrap()
        except (ssl.SSLError, OSError):
            pass

    def shutdown_request(self, request: socket.socket) -> None:  # type: ignore[override]
        # Send TLS close_notify: HTTP/1.0 bodies end at connection close, and a
        # close without it reads as a truncated response to the client.
        if isinstance(request, ssl.SSLSocket):
            try:
                request.unwrap()
            except (ssl.SSLError, OSError):
                pass
        super().shutdown_request(request)


def tls_server(host: str, handler: type[BaseHTTPRequestHandler], pki: Pki) -> TLSHTTPServer:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki.cert, pki.key)
    httpd = TLSHTTPServer((host, 0), handler)
    httpd.ssl_context = ctx
    return httpd


class EchoUpstream:
    """HTTPS server answering 200 ``upstream ok``; records (method, path, headers) of each request,
    and in ``raw_headers`` every header line as sent (a dict would hide a second ``Authorization``)."""

    def __init__(self, host: str, pki: Pki) -> None:
        self.host, self.pki = host, pki
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.raw_headers: list[list[tuple[str, str]]] = []
        self._httpd: TLSHTTPServer | None = None

    @property
    def port(self) -> int:
        assert self._httpd is not None
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    def __enter__(self) -> EchoUpstream:
        state = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                state.raw_headers.append(list(self.headers.items()))
                state.requests.append((self.command, self.path, dict(self.headers.items())))
                body = b"upstream ok\n"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._httpd = tls_server(self.host, Handler, self.pki)
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()


class TLSGitServer(git_http.GitHTTPServer):
    """The smart-HTTP git server of ``tests/integration/git_http.py``, over HTTPS on ``host``."""

    def __init__(self, root: Path, host: str, pki: Pki, *, auth: tuple[str, str]) -> None:
        super().__init__(root, auth=auth)
        self.host, self.pki = host, pki

    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        return f"https://{self.host}:{self._httpd.server_address[1]}"

    def start(self) -> TLSGitServer:
        handler = type("Handler", (git_http._Handler,), {"server_state": self})
        self._httpd = tls_server(self.host, handler, self.pki)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self
