"""Backup round trip: the scale data (10,000 customers; 200 in the short form) backed up
with `manage.py backup`'s code, restored with `manage.py restore`'s into a second
database, and every table's exact row count compared between the two; timed.

Both sides are counted by this process, which sets no tenant scope: row-level security
lets every row through, as it does for pg_dump (--enable-row-security). A backup taken
under a customer's scope would hold only that customer's rows, and the counts would say
so. The row-level security itself (the policies, and which tables force them) must come
back too: a restored database that lost them would serve every customer everyone's rows.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from django.db import connection

from bench.drills import Outcome, Timer
from hosting.database.backup import backup_create, human_size
from hosting.database.restore import archive_restore, public_tables, target_database
from hosting.scale_data import seed_scale
from hosting.testing import database_url

NAME = "backup round trip"

RLS_SQL = """
SELECT (SELECT count(*) FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'),
       (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relrowsecurity AND c.relforcerowsecurity)
"""


def table_counts(wrapper) -> dict[str, int]:
    """Exact row counts of every public table, on a Django connection."""
    counts = {}
    with wrapper.cursor() as cursor:
        for name in public_tables(wrapper):
            cursor.execute(f"SELECT count(*) FROM public.{wrapper.ops.quote_name(name)}")  # noqa: S608
            counts[name] = cursor.fetchone()[0]
    return counts


def row_security(wrapper) -> tuple[int, int]:
    """(policies, tables with row-level security enabled and forced)."""
    with wrapper.cursor() as cursor:
        cursor.execute(RLS_SQL)
        return cursor.fetchone()


def unscoped(wrapper) -> bool:
    """No tenant scope on the connection: every policy passes every row."""
    with wrapper.cursor() as cursor:
        cursor.execute("SELECT coalesce(current_setting('app.scope', true), '')")
        return cursor.fetchone()[0] == ""


def run(*, short: bool) -> Outcome:
    outcome = Outcome()
    customers = 200 if short else 10_000
    with Timer() as seeding:
        report = seed_scale(customers)
    outcome.expect("scale customers", report.customers, customers)
    outcome.expect("tenant scope on the counting connection", unscoped(connection), True)

    restored_name = f"{connection.settings_dict['NAME'][:50]}_restored"
    with tempfile.TemporaryDirectory(prefix="drill-backup-") as directory:
        with Timer() as backing_up:
            archive = backup_create(Path(directory), say=lambda line: None)
        size = archive.stat().st_size
        _database_recreate(restored_name)
        try:
            with Timer() as restoring:
                archive_restore(
                    archive,
                    database_url=database_url(restored_name),
                    force=True,
                    say=lambda _: None,
                )
            with Timer() as counting:
                source = table_counts(connection)
                restored_db = target_database(database_url(restored_name))
                try:
                    restored = table_counts(restored_db)
                    security = row_security(connection), row_security(restored_db)
                finally:
                    restored_db.close()
        finally:
            _database_drop(restored_name)

    mismatches = [
        f"{table}: {source.get(table, 'no table')} rows in the source, "
        f"{restored.get(table, 'no table')} restored"
        for table in sorted(source.keys() | restored.keys())
        if source.get(table) != restored.get(table)
    ]
    outcome.violations.extend(mismatches)
    source_security, restored_security = security
    outcome.expect(
        "row-level security restored (policies, forced tables)", restored_security, source_security
    )
    outcome.figures.update(
        {
            "customers": report.customers,
            "rows total": sum(source.values()),
            "tables compared": len(source.keys() | restored.keys()),
            "mismatches": len(mismatches),
            "policies restored": f"{restored_security[0]}/{source_security[0]}",
            "seed seconds": round(seeding.seconds, 1),
            "backup seconds": round(backing_up.seconds, 1),
            "backup size": human_size(size),
            "restore seconds": round(restoring.seconds, 1),
            "count seconds": round(counting.seconds, 1),
        }
    )
    return outcome


def _database_recreate(name: str) -> None:
    _database_drop(name)  # a run that crashed may have left it
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')


def _database_drop(name: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
