"""Loading a `backup` archive into a database (`manage.py restore`).

pg_restore runs with --clean --if-exists --single-transaction --exit-on-error --no-owner
--no-privileges: a restore that fails part-way leaves the target as it was.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import environ
from django.conf import settings
from django.db import DatabaseError, connections
from psycopg.conninfo import make_conninfo

from hosting.database import pg
from hosting.database.archive import archive_verify
from hosting.database.pg import PgError, one_line

# Tables that `migrate` fills by itself: rows there do not make a database "in use".
# django_cache holds only disposable cache entries (made by hosting 0001).
MIGRATE_FILLED_TABLES = frozenset(
    {
        "django_migrations",
        "django_content_type",
        "auth_permission",
        "django_site",
        "billing_plan",
        "django_cache",
    }
)


def public_tables(connection) -> list[str]:
    """The tables of the public schema, by name."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY c.relname"
        )
        return [name for (name,) in cursor.fetchall()]


def tables_with_rows(connection) -> list[str]:
    """Tables of the public schema, other than MIGRATE_FILLED_TABLES, with a row."""
    names = [name for name in public_tables(connection) if name not in MIGRATE_FILLED_TABLES]
    filled = []
    with connection.cursor() as cursor:
        for name in names:
            quoted = connection.ops.quote_name(name)
            cursor.execute(f"SELECT EXISTS (SELECT 1 FROM public.{quoted})")  # noqa: S608
            if cursor.fetchone()[0]:
                filled.append(name)
    return filled


def target_database(database_url: str):
    """A (not yet connected) connection to the database of `database_url`; the caller
    closes it. Raises PgError, never echoing the URL (it may hold a password)."""
    try:
        config = environ.Env.db_url_config(database_url)
        target = pg.database_wrapper(config, alias="restore-target")
        if not config.get("HOST") and "/" in (config.get("NAME") or ""):
            raise PgError(
                "a Unix socket directory goes right after '@/' as an absolute path: "
                "postgresql://user@//path/to/socketdir/dbname"
            )
    except PgError as exc:
        raise PgError(f"--database-url: {exc}") from exc
    except Exception as exc:
        # The message may echo the URL and its password: say what, not the URL.
        raise PgError(f"--database-url is not a valid database URL ({type(exc).__name__})") from exc
    return target


def archive_restore(
    path: Path,
    *,
    database_url: str | None = None,
    force: bool = False,
    say: Callable[[str], object] = print,
) -> None:
    """Restore the archive at `path` into the default database, or into `database_url`'s.
    The archive is checked before any database is touched. Refuses without `force` when
    DEBUG is off or the target holds data (a row in a table migrate does not fill).
    Raises PgError."""
    path = path.expanduser()
    entries = archive_verify(path)
    _refuse_failed_verification(path, force)
    if not database_url:
        _restore(path, entries, connections["default"], force, say)
        return
    target = target_database(database_url)
    try:
        _restore(path, entries, target, force, say)
    finally:
        target.close()


def _refuse_failed_verification(path: Path, force: bool) -> None:
    """An archive whose recorded verification (a BackupRun of the default database with
    its file name) failed is not restored without `force`. Unknown archives, or a
    database without the table (a fresh one being recovered), are not refused."""
    from hosting.models import BackupRun

    if force:
        return
    try:
        if BackupRun._meta.db_table not in connections["default"].introspection.table_names():
            return
        run = BackupRun.objects.filter(file_name=path.name).first()
    except DatabaseError:
        return
    if run is not None and run.verified is False:
        raise PgError(
            f"refusing to restore {path.name}: its verification failed "
            f"(backup run {run.pk}, {run.started_at:%Y-%m-%d %H:%M} UTC: "
            f"{one_line(run.error) or 'no details'}); pass --force to restore it anyway"
        )


def _restore(path: Path, entries: int, target, force: bool, say) -> None:
    try:
        libpq = pg.params_env(target.get_connection_params())
    except Exception as exc:
        raise PgError(f"cannot use the target database: {one_line(exc)}") from exc
    where = pg.describe(libpq)

    if not settings.DEBUG and not force:
        raise PgError(
            f"refusing to restore into {where}: DEBUG is off (a production database?); "
            "pass --force to replace its contents"
        )
    try:
        filled = tables_with_rows(target)
    except Exception as exc:
        raise PgError(f"cannot connect to {where}: {one_line(exc)}") from exc
    if filled and not force:
        shown = ", ".join(filled[:5]) + (", ..." if len(filled) > 5 else "")
        raise PgError(
            f"refusing to restore into {where}: it holds data ({len(filled)} table(s) "
            f"with rows: {shown}); pass --force to replace it"
        )

    command = [
        pg.pg_binary("pg_restore"),
        "--clean",
        "--if-exists",
        "--single-transaction",
        "--exit-on-error",
        "--no-owner",
        "--no-privileges",
        # Only the name on the command line; host, user, password, sslmode travel in the
        # environment.
        "--dbname",
        make_conninfo("", dbname=libpq.get("PGDATABASE", "")),
        str(path),
    ]
    started = time.monotonic()
    pg.run(
        command,
        libpq=libpq,
        failure=f"pg_restore into {where} failed; the restore ran in one transaction, "
        "so nothing was changed",
    )
    replaced = f", replacing data in {len(filled)} table(s)" if filled else ""
    say(
        f"Restored {path} ({entries} archive entries) into {where}{replaced} "
        f"in {time.monotonic() - started:.1f}s"
    )
