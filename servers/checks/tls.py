"""Does a customer's domain serve a valid HTTPS certificate from our server?

We connect to the server's IP ourselves (not to whatever the domain resolves to: DNS is
dns.py's business) and send the domain as SNI, as a browser would once DNS points at us.
The certificate is verified against the system's trust roots plus
`settings.TLS_EXTRA_CA_FILE` (tests point that at their own CA), and every way this can go
wrong becomes one sentence for the customer in `CertResult.reason`; network errors never
raise.

When verification fails, the details a customer needs (which names the certificate covers,
when it expired) are not available from the verified connection, so we take a second look
without verification and read the certificate with `cryptography`.
"""

from __future__ import annotations

import errno
import socket
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from django.conf import settings

# OpenSSL's X509_V_ERR_* codes, as `SSLCertVerificationError.verify_code`.
_CERT_NOT_YET_VALID = 9
_CERT_HAS_EXPIRED = 10
_DEPTH_ZERO_SELF_SIGNED_CERT = 18
_SELF_SIGNED_CERT_IN_CHAIN = 19
_UNABLE_TO_GET_ISSUER_CERT_LOCALLY = 20
_UNABLE_TO_VERIFY_LEAF_SIGNATURE = 21
_UNABLE_TO_GET_ISSUER_CERT = 2
_HOSTNAME_MISMATCH = 62
_UNTRUSTED_ISSUER_CODES = {
    _UNABLE_TO_GET_ISSUER_CERT,
    _SELF_SIGNED_CERT_IN_CHAIN,
    _UNABLE_TO_GET_ISSUER_CERT_LOCALLY,
    _UNABLE_TO_VERIFY_LEAF_SIGNATURE,
}

# OpenSSL reasons meaning the other end does not speak TLS at all (e.g. plain HTTP).
_NOT_TLS_REASONS = {"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG"}


@dataclass(frozen=True)
class CertResult:
    ok: bool
    reason: str  # "" when ok; else one sentence for the customer
    not_after: datetime | None  # aware UTC expiry when a certificate was presented and verified


def certificate_check(name: str, ip: str, *, port: int = 443) -> CertResult:
    """Connect to `ip`:`port` asking for `name` and verify the certificate it presents."""
    name = name.strip().rstrip(".").lower()
    timeout = float(getattr(settings, "TLS_CHECK_TIMEOUT", 5.0))
    context = _verifying_context()
    where = f"{ip} port {port}"

    try:
        with socket.create_connection((ip, port), timeout=timeout) as sock:
            try:
                with context.wrap_socket(sock, server_hostname=name) as tls:
                    peer = tls.getpeercert()
            except ssl.SSLCertVerificationError as error:
                return _fail(_verification_reason(error, name, ip, port, timeout))
            except ssl.SSLError as error:
                return _fail(_handshake_reason(error, name, where))
            except (ConnectionResetError, BrokenPipeError):
                return _fail(_not_issued(name, where))
    except TimeoutError:
        return _fail(f"Our server at {where} did not answer within {timeout:g} seconds.")
    except ConnectionRefusedError:
        return _fail(f"Our server at {where} refused the connection; nothing is serving HTTPS.")
    except UnicodeError:
        return _fail(f"{name!r} is not a valid domain name.")
    except OSError as error:
        if error.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN):
            return _fail(f"Our server at {ip} could not be reached over the network.")
        return _fail(f"We could not connect to our server at {where}: {_describe(error)}.")

    not_after_text = (peer or {}).get("notAfter")
    if not not_after_text:
        return _fail(_not_issued(name, where))
    not_after = datetime.fromtimestamp(ssl.cert_time_to_seconds(not_after_text), tz=UTC)
    return CertResult(ok=True, reason="", not_after=not_after)


def _verifying_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    extra = getattr(settings, "TLS_EXTRA_CA_FILE", "")
    if extra:
        context.load_verify_locations(cafile=str(extra))
    return context


def _fail(reason: str) -> CertResult:
    return CertResult(ok=False, reason=reason, not_after=None)


def _not_issued(name: str, where: str) -> str:
    return (
        f"The certificate for {name} has not been issued yet: our server at {where} "
        "does not present one for it."
    )


def _handshake_reason(error: ssl.SSLError, name: str, where: str) -> str:
    reason = (error.reason or "").upper()
    if reason in _NOT_TLS_REASONS:
        return f"Our server at {where} did not answer with HTTPS (TLS)."
    if "PROTOCOL_VERSION" in reason:
        return f"Our server at {where} offers no TLS version we accept for {name}."
    if "ALERT" in reason or "UNRECOGNIZED_NAME" in reason or isinstance(error, ssl.SSLEOFError):
        # Caddy's on-demand TLS answers a name it holds no certificate for with an alert;
        # a server that just hangs up mid-handshake has presented nothing either.
        return _not_issued(name, where)
    return f"The secure connection to our server at {where} failed: {_describe(error)}."


def _verification_reason(
    error: ssl.SSLCertVerificationError, name: str, ip: str, port: int, timeout: float
) -> str:
    code = error.verify_code
    if code == _HOSTNAME_MISMATCH:
        cert = _unverified_certificate(name, ip, port, timeout)
        names = _names(cert) if cert is not None else []
        if names:
            return f"The certificate presented for {name} is for {', '.join(names)} instead."
        return f"The certificate presented for {name} is for a different name."
    if code == _DEPTH_ZERO_SELF_SIGNED_CERT:
        return f"The certificate presented for {name} is self-signed, so browsers reject it."
    if code == _CERT_HAS_EXPIRED:
        cert = _unverified_certificate(name, ip, port, timeout)
        if cert is not None:
            return f"The certificate for {name} expired on {_when(cert.not_valid_after_utc)}."
        return f"The certificate for {name} has expired."
    if code == _CERT_NOT_YET_VALID:
        cert = _unverified_certificate(name, ip, port, timeout)
        if cert is not None:
            return (
                f"The certificate for {name} is not valid until {_when(cert.not_valid_before_utc)}."
            )
        return f"The certificate for {name} is not valid yet."
    if code in _UNTRUSTED_ISSUER_CODES:
        return f"The certificate for {name} was issued by an authority that browsers do not trust."
    message = error.verify_message or _describe(error)
    return f"The certificate for {name} failed verification: {message}."


def _unverified_certificate(
    name: str, ip: str, port: int, timeout: float
) -> x509.Certificate | None:
    """The leaf certificate the server presents for `name`, without verifying anything;
    None when the second look fails for any reason."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((ip, port), timeout=timeout) as sock,
            context.wrap_socket(sock, server_hostname=name) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
        return x509.load_der_x509_certificate(der) if der else None
    except (OSError, ValueError):
        return None


def _names(cert: x509.Certificate) -> list[str]:
    """The DNS names (and IPs) a certificate covers: its SANs, else its common name."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):
        san = None
    if san is not None:
        names = san.get_values_for_type(x509.DNSName)
        names += [str(address) for address in san.get_values_for_type(x509.IPAddress)]
        if names:
            return names
    common = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return [str(attribute.value) for attribute in common]


def _when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def _describe(error: OSError) -> str:
    text = getattr(error, "strerror", None) or getattr(error, "reason", None) or str(error)
    return str(text).rstrip(".")
