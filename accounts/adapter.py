from allauth.account.adapter import DefaultAccountAdapter
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from accounts.models import AuditAction, User
from accounts.services import audit_event_record, client_ip


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
    """allauth's adapter: staff land in the admin, and failed and refused logins are written
    to the audit trail."""

    def get_login_redirect_url(self, request):
        """Where a login lands when no `next` says otherwise (allauth asks only then): the
        admin for staff, the dashboard (LOGIN_REDIRECT_URL) for customers."""
        if request.user.is_staff:
            return reverse("admin:index")
        return super().get_login_redirect_url(request)

    def get_client_ip(self, request):
        """The one client address the whole site uses (TRUSTED_PROXY_COUNT): allauth's
        per-IP rate limits would otherwise read ALLAUTH_TRUSTED_PROXY_COUNT, and behind a
        proxy every customer would share the proxy's address, and its limits."""
        ip = client_ip(request)
        if not ip:
            raise PermissionDenied("Unable to determine the client's address.")
        return ip

    def pre_authenticate(self, request, **credentials):
        try:
            super().pre_authenticate(request, **credentials)
        except ValidationError:  # too many failures: the account is locked for now
            _record_login_attempt(request, AuditAction.LOCKOUT, credentials)
            raise

    def authentication_failed(self, request, **credentials):
        super().authentication_failed(request, **credentials)
        _record_login_attempt(request, AuditAction.LOGIN_FAILED, credentials)
