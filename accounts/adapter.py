from allauth.account.adapter import DefaultAccountAdapter
from django.core.exceptions import ValidationError

from accounts.models import AuditAction, User
from accounts.services import audit_event_record


def _record_login_attempt(request, action: AuditAction, credentials: dict) -> None:
    """Audit a login that did not succeed, against the account it named if one exists."""
    email = credentials.get("email", "")
    audit_event_record(
        action=action,
        actor=User.objects.filter(email__iexact=email).first() if email else None,
        actor_email=email,
        request=request,
    )


class AccountAdapter(DefaultAccountAdapter):
    """allauth's adapter, with failed and refused logins written to the audit trail."""

    def pre_authenticate(self, request, **credentials):
        try:
            super().pre_authenticate(request, **credentials)
        except ValidationError:  # too many failures: the account is locked for now
            _record_login_attempt(request, AuditAction.LOCKOUT, credentials)
            raise

    def authentication_failed(self, request, **credentials):
        super().authentication_failed(request, **credentials)
        _record_login_attempt(request, AuditAction.LOGIN_FAILED, credentials)
