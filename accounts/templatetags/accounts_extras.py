from allauth.mfa.utils import is_mfa_enabled
from django import template
from django.conf import settings

register = template.Library()


@register.simple_tag(takes_context=True)
def admin_requires_two_factor(context) -> bool:
    """Whether the signed-in user is staff kept out of the admin until they turn on
    two-factor (STAFF_REQUIRE_MFA; accounts.middleware.StaffRequireMFAMiddleware)."""
    user = context["request"].user
    return bool(
        settings.STAFF_REQUIRE_MFA
        and user.is_authenticated
        and user.is_staff
        and not is_mfa_enabled(user)
    )


@register.simple_tag
def support_email() -> str:
    """The address customers write to for help (SUPPORT_EMAIL), or "" when none is set.
    Not STAFF_NOTIFICATION_EMAILS: those may be staff members' own addresses."""
    return settings.SUPPORT_EMAIL
