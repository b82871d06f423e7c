"""The certificate check against real TLS servers on 127.0.0.1, with certificates from a
trustme CA that `TLS_EXTRA_CA_FILE` makes trusted."""

from __future__ import annotations

import errno
import socket
import ssl
from datetime import UTC, datetime, timedelta

import pytest
import trustme

from servers.checks import tls
from servers.checks.tls import CertResult, certificate_check
from servers.tests import tls_server

NAME = "shop.test"
LOCALHOST = "127.0.0.1"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(autouse=True)
def _trust_test_ca(ca, settings, tmp_path):
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    settings.TLS_EXTRA_CA_FILE = str(ca_file)
    settings.TLS_CHECK_TIMEOUT = 2.0


def leaf_context(leaf: trustme.LeafCert) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    leaf.configure_cert(context)
    return context


def check_against(context: ssl.SSLContext, name: str = NAME) -> CertResult:
    with tls_server.serving(tls_server.tls_handler(context)) as port:
        return certificate_check(name, LOCALHOST, port=port)


def test_valid_certificate_is_ok_with_its_exact_expiry(ca):
    not_after = datetime(2031, 5, 17, 8, 30, 15, tzinfo=UTC)
    leaf = ca.issue_cert(NAME, not_after=not_after)

    assert check_against(leaf_context(leaf)) == CertResult(ok=True, reason="", not_after=not_after)


def test_name_is_matched_case_and_trailing_dot_insensitively(ca):
    leaf = ca.issue_cert(NAME)

    result = check_against(leaf_context(leaf), name="Shop.Test.")

    assert result.ok, result.reason


def test_without_the_extra_ca_the_test_ca_is_untrusted(ca, settings):
    settings.TLS_EXTRA_CA_FILE = ""
    leaf = ca.issue_cert(NAME)

    result = check_against(leaf_context(leaf))

    assert result == CertResult(
        ok=False,
        reason=f"The certificate for {NAME} was issued by an authority that browsers do not trust.",
        not_after=None,
    )


def test_expired_certificate_says_when_it_expired(ca):
    leaf = ca.issue_cert(
        NAME,
        not_before=datetime(2023, 1, 1, tzinfo=UTC),
        not_after=datetime(2024, 3, 1, 12, 0, tzinfo=UTC),
    )

    result = check_against(leaf_context(leaf))

    assert result == CertResult(
        ok=False,
        reason=f"The certificate for {NAME} expired on 2024-03-01 12:00 UTC.",
        not_after=None,
    )


def test_certificate_not_yet_valid_says_from_when(ca):
    starts = (datetime.now(UTC) + timedelta(days=3)).replace(second=0, microsecond=0)
    leaf = ca.issue_cert(NAME, not_before=starts, not_after=starts + timedelta(days=90))

    result = check_against(leaf_context(leaf))

    assert not result.ok
    assert result.reason == (
        f"The certificate for {NAME} is not valid until {starts:%Y-%m-%d %H:%M} UTC."
    )


def test_wrong_name_lists_the_names_the_certificate_covers(ca):
    leaf = ca.issue_cert("other.test", "www.other.test")

    result = check_against(leaf_context(leaf))

    assert result == CertResult(
        ok=False,
        reason=f"The certificate presented for {NAME} is for other.test, www.other.test instead.",
        not_after=None,
    )


def test_self_signed_certificate(tmp_path):
    cert_file, key_file = tls_server.self_signed_files(NAME, tmp_path)

    result = check_against(tls_server.server_context(cert_file, key_file))

    assert result == CertResult(
        ok=False,
        reason=f"The certificate presented for {NAME} is self-signed, so browsers reject it.",
        not_after=None,
    )


def test_certificate_from_an_untrusted_authority():
    leaf = trustme.CA().issue_cert(NAME)

    result = check_against(leaf_context(leaf))

    assert result.reason == (
        f"The certificate for {NAME} was issued by an authority that browsers do not trust."
    )
    assert not result.ok


def test_handshake_alert_means_not_yet_issued(ca):
    context = tls_server.refuse_every_name(leaf_context(ca.issue_cert("other.test")))

    with tls_server.serving(tls_server.tls_handler(context)) as port:
        result = certificate_check(NAME, LOCALHOST, port=port)

    assert result == CertResult(
        ok=False,
        reason=f"The certificate for {NAME} has not been issued yet: our server at "
        f"{LOCALHOST} port {port} does not present one for it.",
        not_after=None,
    )


def test_server_hanging_up_mid_handshake_means_not_yet_issued():
    with tls_server.serving(tls_server.hang_up) as port:
        result = certificate_check(NAME, LOCALHOST, port=port)

    assert result == CertResult(
        ok=False,
        reason=f"The certificate for {NAME} has not been issued yet: our server at "
        f"{LOCALHOST} port {port} does not present one for it.",
        not_after=None,
    )


def test_plain_http_on_the_port():
    with tls_server.serving(tls_server.plain_http) as port:
        result = certificate_check(NAME, LOCALHOST, port=port)

    assert result == CertResult(
        ok=False,
        reason=f"Our server at {LOCALHOST} port {port} did not answer with HTTPS (TLS).",
        not_after=None,
    )


def test_connection_refused():
    port = tls_server.closed_port()

    result = certificate_check(NAME, LOCALHOST, port=port)

    assert result == CertResult(
        ok=False,
        reason=f"Our server at {LOCALHOST} port {port} refused the connection; nothing is "
        "serving HTTPS.",
        not_after=None,
    )


def test_server_that_never_answers_times_out(settings):
    settings.TLS_CHECK_TIMEOUT = 0.5
    with tls_server.silent_listener() as port:
        result = certificate_check(NAME, LOCALHOST, port=port)

    assert result == CertResult(
        ok=False,
        reason=f"Our server at {LOCALHOST} port {port} did not answer within 0.5 seconds.",
        not_after=None,
    )


def test_unreachable_host(monkeypatch):
    def unreachable(*args, **kwargs):
        raise OSError(errno.EHOSTUNREACH, "No route to host")

    monkeypatch.setattr(tls.socket, "create_connection", unreachable)

    result = certificate_check(NAME, "192.0.2.1")

    assert result == CertResult(
        ok=False,
        reason="Our server at 192.0.2.1 could not be reached over the network.",
        not_after=None,
    )


def test_default_port_is_443(monkeypatch):
    addresses = []

    def record(address, *args, **kwargs):
        addresses.append(address)
        raise ConnectionRefusedError

    monkeypatch.setattr(socket, "create_connection", record)

    result = certificate_check(NAME, "192.0.2.1")

    assert addresses == [("192.0.2.1", 443)]
    assert "192.0.2.1 port 443 refused" in result.reason
