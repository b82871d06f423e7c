"""`manage.py check_db`: can we reach the database, and how fast
(hosting/database/check.py)."""

from django.core.management.base import BaseCommand, CommandError

from hosting.database.check import database_check
from hosting.database.pg import PgError


class Command(BaseCommand):
    help = (
        "Connect to the default database and print the server version, the round-trip "
        "latency of SELECT 1, the database name and host (never the password) and the "
        "connection pool settings. Exits 1 with a one-line reason when it cannot connect."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--runs", type=int, default=5, help="SELECT 1 round trips to time (default 5)."
        )

    def handle(self, *args, runs=5, **options):
        try:
            lines = database_check(runs)
        except PgError as exc:
            raise CommandError(str(exc), returncode=1) from exc
        for line in lines:
            self.stdout.write(line)
        self.stdout.write(self.style.SUCCESS("OK"))
