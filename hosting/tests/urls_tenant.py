"""A test-only urlconf: a page that tells what the database lets its request see, and one
that fails half-way, behind the site's own middleware."""

from django.contrib.auth import login, logout
from django.db import connection
from django.http import JsonResponse
from django.urls import path

from accounts.models import User
from hosting import urls as site_urls


def _seen() -> dict:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_backend_pid(), current_setting('app.scope', true), "
            "current_setting('app.user_id', true), current_setting('TimeZone')"
        )
        pid, scope, user_id, zone = cursor.fetchone()
        # No owner filter: whatever the policies let through.
        cursor.execute("SELECT name FROM servers_server ORDER BY name")
        servers = [name for (name,) in cursor.fetchall()]
    return {"pid": pid, "scope": scope, "user_id": user_id, "zone": zone, "servers": servers}


def seen(request):
    return JsonResponse(_seen())


def fails(request):
    _seen()
    raise RuntimeError("half-way")


def login_then_seen(request):
    """Signs in the user ?email= names mid-request, as allauth's login view does."""
    user = User.objects.get(email=request.GET["email"])
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    return JsonResponse(_seen())


def logout_then_seen(request):
    logout(request)
    return JsonResponse(_seen())


urlpatterns = [
    path("seen/", seen),
    path("fails/", fails),
    path("login-then-seen/", login_then_seen),
    path("logout-then-seen/", logout_then_seen),
    *site_urls.urlpatterns,
]

handler404 = site_urls.handler404
handler500 = site_urls.handler500
