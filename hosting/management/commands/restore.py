"""`manage.py restore FILE`: load a `manage.py backup` archive into a database
(hosting/database/restore.py)."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from hosting.database.pg import PgError
from hosting.database.restore import archive_restore


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
        "code. Also refuses without --force an archive whose recorded verification "
        "(`backup --verify`, `backup --verify-only`) failed."
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
            help="Restore even with DEBUG off, into a database that holds data, or an "
            "archive whose verification failed; whatever the archive holds replaces it.",
        )

    def handle(self, *args, file, database_url=None, force=False, **options):
        try:
            archive_restore(file, database_url=database_url, force=force, say=self.stdout.write)
        except PgError as exc:
            raise CommandError(str(exc)) from exc
