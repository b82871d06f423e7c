"""Local servers on 127.0.0.1 for the certificate check's tests: a thread that accepts
connections on a free port and hands each to a handler (a TLS server, or one that
misbehaves), a listener that never answers, and a port nothing listens on."""

from __future__ import annotations

import contextlib
import datetime
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

Handler = Callable[[socket.socket], None]
HANDLER_TIMEOUT = 2.0


@contextlib.contextmanager
def serving(handler: Handler) -> Iterator[int]:
    """Accept connections on 127.0.0.1 and a free port, handing each (in turn) to
    `handler`; yields the port."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(HANDLER_TIMEOUT)
                with contextlib.suppress(OSError):
                    handler(conn)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def tls_handler(context: ssl.SSLContext) -> Handler:
    """Complete a TLS handshake with `context`, then wait for the client to hang up."""

    def handle(conn: socket.socket) -> None:
        with context.wrap_socket(conn, server_side=True) as tls:
            with contextlib.suppress(OSError):
                tls.recv(1)

    return handle


def server_context(cert_file: str | Path, key_file: str | Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert_file), str(key_file))
    return context


def refuse_every_name(context: ssl.SSLContext) -> ssl.SSLContext:
    """Make a server context answer every ClientHello with an internal_error alert, as
    Caddy's on-demand TLS does for a name it holds no certificate for."""
    context.sni_callback = lambda *_: ssl.ALERT_DESCRIPTION_INTERNAL_ERROR
    return context


def hang_up(conn: socket.socket) -> None:
    """Read the ClientHello and close without a word."""
    conn.recv(4096)


def plain_http(conn: socket.socket) -> None:
    """Answer like a plain HTTP server on the HTTPS port."""
    conn.recv(4096)
    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")


@contextlib.contextmanager
def silent_listener() -> Iterator[int]:
    """A port whose connections the kernel accepts but nobody ever answers."""
    with socket.create_server(("127.0.0.1", 0), backlog=8) as listener:
        yield listener.getsockname()[1]


def closed_port() -> int:
    """A port that nothing listens on (it was free a moment ago)."""
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return probe.getsockname()[1]


def self_signed_files(name: str, directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for `name` (and its key) written to `directory`."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file = directory / "self-signed.pem"
    key_file = directory / "self-signed.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file
