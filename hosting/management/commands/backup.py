"""`manage.py backup`: a verified pg_dump archive of the DATABASE_URL database
(hosting/database/backup.py)."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from hosting.database.backup import backup_create
from hosting.database.pg import PgError


class Command(BaseCommand):
    help = (
        "Back up the DATABASE_URL database with pg_dump (custom format, no owners or "
        "privileges) into BACKUP_DIR as hosting-YYYYmmdd-HHMMSS.dump (UTC). The archive is "
        "written under a temporary name, checked with `pg_restore --list`, and only then "
        "given its final name: a failed backup leaves no file behind."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--output-dir",
            type=Path,
            help="Directory for the archive (default: settings.BACKUP_DIR). Created with "
            "mode 0700 when missing.",
        )
        parser.add_argument(
            "--keep",
            type=int,
            metavar="N",
            help="After a successful backup, delete all but the newest N hosting-*.dump "
            "files in the directory.",
        )

    def handle(self, *args, output_dir=None, keep=None, **options):
        try:
            backup_create(output_dir, keep=keep, say=self.stdout.write, warn=self.stderr.write)
        except PgError as exc:
            raise CommandError(str(exc)) from exc
