"""Every write to a customer's domain: attached (validated, one server per name, at most
DOMAINS_PER_SERVER per server), checked in DNS, then over HTTPS, watched until its
certificate nears expiry, and removed. Checks run in jobs under a per-domain lock; each
records what it saw, so the page always says why a domain is not ready yet.

Simulated servers (no DIGITALOCEAN_TOKEN) resolve names under .test to themselves and
get a simulated certificate: the same flow, without the internet.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from hosting.jobs import defer
from servers.checks.dns import DnsResult, dns_check, simulated_dns_check
from servers.checks.tls import CertResult, certificate_check
from servers.domain_names import DomainNameRefused, domain_name_normalize
from servers.models import ENDED_SERVER_STATUSES, Domain, Server, ServerEventKind
from servers.providers import get_provider
from servers.services import server_event_record

ONE_SERVER_PER_NAME = "servers_domain_name_ci_unique"
# Seconds between DNS checks of a domain not verified yet: 1, 2, 4 ... minutes, then hourly.
DNS_BACKOFF_FIRST = 60
DNS_BACKOFF_MAX = 3600
# HTTPS checks while the certificate is being issued, before the domain is marked failed.
HTTPS_ATTEMPTS = 6
HTTPS_BACKOFF_FIRST = 10
# A certificate this close to expiry was not renewed (Caddy renews 30 days ahead).
EXPIRY_WARNING = timedelta(days=14)
# How often an active certificate is looked at again.
HTTPS_RECHECK = timedelta(hours=12)
# A simulated server's certificate, issued a few seconds after verification.
SIMULATED_HTTPS_DELAY = 3
SIMULATED_CERTIFICATE_DAYS = 90


class DomainRefused(Exception):
    """The domain cannot be attached (or changed) now; the message says why."""


def domain_lock(domain_id: int) -> str:
    """The lock every check of one domain holds: two never overlap."""
    return f"domain:{domain_id}"


def _simulated() -> bool:
    return get_provider().simulated


def domain_add(*, server_id: int, name: str) -> Domain:
    """Attach `name` (any form a customer types) to the server; its DNS check is queued.
    Raises DomainRefused with the reason (bad name, limit, already attached)."""
    from servers.tasks import domain_verify

    try:
        name = domain_name_normalize(name)
    except DomainNameRefused as refusal:
        raise DomainRefused(str(refusal)) from None
    with transaction.atomic():
        server = Server.objects.select_for_update().get(pk=server_id)
        if server.status in ENDED_SERVER_STATUSES:
            raise DomainRefused("This server no longer exists.")
        if Domain.objects.filter(server=server).count() >= settings.DOMAINS_PER_SERVER:
            raise DomainRefused(
                f"A server can carry at most {settings.DOMAINS_PER_SERVER} domains: "
                "remove one first."
            )
        try:
            with transaction.atomic():
                domain = Domain.objects.create(server=server, user_id=server.user_id, name=name)
        except IntegrityError as exc:
            if ONE_SERVER_PER_NAME in str(exc):
                # Whose it is is not ours to tell.
                raise DomainRefused(
                    f"{name} is already attached to a server. If it is yours, remove it "
                    "there first; if not, contact support."
                ) from None
            raise
        server_event_record(server=server, kind=ServerEventKind.DOMAIN_ADDED, message=name)
        defer(domain_verify, lock=domain_lock(domain.pk), domain_id=domain.pk)
    return domain


def domain_remove(*, domain_id: int) -> None:
    """Detach the domain: the server's Caddy is refused a certificate for it from now on
    (the ask endpoint no longer finds it)."""
    with transaction.atomic():
        domain = Domain.objects.select_for_update().filter(pk=domain_id).first()
        if domain is None:
            return
        server_event_record(
            server=Server(pk=domain.server_id),
            kind=ServerEventKind.DOMAIN_REMOVED,
            message=domain.name,
        )
        domain.delete()


def domain_check_now(*, domain_id: int) -> None:
    """Check again at once: DNS when not verified yet, else HTTPS."""
    from servers.tasks import domain_https_check, domain_verify

    with transaction.atomic():
        domain = Domain.objects.select_for_update().get(pk=domain_id)
        domain.check_attempts = 0
        # Pending again, so the page follows the check until it has an answer.
        if domain.verification_status == Domain.VerificationStatus.VERIFIED:
            task = domain_https_check
            if domain.ssl_status == Domain.SSLStatus.FAILED:
                domain.ssl_status = Domain.SSLStatus.PENDING
        else:
            task = domain_verify
            domain.verification_status = Domain.VerificationStatus.PENDING
        domain.save(update_fields=["check_attempts", "verification_status", "ssl_status"])
        defer(task, lock=domain_lock(domain.pk), domain_id=domain.pk)


# -- the DNS check --------------------------------------------------------------------------


def dns_backoff(attempts: int) -> float:
    return min(DNS_BACKOFF_FIRST * 2 ** max(attempts - 1, 0), DNS_BACKOFF_MAX)


def domain_verify_step(*, domain_id: int) -> None:
    """Resolve the name and record the outcome: verified (then the HTTPS check follows),
    or failed with what was seen (the watch checks again later, less and less often)."""
    from servers.tasks import domain_https_check, domain_notify

    domain = Domain.objects.select_related("server").filter(pk=domain_id).first()
    if domain is None or domain.verification_status == Domain.VerificationStatus.VERIFIED:
        return
    server = domain.server
    if not server.ip_address:
        result = DnsResult(
            ok=False, reason="The server has no address yet; we check again soon.", addresses=()
        )
    else:
        check = simulated_dns_check if _simulated() else dns_check
        result = check(domain.name, ipv4=server.ip_address)
    with transaction.atomic():
        domain = Domain.objects.select_for_update().filter(pk=domain_id).first()
        if domain is None or domain.verification_status == Domain.VerificationStatus.VERIFIED:
            return
        domain.checked_at = timezone.now()
        if not result.ok:
            domain.verification_status = Domain.VerificationStatus.FAILED
            domain.verification_reason = result.reason
            domain.check_attempts += 1
            domain.save(
                update_fields=[
                    "verification_status",
                    "verification_reason",
                    "check_attempts",
                    "checked_at",
                ]
            )
            return
        domain.verification_status = Domain.VerificationStatus.VERIFIED
        domain.verification_reason = ""
        domain.verified_at = domain.checked_at
        domain.check_attempts = 0
        domain.ssl_status = Domain.SSLStatus.PENDING
        domain.ssl_error = ""
        domain.save()
        server_event_record(
            server=server,
            kind=ServerEventKind.DOMAIN_VERIFIED,
            message=f"{domain.name} points at {server.ip_address}.",
        )
        defer(domain_notify, domain_id=domain.pk, kind="verified")
        # The first HTTPS handshake is what makes Caddy get the certificate.
        delay = SIMULATED_HTTPS_DELAY if _simulated() else HTTPS_BACKOFF_FIRST
        defer(
            domain_https_check,
            lock=domain_lock(domain.pk),
            schedule_in={"seconds": delay},
            domain_id=domain.pk,
        )


def domains_due_for_dns(now: datetime) -> list[int]:
    """Domains not verified yet whose backoff has passed."""
    due = []
    waiting = Domain.objects.exclude(verification_status=Domain.VerificationStatus.VERIFIED)
    for pk, checked_at, attempts in waiting.values_list("pk", "checked_at", "check_attempts"):
        if checked_at is None or now - checked_at >= timedelta(seconds=dns_backoff(attempts)):
            due.append(pk)
    return due


# -- the HTTPS check ------------------------------------------------------------------------


def _simulated_certificate() -> CertResult:
    expires = timezone.now() + timedelta(days=SIMULATED_CERTIFICATE_DAYS)
    return CertResult(ok=True, reason="", not_after=expires)


def domain_https_step(*, domain_id: int) -> float | None:
    """Connect over HTTPS with the domain's name and record the certificate: active with
    its expiry, pending with the reason while it is being issued (returns when to look
    again), or failed after HTTPS_ATTEMPTS. A certificate near expiry is mailed once."""
    from servers.tasks import domain_notify

    domain = Domain.objects.select_related("server").filter(pk=domain_id).first()
    if domain is None or domain.verification_status != Domain.VerificationStatus.VERIFIED:
        return None
    server = domain.server
    if _simulated():
        result = _simulated_certificate()
    else:
        result = certificate_check(domain.name, server.ip_address, port=settings.TLS_CHECK_PORT)
    wait = None
    with transaction.atomic():
        domain = Domain.objects.select_for_update().filter(pk=domain_id).first()
        if domain is None or domain.verification_status != Domain.VerificationStatus.VERIFIED:
            return None
        was = domain.ssl_status
        domain.ssl_checked_at = timezone.now()
        if result.ok:
            domain.ssl_status = Domain.SSLStatus.ACTIVE
            domain.ssl_error = ""
            domain.ssl_expires_at = result.not_after
            domain.check_attempts = 0
            if was != Domain.SSLStatus.ACTIVE:
                server_event_record(
                    server=server,
                    kind=ServerEventKind.HTTPS_ACTIVE,
                    message=f"https://{domain.name}/ (certificate valid until "
                    f"{result.not_after:%Y-%m-%d}).",
                )
                defer(domain_notify, domain_id=domain.pk, kind="https_active")
            if (
                result.not_after
                and result.not_after - domain.ssl_checked_at < EXPIRY_WARNING
                and domain.expiry_warned_for != result.not_after
            ):
                domain.expiry_warned_for = result.not_after
                defer(domain_notify, domain_id=domain.pk, kind="expiring")
        else:
            domain.ssl_error = result.reason
            domain.check_attempts += 1
            if was == Domain.SSLStatus.PENDING and domain.check_attempts < HTTPS_ATTEMPTS:
                wait = HTTPS_BACKOFF_FIRST * 2 ** (domain.check_attempts - 1)
            elif was != Domain.SSLStatus.FAILED:
                domain.ssl_status = Domain.SSLStatus.FAILED
                server_event_record(
                    server=server,
                    kind=ServerEventKind.HTTPS_FAILED,
                    message=f"{domain.name}: {result.reason}",
                )
                defer(domain_notify, domain_id=domain.pk, kind="https_failed")
        domain.save()
    return wait


def domains_due_for_https(now: datetime) -> list[int]:
    """Verified domains whose certificate was last looked at HTTPS_RECHECK ago."""
    return list(
        Domain.objects.filter(
            verification_status=Domain.VerificationStatus.VERIFIED,
            ssl_status__in=[Domain.SSLStatus.ACTIVE, Domain.SSLStatus.FAILED],
            ssl_checked_at__lt=now - HTTPS_RECHECK,
        ).values_list("pk", flat=True)
    )
