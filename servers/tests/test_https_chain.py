"""Automatic HTTPS for custom domains, end to end on this machine: the Caddyfile our
cloud-init writes, run by a real Caddy, gets certificates from Pebble (a test ACME CA)
for the names the ask endpoint allows, and none for the others (servers/tests/acme.py).

The ask endpoint here is a stand-in (200 for shop.test only); the chain takes any ask
URL, so the panel's own endpoint can take its place.
"""

from __future__ import annotations

import os
import ssl
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from servers.tests import acme

ALLOWED = "shop.test"
REFUSED = "other.test"
APP_BODY = b"hello from the customer's app\n"


class Served:
    """An HTTP server on a free port in a thread, recording the requests' paths."""

    def __init__(self, respond):
        self.requests: list[str] = []
        served = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                served.requests.append(self.path)
                status, body = respond(self)
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def ask(handler) -> tuple[int, bytes]:
    """The stand-in for the panel's /servers/tls/ask/<token>/: 200 for shop.test only."""
    domain = parse_qs(urlparse(handler.path).query).get("domain", [""])[0]
    return (200, b"ok") if domain == ALLOWED else (404, b"unknown domain")


def app(handler) -> tuple[int, bytes]:
    """The customer's app behind Caddy: says which host it was asked for."""
    return 200, APP_BODY + f"host={handler.headers['Host']}\n".encode()


@pytest.fixture(scope="session")
def acme_servers():
    """The ask endpoint and the app, for the whole session."""
    ask_server, app_server = Served(ask), Served(app)
    yield ask_server, app_server
    ask_server.stop()
    app_server.stop()


@pytest.fixture(scope="session")
def acme_chain(acme_servers):
    """Pebble + DNS + Caddy with our Caddyfile, once per session. Skipped where the
    binaries are missing, except in CI, where that fails."""
    reason = acme.missing()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"The HTTPS chain tests cannot run in CI: {reason}")
        pytest.skip(reason)
    ask_server, app_server = acme_servers
    chain = acme.ACMEChain.start(
        ask_url=f"http://127.0.0.1:{ask_server.port}/servers/tls/ask/t0ken/",
        upstream=f"127.0.0.1:{app_server.port}",
    )
    try:
        yield chain
    finally:
        chain.stop()


def test_runs_the_caddyfile_cloud_init_writes(acme_chain):
    assert "on_demand_tls {" in acme_chain.caddyfile
    assert f"ask {acme_chain.ask_url}" in acme_chain.caddyfile
    assert f"https_port {acme_chain.https_port}" in acme_chain.caddyfile


def test_an_allowed_name_gets_a_certificate_from_the_ca(acme_chain, acme_servers):
    ask_server, _ = acme_servers
    started = time.monotonic()
    try:
        cert = acme_chain.certificate(ALLOWED)
    except (ssl.SSLError, OSError) as exc:
        pytest.fail(f"no certificate for {ALLOWED}: {exc!r}\n{acme_chain.logs()}")
    elapsed = time.monotonic() - started
    print(f"\ntime to first certificate for {ALLOWED}: {elapsed:.2f} s")

    # Verified against Pebble's issuing root (the handshake would have failed otherwise).
    assert ("DNS", ALLOWED) in cert["subjectAltName"]
    issuer = dict(item for rdn in cert["issuer"] for item in rdn)
    assert "Pebble Intermediate CA" in issuer["commonName"]
    not_after = datetime.fromtimestamp(ssl.cert_time_to_seconds(cert["notAfter"]), tz=UTC)
    assert not_after > datetime.now(UTC)
    # Caddy asked the panel first, for this name, at the server's ask URL.
    assert f"/servers/tls/ask/t0ken/?domain={ALLOWED}" in ask_server.requests
    assert elapsed < 10


def test_the_app_answers_over_https(acme_chain):
    status, body = acme_chain.get(ALLOWED, "/")

    assert status == 200
    assert body.startswith(APP_BODY)
    assert f"host={ALLOWED}".encode() in body


def test_a_refused_name_gets_no_certificate(acme_chain, acme_servers):
    ask_server, _ = acme_servers

    with pytest.raises((ssl.SSLError, ConnectionError)):
        acme_chain.certificate(REFUSED, timeout=10)

    assert f"/servers/tls/ask/t0ken/?domain={REFUSED}" in ask_server.requests


def test_plain_http_still_reaches_the_app(acme_chain):
    # A server without domains: its IP over plain HTTP, no redirect to HTTPS.
    status, body = acme_chain.get_http("127.0.0.1")

    assert status == 200
    assert body.startswith(APP_BODY)


@pytest.mark.django_db(transaction=True)
def test_the_panels_ask_endpoint_gets_a_verified_domain_https_and_the_job_sees_it(
    acme_chain, acme_servers, live_server, settings, tmp_path
):
    """The whole chain with the panel itself: Caddy asks the live server's
    /servers/tls/ask/<token>/, gets a certificate from Pebble for the verified domain only,
    and the HTTPS job marks that domain active with the certificate's expiry."""
    from servers import domains
    from servers.checks.tls import certificate_check
    from servers.credentials import generate_tls_token, tls_token_hash
    from servers.models import Domain
    from servers.tests.factories import DomainFactory, ServerFactory

    token = generate_tls_token()
    server = ServerFactory(ip_address="127.0.0.1", tls_token_hash=tls_token_hash(token))
    verified = DomainFactory(server=server, name="panel.test", verification_status="verified")
    DomainFactory(server=server, name="unverified.test", verification_status="pending")
    _, app_server = acme_servers
    chain = acme.ACMEChain.start(
        ask_url=f"{live_server.url}/servers/tls/ask/{token}/",
        upstream=f"127.0.0.1:{app_server.port}",
    )
    try:
        settings.DIGITALOCEAN_TOKEN = "dop_v1_test"  # the real checks, not the simulator
        settings.TLS_CHECK_PORT = chain.https_port
        root = tmp_path / "pebble-root.pem"
        root.write_text(chain.root_pem())
        settings.TLS_EXTRA_CA_FILE = str(root)

        started = time.monotonic()
        for _ in range(domains.HTTPS_ATTEMPTS):
            # The check's own handshake is what makes Caddy ask and get the certificate.
            if domains.domain_https_step(domain_id=verified.pk) is None:
                break
        verified.refresh_from_db()
        assert verified.ssl_status == "active", (verified.ssl_error, chain.logs())
        issued = chain.certificate("panel.test")
        expected = datetime.fromtimestamp(ssl.cert_time_to_seconds(issued["notAfter"]), tz=UTC)
        assert verified.ssl_expires_at == expected
        print(f"\nverified domain active over HTTPS after {time.monotonic() - started:.2f} s")

        refused = certificate_check("unverified.test", "127.0.0.1", port=chain.https_port)
        assert not refused.ok and refused.not_after is None
        assert Domain.objects.get(name="unverified.test").ssl_status == "pending"
    finally:
        chain.stop()
