import sys

from django.shortcuts import render

from billing.selectors import active_plans
from hosting.maintenance import DATABASE_DOWN, maintenance_response


def landing(request):
    return render(request, "hosting/landing.html", {"plans": active_plans()})


def pricing(request):
    return render(request, "hosting/pricing.html", {"plans": active_plans()})


def bad_request(request, exception=None):
    return render(request, "400.html", status=400)


def permission_denied(request, exception=None):
    return render(request, "403.html", status=403)


def page_not_found(request, exception=None):
    return render(request, "404.html", status=404)


def server_error(request):
    # The database went away in the middle of the request: the maintenance page, as
    # for a request that found it down (hosting.maintenance).
    if isinstance(sys.exc_info()[1], DATABASE_DOWN):
        return maintenance_response()
    # 500.html replaces the nav and messages blocks, so rendering it touches neither the
    # user nor the database: the database may be what failed.
    return render(request, "500.html", status=500)


def csrf_failure(request, reason=""):
    return render(request, "403.html", {"csrf_failed": True}, status=403)
