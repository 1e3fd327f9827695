"""mux's CA and the two CA bundles.

The CA is created with ``cryptography`` in mitmproxy's file format (key and
certificate in ``mitmproxy-ca.pem``) so that creating or regenerating it does not
import mitmproxy. Bundles:

* the session bundle (public roots + mux's CA + the upstream CA), mounted
  read-only into containers so TLS works both through and around the proxy;
* the upstream roots (public roots + the upstream CA), which the proxy verifies
  servers against: mitmproxy's ``ssl_verify_upstream_trusted_ca`` replaces the
  default roots instead of adding to them, so the public roots must be included.
"""

from __future__ import annotations

import datetime
from pathlib import Path

from mux.errors import ProxyError
from mux.ownfiles import write_private
from mux.proxy.files import ProxyFiles, write_public
from mux.proxy.settings import UPSTREAM_CA_ENV

CA_NAME = "mux credential proxy CA"


def ensure_ca(files: ProxyFiles) -> bool:
    """Create the CA unless it exists; True when a new one was made."""
    files.ensure()
    if files.ca_key.exists() and files.ca_cert.exists():
        return False
    generate_ca(files)
    return True


def generate_ca(files: ProxyFiles) -> None:
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID
    except ImportError:  # pragma: no cover - comes with the proxy extra
        raise ProxyError(
            "the credential proxy needs mitmproxy (and cryptography), which are not installed",
            hint="pip install 'mux[proxy]'",
        ) from None
    files.ensure()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mux"),
    ])
    now = datetime.datetime.now(datetime.timezone.utc)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        # Back-dated a little: a container's clock may lag the host's.
        .not_valid_before(now - datetime.timedelta(days=2))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    write_private(files.ca_key, key_pem + cert_pem)
    write_public(files.ca_cert, cert_pem.decode())


def public_roots() -> str:
    try:
        import certifi
    except ImportError:  # pragma: no cover - comes with mitmproxy
        raise ProxyError("certifi is not installed", hint="pip install 'mux[proxy]'") from None
    return Path(certifi.where()).read_text()


def read_upstream_ca(path: Path) -> str:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ProxyError(
            f"cannot read the upstream CA {path}: {exc.strerror}",
            hint=f"fix [proxy] upstream_ca or ${UPSTREAM_CA_ENV}",
        ) from None
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise ProxyError(f"the upstream CA {path} holds no PEM certificate")
    return text


def write_bundles(files: ProxyFiles, upstream_cas: list[Path]) -> None:
    """(Re)build both bundles from the current CA, certifi and the upstream CAs."""
    roots = public_roots().rstrip("\n") + "\n"
    extra = "".join(f"# upstream CA ({p})\n{read_upstream_ca(p).strip()}\n" for p in upstream_cas)
    mux_ca = f"# {CA_NAME}\n{files.ca_cert.read_text().strip()}\n"
    write_public(files.upstream_roots, roots + extra)
    write_public(files.bundle, roots + extra + mux_ca)
