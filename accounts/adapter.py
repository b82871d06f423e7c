from allauth.account.adapter import DefaultAccountAdapter
from django.core.exceptions import ValidationError

from accounts.models import AuditAction, User
from accounts.services import audit_event_record


def _user_for(email: str) -> User | None:
    return User.objects.filter(email__iexact=email).first() if email else None


class AccountAdapter(DefaultAccountAdapter):
    """allauth's adapter, with failed and refused logins written to the audit trail."""

    def pre_authenticate(self, request, **credentials):
        try:
            super().pre_authenticate(request, **credentials)
        except ValidationError:
            email = credentials.get("email", "")
            audit_event_record(
                action=AuditAction.LOCKOUT,
                actor=_user_for(email),
                actor_email=email,
                request=request,
            )
            raise

    def authentication_failed(self, request, **credentials):
        super().authentication_failed(request, **credentials)
        email = credentials.get("email", "")
        audit_event_record(
            action=AuditAction.LOGIN_FAILED,
            actor=_user_for(email),
            actor_email=email,
            request=request,
        )
