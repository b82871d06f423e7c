"""Every write to a server's life: created for a paid payment, built step by step by the
provisioning job, failed, deleted. Rows are locked payment first, then server.

Provider calls are made outside transactions; what they return is recorded atomically.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from hosting.jobs import defer
from servers import cloudinit, credentials
from servers.models import ENDED_SERVER_STATUSES, Server, ServerEvent, ServerEventKind
from servers.providers import DropletSpec, ProviderError, get_provider

ONE_SERVER_PER_USER = "servers_server_one_active_per_user"
LOGIN_USERNAME = "deploy"


def server_lock(server_id: int) -> str:
    """The procrastinate lock every job touching one server holds: two never overlap."""
    return f"server:{server_id}"


def droplet_tag(server: Server) -> str:
    return f"server-{server.uuid}"


def server_event_record(*, server: Server, kind: ServerEventKind, message: str = ""):
    return ServerEvent.objects.create(server=server, kind=kind, message=message)


def server_create_for_payment(*, payment) -> Server | None:
    """A `provisioning` server for a payment just marked paid, with its provision job, in
    the caller's transaction (the payment row is locked by the caller). None when the
    customer already has a live server: the partial unique index says so, not a check
    that a concurrent payment could slip past."""
    from servers.tasks import server_provision

    try:
        with transaction.atomic():
            server = Server.objects.create(
                user=payment.user,
                plan=payment.plan,
                payment=payment,
                name=f"{payment.plan.slug}-{payment.uuid.hex[:8]}",
                region=settings.DIGITALOCEAN_REGION,
                ssh_username=LOGIN_USERNAME,
            )
    except IntegrityError as exc:
        if ONE_SERVER_PER_USER in str(exc):
            return None
        raise
    server_event_record(
        server=server,
        kind=ServerEventKind.PAYMENT_CONFIRMED,
        message=f"Payment of {payment.amount_display} for {payment.plan.name} received.",
    )
    defer(server_provision, lock=server_lock(server.pk), server_id=server.pk)
    return server


def _credentials_ensure(server: Server) -> Server:
    """Generate the login password, the host key and the TLS ask token once, before any
    droplet exists, so every attempt builds the same server with the same secrets."""
    if server.ssh_password and server.ssh_host_private_key and server.tls_token:
        return server
    private_key, public_key = credentials.generate_host_key()
    token = credentials.generate_tls_token()
    with transaction.atomic():
        locked = Server.objects.select_for_update().get(pk=server.pk)
        if not (locked.ssh_password and locked.ssh_host_private_key):
            locked.ssh_password = credentials.generate_password()
            locked.ssh_host_private_key = private_key
            locked.ssh_host_key = public_key
        if not locked.tls_token:
            locked.tls_token = token
            locked.tls_token_hash = credentials.tls_token_hash(token)
        locked.save(
            update_fields=[
                "ssh_password",
                "ssh_host_private_key",
                "ssh_host_key",
                "tls_token",
                "tls_token_hash",
            ]
        )
    return locked


def tls_ask_url(token: str) -> str:
    """The URL the server's Caddy asks before it gets a certificate for a name."""
    return settings.SITE_URL.rstrip("/") + reverse("servers:tls_ask", args=[token])


def _panel_key(provider) -> str:
    """The key the panel logs in with. The simulator builds no real server, so it needs
    none unless one is configured."""
    if provider.simulated and not settings.PANEL_SSH_KEY_FILE:
        return ""
    return credentials.panel_public_key()


def _droplet_spec(server: Server, provider) -> DropletSpec:
    return DropletSpec(
        name=server.name,
        tag=droplet_tag(server),
        size=server.plan.provider_size_slug,
        region=server.region,
        image=settings.DIGITALOCEAN_IMAGE,
        user_data=cloudinit.user_data(
            username=server.ssh_username,
            password_hash=credentials.password_hash(server.ssh_password),
            host_private_key=server.ssh_host_private_key,
            host_public_key=server.ssh_host_key,
            panel_public_key=_panel_key(provider),
            tls_ask_url=tls_ask_url(server.tls_token),
        ),
    )


class ProvisionTimedOut(Exception):
    pass


def provision_timeout_reason() -> str:
    seconds = settings.PROVISION_TIMEOUT
    took = f"{seconds // 60} minutes" if seconds >= 120 else f"{seconds} s"
    return f"The server was not ready after {took}."


def server_provision_step(*, server_id: int) -> float | None:
    """One pass of the provisioning job: create (or adopt) the droplet, then look at it.
    Returns how many seconds to wait before looking again, or None when there is nothing
    left to do. Raises ProviderError (the job retries) or ProvisionTimedOut."""
    server = Server.objects.select_related("plan").get(pk=server_id)
    if server.status != Server.Status.PROVISIONING:
        return None
    if timezone.now() - server.created_at > timedelta(seconds=settings.PROVISION_TIMEOUT):
        raise ProvisionTimedOut(provision_timeout_reason())
    provider = get_provider()
    server = _credentials_ensure(server)
    if not server.provider_id:
        # A retried job first looks for the droplet an earlier attempt created.
        droplet = provider.find_by_tag(droplet_tag(server))
        adopted = droplet is not None
        if droplet is None:
            droplet = provider.create(_droplet_spec(server, provider))
        with transaction.atomic():
            updated = Server.objects.filter(
                pk=server.pk, provider_id="", status=Server.Status.PROVISIONING
            ).update(provider_id=droplet.id, updated_at=timezone.now())
            if updated:
                server_event_record(
                    server=server,
                    kind=ServerEventKind.DROPLET_REQUESTED,
                    message=(
                        f"Found the server an earlier attempt requested ({droplet.id})."
                        if adopted
                        else f"Requested a {server.plan.name} server in {server.region}."
                    ),
                )
        server.provider_id = droplet.id
    else:
        droplet = provider.get(server.provider_id)
        if droplet is None:
            raise ProviderError("The server disappeared while it was being built.")
    if not droplet.is_active:
        return settings.PROVISION_POLL_SECONDS
    server_mark_running(server_id=server.pk, ip_address=droplet.ip_address)
    return None


def server_mark_running(*, server_id: int, ip_address: str) -> bool:
    """The droplet is up: store its address, forget the host's private key, and tell the
    customer. False when the server was no longer being provisioned."""
    from servers.tasks import server_notify

    with transaction.atomic():
        server = Server.objects.select_for_update().get(pk=server_id)
        if server.status != Server.Status.PROVISIONING:
            return False
        server.status = Server.Status.RUNNING
        server.ip_address = ip_address
        # The server has its secrets now: keep only what later connections verify.
        server.ssh_host_private_key = ""
        server.tls_token = ""
        server.save(
            update_fields=[
                "status",
                "ip_address",
                "ssh_host_private_key",
                "tls_token",
                "updated_at",
            ]
        )
        server_event_record(
            server=server, kind=ServerEventKind.DROPLET_ACTIVE, message=f"Booted at {ip_address}."
        )
        server_event_record(
            server=server,
            kind=ServerEventKind.READY,
            message=f"Log in with ssh {server.ssh_username}@{ip_address}.",
        )
        defer(server_notify, server_id=server.pk, kind="ready")
    return True


def server_provision_retrying(*, server_id: int, reason: str, attempt: int, wait: float) -> None:
    """Say on the timeline that an attempt failed and another will follow."""
    with transaction.atomic():
        server = Server.objects.filter(pk=server_id, status=Server.Status.PROVISIONING).first()
        if server is not None:
            server_event_record(
                server=server,
                kind=ServerEventKind.RETRYING,
                message=f"Attempt {attempt} failed ({reason}); trying again in {wait:.0f} s.",
            )


def server_provision_fail(*, server_id: int, reason: str) -> bool:
    """Give up building the server: mark it failed with the reason, destroy whatever the
    provider built, and refund the payment (which tells the customer, in one mail). Safe
    to run twice: the second run finds the server failed and changes nothing."""
    from billing.models import Payment, PaymentStatus
    from billing.services import RefundKind
    from billing.tasks import payment_refund
    from servers.tasks import droplet_destroy, server_notify

    with transaction.atomic():
        server = Server.objects.get(pk=server_id)
        payment = None
        if server.payment_id is not None:
            payment = Payment.objects.select_for_update().get(pk=server.payment_id)
        server = Server.objects.select_for_update().get(pk=server_id)
        if server.status != Server.Status.PROVISIONING:
            return False
        server.status = Server.Status.FAILED
        server.ssh_host_private_key = ""
        server.tls_token = ""
        server.save(update_fields=["status", "ssh_host_private_key", "tls_token", "updated_at"])
        server_event_record(server=server, kind=ServerEventKind.FAILED, message=reason)
        # Always: a droplet may exist that we never recorded (created, then the job died).
        defer(droplet_destroy, lock=server_lock(server.pk), server_id=server.pk)
        if payment is not None and payment.status == PaymentStatus.SUCCEEDED:
            defer(
                payment_refund,
                payment_id=payment.pk,
                kind=RefundKind.PROVISION_FAILED,
                reason=f"Your server could not be built: {reason}",
            )
        else:
            defer(server_notify, server_id=server.pk, kind="failed")
    return True


def server_delete(*, server: Server, reason: str) -> bool:
    """Mark a live server deleted and destroy its droplet, in the caller's transaction
    (the caller holds the payment's lock; this takes the server's). A failed server keeps
    its status: it never ran."""
    from servers.tasks import droplet_destroy

    server = Server.objects.select_for_update().get(pk=server.pk)
    if server.status in ENDED_SERVER_STATUSES:
        return False
    server.status = Server.Status.DELETED
    server.save(update_fields=["status", "updated_at"])
    server_event_record(server=server, kind=ServerEventKind.DELETED, message=reason)
    defer(droplet_destroy, lock=server_lock(server.pk), server_id=server.pk)
    return True


def server_delete_by_staff(*, server_id: int, actor, request=None) -> bool:
    """Staff delete a server without refunding it (abuse, say): the server is marked
    deleted, its droplet destroyed, and the audit trail says who did it. False when it
    had already ended."""
    from accounts.models import AuditAction
    from accounts.services import audit_event_record
    from billing.models import Payment

    with transaction.atomic():
        server = Server.objects.get(pk=server_id)
        if server.payment_id is not None:  # payment first, then server: the lock order
            Payment.objects.select_for_update().get(pk=server.payment_id)
        deleted = server_delete(server=server, reason="Deleted by our staff.")
        if deleted:
            audit_event_record(
                action=AuditAction.STAFF_ACTION,
                actor=actor,
                request=request,
                target=server,
                metadata={"action": "server_delete", "refunded": False},
            )
    return deleted


def server_provision_retry(*, server_id: int, actor, request=None) -> bool:
    """Staff start the provisioning job again for a server stuck in `provisioning` (its
    job lost or failed): safe, as the job adopts a droplet it already made. Audited.
    False for a server in any other state."""
    from accounts.models import AuditAction
    from accounts.services import audit_event_record
    from servers.tasks import server_provision

    with transaction.atomic():
        server = Server.objects.select_for_update().get(pk=server_id)
        if server.status != Server.Status.PROVISIONING:
            return False
        defer(server_provision, lock=server_lock(server.pk), server_id=server.pk)
        audit_event_record(
            action=AuditAction.STAFF_ACTION,
            actor=actor,
            request=request,
            target=server,
            metadata={"action": "server_provision_retry"},
        )
    return True


def droplet_destroy_for(*, server_id: int) -> bool:
    """Destroy the droplet of an ended server, found by id or, when none was recorded, by
    its tag. True when something was destroyed."""
    server = Server.objects.get(pk=server_id)
    if server.status not in ENDED_SERVER_STATUSES:
        return False  # brought back to life since: leave it
    if server.events.filter(kind=ServerEventKind.DESTROYED).exists():
        return False  # a job run twice
    provider = get_provider()
    droplet_id = server.provider_id
    if not droplet_id:
        found = provider.find_by_tag(droplet_tag(server))
        droplet_id = found.id if found else ""
    if not droplet_id:
        return False
    provider.destroy(droplet_id)
    with transaction.atomic():
        server_event_record(
            server=server, kind=ServerEventKind.DESTROYED, message=f"Droplet {droplet_id}."
        )
    return True
