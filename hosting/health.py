"""Liveness and readiness probes for the load balancer and the orchestrator."""

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET


@never_cache
@require_GET
def healthz(request):
    """The process answers; the database is not touched."""
    return HttpResponse("ok", content_type="text/plain")


@never_cache
@require_GET
def readyz(request):
    """Ready when the database answers, no migration is waiting and every table the app
    needs is there: a table dropped by hand, or a database made without the cache's or
    procrastinate's, would otherwise fail every login while this said 200."""
    connection = connections[DEFAULT_DB_ALIAS]
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        executor = MigrationExecutor(connection)
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
        missing = [] if pending else tables_missing(connection)
    except Exception as exc:  # any failure to reach the database means "not ready"
        return JsonResponse(
            {"status": "unavailable", "reason": f"database unreachable: {type(exc).__name__}"},
            status=503,
        )
    if pending:
        return JsonResponse(
            {"status": "unavailable", "reason": f"{len(pending)} migration(s) not applied"},
            status=503,
        )
    if missing:
        return JsonResponse(
            {"status": "unavailable", "reason": f"table(s) missing: {', '.join(missing)}"},
            status=503,
        )
    return JsonResponse({"status": "ok"})


# Made by migrations that are not a model's: the database cache (hosting 0001) and
# procrastinate's queue (its SQL migrations).
NON_MODEL_TABLES = ("django_cache", "procrastinate_jobs", "procrastinate_periodic_defers")


def tables_missing(connection) -> list[str]:
    """The tables of every installed model, and the others the app needs, that the
    database lacks: one query."""
    needed = set(connection.introspection.django_table_names(include_views=False))
    needed.update(NON_MODEL_TABLES)
    return sorted(needed - set(connection.introspection.table_names()))
