from django.conf import settings
from django.contrib.auth import logout
from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone

LOGIN_AT_SESSION_KEY = "accounts_login_at"


@receiver(user_logged_in)
def stamp_login_time(sender, request, user, **kwargs):
    if request is not None and hasattr(request, "session"):
        request.session[LOGIN_AT_SESSION_KEY] = timezone.now().timestamp()


class AbsoluteSessionLifetimeMiddleware:
    """End a session SESSION_COOKIE_AGE seconds after login, however active it has been.

    Django's own expiry slides forward whenever the session is saved; this one does not.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.user.is_authenticated:
            login_at = request.session.get(LOGIN_AT_SESSION_KEY)
            now = timezone.now().timestamp()
            if login_at is None:
                # A session from before this rule: its clock starts now.
                request.session[LOGIN_AT_SESSION_KEY] = now
            elif now - login_at > settings.SESSION_COOKIE_AGE:
                logout(request)
                return redirect(reverse(settings.LOGIN_URL))
        return self.get_response(request)


class StaffRequireMFAMiddleware:
    """Staff without two-factor are sent to set it up before they reach the admin."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if (
            settings.STAFF_REQUIRE_MFA
            and request.path.startswith("/admin/")
            and request.user.is_authenticated
            and request.user.is_staff
        ):
            from allauth.mfa.utils import is_mfa_enabled

            if not is_mfa_enabled(request.user):
                return redirect("mfa_activate_totp")
        return self.get_response(request)
