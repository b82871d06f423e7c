"""`manage.py restore FILE`: load a `manage.py backup` archive into a database."""

from __future__ import annotations

import time
from pathlib import Path

import environ
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connections
from psycopg.conninfo import make_conninfo

from hosting import pg

# Tables that `migrate` fills by itself: rows there do not make a database "in use".
# django_cache holds only disposable cache entries (createcachetable).
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

CUSTOM_FORMAT_MAGIC = b"PGDMP"


def tables_with_rows(connection) -> list[str]:
    """Tables of the public schema, other than MIGRATE_FILLED_TABLES, with a row."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY c.relname"
        )
        names = [name for (name,) in cursor.fetchall() if name not in MIGRATE_FILLED_TABLES]
        filled = []
        for name in names:
            quoted = connection.ops.quote_name(name)
            cursor.execute(f"SELECT EXISTS (SELECT 1 FROM public.{quoted})")  # noqa: S608
            if cursor.fetchone()[0]:
                filled.append(name)
        return filled


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


class Command(BaseCommand):
    help = (
        "Restore a `manage.py backup` archive (pg_dump custom format) into the DATABASE_URL "
        "database, or into --database-url. Runs pg_restore --clean --if-exists "
        "--single-transaction --exit-on-error --no-owner --no-privileges: a failure leaves "
        "the target unchanged. Refuses without --force when DEBUG is off, or when the "
        "target already holds data, meaning: any table in the public schema with at least "
        "one row, not counting the tables migrate fills by itself (django_migrations, "
        "django_content_type, auth_permission, django_site, billing_plan) and the "
        "django_cache table. Stop the web and worker processes first (the restore waits "
        "for their locks), and run migrate afterwards when the archive is older than the "
        "code."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path, help="Archive written by `manage.py backup`.")
        parser.add_argument(
            "--database-url",
            help="Restore into this database instead of DATABASE_URL "
            "(postgresql://user:password@host:port/name?sslmode=require, or over a Unix "
            "socket: postgresql://user@//path/to/socketdir/name).",
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="Restore even with DEBUG off or into a database that holds data; "
            "whatever the archive holds replaces it.",
        )

    def handle(self, *args, file, database_url=None, force=False, **options):
        path = file.expanduser()
        entries = self._check_archive(path)

        if database_url:
            try:
                config = environ.Env.db_url_config(database_url)
                target = pg.database_wrapper(config, alias="restore-target")
                if not config.get("HOST") and "/" in (config.get("NAME") or ""):
                    raise pg.PgError(
                        "a Unix socket directory goes right after '@/' as an absolute path: "
                        "postgresql://user@//path/to/socketdir/dbname"
                    )
            except pg.PgError as exc:
                raise CommandError(f"--database-url: {exc}") from exc
            except Exception as exc:
                # The message may echo the URL and its password: say what, not the URL.
                raise CommandError(
                    f"--database-url is not a valid database URL ({type(exc).__name__})"
                ) from exc
            owned = True
        else:
            target = connections["default"]
            owned = False

        try:
            self._restore(path, entries, target, force)
        finally:
            if owned:
                target.close()

    def _check_archive(self, path: Path) -> int:
        """Before the database is touched: the file exists, is readable and is an archive
        pg_restore can list."""
        if not path.is_file():
            raise CommandError(f"no such backup file: {path}")
        try:
            with path.open("rb") as archive:
                magic = archive.read(len(CUSTOM_FORMAT_MAGIC))
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc.strerror or exc}") from exc
        if magic != CUSTOM_FORMAT_MAGIC:
            raise CommandError(f"{path} is not a pg_dump custom-format archive")
        try:
            return pg.archive_entries(path)
        except pg.PgError as exc:
            raise CommandError(str(exc)) from exc

    def _restore(self, path: Path, entries: int, target, force: bool) -> None:
        try:
            libpq = pg.params_env(target.get_connection_params())
        except Exception as exc:
            raise CommandError(f"cannot use the target database: {one_line(exc)}") from exc
        where = pg.describe(libpq)

        if not settings.DEBUG and not force:
            raise CommandError(
                f"refusing to restore into {where}: DEBUG is off (a production database?); "
                "pass --force to replace its contents"
            )
        try:
            filled = tables_with_rows(target)
        except Exception as exc:
            raise CommandError(f"cannot connect to {where}: {one_line(exc)}") from exc
        if filled and not force:
            shown = ", ".join(filled[:5]) + (", ..." if len(filled) > 5 else "")
            raise CommandError(
                f"refusing to restore into {where}: it holds data ({len(filled)} table(s) "
                f"with rows: {shown}); pass --force to replace it"
            )

        try:
            pg_restore = pg.pg_binary("pg_restore")
        except pg.PgError as exc:
            raise CommandError(str(exc)) from exc
        command = [
            pg_restore,
            "--clean",
            "--if-exists",
            "--single-transaction",
            "--exit-on-error",
            "--no-owner",
            "--no-privileges",
            # Only the name on the command line; host, user, password, sslmode travel
            # in the environment.
            "--dbname",
            make_conninfo("", dbname=libpq.get("PGDATABASE", "")),
            str(path),
        ]
        started = time.monotonic()
        try:
            pg.run(
                command,
                libpq=libpq,
                failure=f"pg_restore into {where} failed; the restore ran in one "
                "transaction, so nothing was changed",
            )
        except pg.PgError as exc:
            raise CommandError(str(exc)) from exc
        replaced = f", replacing data in {len(filled)} table(s)" if filled else ""
        self.stdout.write(
            f"Restored {path} ({entries} archive entries) into {where}{replaced} "
            f"in {time.monotonic() - started:.1f}s"
        )
