from accounts.models import AuditEvent


def recent_security_events(user, limit: int = 10) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(actor=user).order_by("-created_at")[:limit])
