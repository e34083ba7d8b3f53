"""A self-signed certificate for 127.0.0.1, for tests of TLS and STARTTLS over loopback.

Clients trust it through ``SSL_CERT_FILE``, which OpenSSL reads whenever a default
context loads its trust store: the code under test keeps its ordinary verification.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path


def self_signed(directory: Path) -> tuple[Path, Path]:
    """(certificate, key) for ``127.0.0.1`` and ``localhost``, valid for two days."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    openssl = shutil.which("openssl") or "/usr/bin/openssl"
    subprocess.run(  # noqa: S603 - a fixed command line, no shell
        [
            openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    key.chmod(0o644)  # dovecot's config reader must see it; a test key guards nothing
    return cert, key


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context
