from contextlib import nullcontext

from django.conf import settings
from django.db import transaction

from accounts.models import AuditAction, AuditEvent, User
from hosting import tenant

# Keys that must never reach the audit trail, whatever a caller passes in metadata.
SECRET_KEYS = {"password", "password1", "password2", "oldpassword", "token", "code", "secret"}


def client_ip(request) -> str | None:
    """The client's address. Behind TRUSTED_PROXY_COUNT proxies, the address the outermost
    trusted proxy saw; otherwise REMOTE_ADDR (a header the client can forge is ignored)."""
    if request is None:
        return None
    hops = settings.TRUSTED_PROXY_COUNT
    if hops:
        forwarded = [h.strip() for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        forwarded = [h for h in forwarded if h]
        if len(forwarded) >= hops:
            return forwarded[-hops]
    return request.META.get("REMOTE_ADDR") or None


def audit_event_record(
    *,
    action: AuditAction,
    actor: User | None = None,
    actor_email: str = "",
    request=None,
    target=None,
    metadata: dict | None = None,
) -> AuditEvent:
    """Append one event to the audit trail, inside the caller's transaction if any."""
    clean = {k: v for k, v in (metadata or {}).items() if k.lower() not in SECRET_KEYS}
    actor = actor if actor is not None and actor.pk else None
    # The audit trail is the system's record, written for anonymous visitors too (a
    # failed login names the account it tried) and across a login, when the request's
    # user changes: an event the request's scope could not write is written for the
    # system. Customers read only their own.
    owned = tenant.scope_sees(actor.pk if actor else None)
    with nullcontext() if owned else tenant.system_scope(), transaction.atomic():
        return AuditEvent.objects.create(
            actor=actor,
            actor_email=(actor_email or (actor.email if actor else ""))[:254],
            action=action,
            target_type=target._meta.label_lower if target is not None else "",
            target_id=str(target.pk) if target is not None else "",
            ip_address=client_ip(request),
            metadata=clean,
        )


def user_update_profile(*, user: User, name: str) -> User:
    with transaction.atomic():
        user.name = name.strip()
        user.save(update_fields=["name"])
    return user
