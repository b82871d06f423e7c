"""A test-only urlconf: a page that tells what the database lets its request see, and one
that fails half-way, behind the site's own middleware."""

from django.db import connection
from django.http import JsonResponse
from django.urls import path

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


urlpatterns = [path("seen/", seen), path("fails/", fails), *site_urls.urlpatterns]

handler404 = site_urls.handler404
handler500 = site_urls.handler500
