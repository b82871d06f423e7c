"""The staff database page (`/admin/database/`): superusers only, audited, read-only.
The statistics come from hosting.database.stats; this view only checks, records and
renders."""

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db import DEFAULT_DB_ALIAS, connections
from django.template.response import TemplateResponse
from django.urls import path

from accounts.models import AuditAction
from accounts.services import audit_event_record
from hosting.database import stats


def database_page(request):
    if not request.user.is_superuser:
        raise PermissionDenied
    audit_event_record(
        action=AuditAction.STAFF_ACTION,
        actor=request.user,
        request=request,
        metadata={"action": "database_page"},
    )
    overview = stats.database_overview(connections[DEFAULT_DB_ALIAS])
    return TemplateResponse(
        request,
        "admin/database.html",
        {
            **admin.site.each_context(request),
            "title": "Database",
            "overview": overview,
            "long_query_seconds": stats.LONG_QUERY_SECONDS,
            "enable_pg_stat_statements": stats.ENABLE_PG_STAT_STATEMENTS,
        },
    )


# Django admin's login (allauth's, with two-factor) and staff check come first.
admin_database_page = admin.site.admin_view(database_page)

urlpatterns = [path("", admin_database_page, name="admin_database")]
