"""The statistics behind the staff database page (`/admin/database/`).

One small function per section, each one read-only query returning plain dicts, and
`database_overview(connection)` that runs them all. Every section runs in its own
savepoint: a missing view, a missing extension or a role without the rights shows up as
that section's `error` (one line) instead of failing the page. The number of queries is
fixed: it does not grow with the number of tables, indexes, backends or backups.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError, transaction

LONG_QUERY_SECONDS = 5
QUERY_TEXT_LIMIT = 500
STATEMENTS_LIMIT = 20
BACKUPS_LIMIT = 10

ENABLE_PG_STAT_STATEMENTS = (
    "shared_preload_libraries = 'pg_stat_statements'",
    "restart PostgreSQL",
    "CREATE EXTENSION pg_stat_statements;",
)


@dataclass
class Section:
    """One section of the page: its data, or the one-line reason it is not available."""

    data: Any = None
    error: str = ""


def rows(cursor) -> list[dict]:
    names = [column.name for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def fetch(connection, sql: str, params=None) -> list[dict]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return rows(cursor)


DATABASE_SIZE_SQL = """
SELECT current_database() AS name,
       pg_database_size(current_database()) AS bytes,
       pg_size_pretty(pg_database_size(current_database())) AS pretty
"""


def database_size(connection) -> dict:
    return fetch(connection, DATABASE_SIZE_SQL)[0]


TABLES_SQL = """
SELECT s.schemaname AS schema,
       s.relname AS name,
       pg_total_relation_size(s.relid) AS bytes,
       pg_size_pretty(pg_total_relation_size(s.relid)) AS size,
       s.n_live_tup AS live_rows,
       GREATEST(c.reltuples, 0)::bigint AS estimated_rows,
       s.n_dead_tup AS dead_rows,
       s.last_vacuum,
       s.last_autovacuum,
       s.last_analyze,
       s.last_autoanalyze
FROM pg_stat_user_tables s
JOIN pg_class c ON c.oid = s.relid
ORDER BY pg_total_relation_size(s.relid) DESC, s.schemaname, s.relname
"""


def tables(connection) -> list[dict]:
    """User tables, biggest first (table + indexes + TOAST)."""
    return fetch(connection, TABLES_SQL)


INDEXES_SQL = """
SELECT s.schemaname AS schema,
       s.indexrelname AS name,
       s.relname AS table_name,
       pg_relation_size(s.indexrelid) AS bytes,
       pg_size_pretty(pg_relation_size(s.indexrelid)) AS size,
       s.idx_scan AS scans,
       i.indisunique AS is_unique,
       i.indisprimary AS is_primary,
       (s.idx_scan = 0 AND NOT i.indisunique AND NOT i.indisprimary) AS unused
FROM pg_stat_user_indexes s
JOIN pg_index i ON i.indexrelid = s.indexrelid
ORDER BY pg_relation_size(s.indexrelid) DESC, s.schemaname, s.indexrelname
"""


def indexes(connection) -> list[dict]:
    """User indexes, biggest first; `unused` when never scanned and not enforcing a key
    (the counters start at the last statistics reset)."""
    return fetch(connection, INDEXES_SQL)


CACHE_HIT_SQL = """
SELECT blks_hit AS hits,
       blks_read AS reads,
       round(100.0 * blks_hit / NULLIF(blks_hit + blks_read, 0), 2) AS ratio,
       stats_reset
FROM pg_stat_database
WHERE datname = current_database()
"""


def cache_hit(connection) -> dict:
    """Share of block reads served from shared buffers (None before any read)."""
    found = fetch(connection, CACHE_HIT_SQL)
    return found[0] if found else {"hits": 0, "reads": 0, "ratio": None, "stats_reset": None}


CONNECTIONS_SQL = """
SELECT COALESCE(state, 'unknown') AS state,
       application_name,
       count(*) AS connections
FROM pg_stat_activity
WHERE datname = current_database()
GROUP BY COALESCE(state, 'unknown'), application_name
ORDER BY count(*) DESC, 1, 2
"""


def connections_by_state(connection) -> list[dict]:
    return fetch(connection, CONNECTIONS_SQL)


LONG_QUERIES_SQL = """
SELECT pid,
       usename AS role,
       application_name,
       clock_timestamp() - query_start AS running_for,
       wait_event_type,
       wait_event,
       left(query, %(limit)s) AS query
FROM pg_stat_activity
WHERE datname = current_database()
  AND state = 'active'
  AND pid <> pg_backend_pid()
  AND clock_timestamp() - query_start > make_interval(secs => %(seconds)s)
ORDER BY query_start
"""


def long_running_queries(connection, min_seconds: float = LONG_QUERY_SECONDS) -> list[dict]:
    """Other backends' statements active for more than `min_seconds`, longest first
    (clock_timestamp(): now() is the start of the transaction this may run in)."""
    return fetch(connection, LONG_QUERIES_SQL, {"limit": QUERY_TEXT_LIMIT, "seconds": min_seconds})


LOCK_WAITS_SQL = """
SELECT a.pid,
       a.usename AS role,
       a.application_name,
       l.locktype,
       l.mode,
       l.relation::regclass::text AS relation,
       pg_blocking_pids(a.pid) AS blocked_by,
       clock_timestamp() - a.query_start AS waiting_for,
       left(a.query, %(limit)s) AS query
FROM pg_locks l
JOIN pg_stat_activity a ON a.pid = l.pid
WHERE NOT l.granted
  AND a.datname = current_database()
ORDER BY a.query_start
"""


def lock_waits(connection) -> list[dict]:
    """Backends waiting for a lock, with the pids that hold it up."""
    return fetch(connection, LOCK_WAITS_SQL, {"limit": QUERY_TEXT_LIMIT})


def pool_stats(connection) -> dict | None:
    """This process's psycopg pool counters (no query), or None with the pool off."""
    pool = getattr(connection, "pool", None)
    if pool is None:
        return None
    return dict(sorted(pool.get_stats().items()))


EXTENSION_SQL = """
SELECT n.nspname AS schema
FROM pg_extension e
JOIN pg_namespace n ON n.oid = e.extnamespace
WHERE e.extname = 'pg_stat_statements'
"""

STATEMENTS_SQL = """
SELECT calls,
       round(mean_exec_time::numeric, 2) AS mean_ms,
       round(total_exec_time::numeric, 2) AS total_ms,
       rows,
       left(query, %(limit)s) AS query
FROM {schema}.pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY mean_exec_time DESC
LIMIT %(count)s
"""


def slow_statements(connection) -> list[dict] | None:
    """The slowest statements on average from pg_stat_statements, or None when the
    extension is not installed in this database (one more query when it is)."""
    found = fetch(connection, EXTENSION_SQL)
    if not found:
        return None
    sql = STATEMENTS_SQL.format(schema=connection.ops.quote_name(found[0]["schema"]))
    return fetch(connection, sql, {"limit": QUERY_TEXT_LIMIT, "count": STATEMENTS_LIMIT})


def recent_backups(connection, limit: int = BACKUPS_LIMIT) -> list[dict]:
    """The last `limit` backup runs, newest first."""
    from hosting.models import BackupRun

    return [
        {
            "started_at": run.started_at,
            "finished_at": run.finished_at,
            "trigger": run.get_trigger_display(),
            "file_name": run.file_name,
            "size_bytes": run.size_bytes,
            # Seconds, to a tenth: "0.7 s" reads better than "0:00:00.744974".
            "duration": f"{run.duration.total_seconds():.1f} s" if run.duration else None,
            "verified": run.verified,
            "error": run.error,
            "succeeded": run.succeeded,
        }
        for run in BackupRun.objects.using(connection.alias).order_by("-started_at")[:limit]
    ]


def row_level_security(connection) -> dict:
    """Each tenant table's row-level security (hosting/database/rls.py), and whether the
    role the app connects as is bound by it."""
    from hosting.database.rls import EXEMPT, role_bypasses, table_states

    return {
        "tables": table_states(connection),
        "exempt": EXEMPT,
        "bypass": role_bypasses(connection),
    }


def reason(exc: BaseException) -> str:
    """The first line of a database error (libpq adds LINE/HINT lines), or its type."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def section(connection, function: Callable, *args, **kwargs) -> Section:
    """Run one section in a savepoint; a DatabaseError becomes its one-line reason."""
    try:
        with transaction.atomic(using=connection.alias):
            return Section(data=function(connection, *args, **kwargs))
    except DatabaseError as exc:
        return Section(error=reason(exc))


def database_overview(connection) -> dict[str, Section]:
    """Every section of the database page, each a Section (data or error)."""
    return {
        "size": section(connection, database_size),
        "tables": section(connection, tables),
        "indexes": section(connection, indexes),
        "cache": section(connection, cache_hit),
        "connections": section(connection, connections_by_state),
        "long_queries": section(connection, long_running_queries),
        "locks": section(connection, lock_waits),
        "pool": Section(data=pool_stats(connection)),
        "statements": section(connection, slow_statements),
        "backups": section(connection, recent_backups),
        "rls": section(connection, row_level_security),
    }
