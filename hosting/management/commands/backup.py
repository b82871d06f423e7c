"""`manage.py backup`: a verified pg_dump archive of the DATABASE_URL database
(hosting/database/backup.py); `--verify` also proves it restores
(hosting/database/verify.py)."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from hosting.database.backup import backup_run, backup_verify_file
from hosting.database.pg import PgError


class Command(BaseCommand):
    help = (
        "Back up the DATABASE_URL database with pg_dump (custom format, no owners or "
        "privileges) into BACKUP_DIR as hosting-YYYYmmdd-HHMMSS.dump (UTC). The archive is "
        "written under a temporary name, checked with `pg_restore --list`, and only then "
        "given its final name: a failed backup leaves no file behind. --verify restores "
        "the new archive into a scratch database (hosting_verify_<random>, dropped "
        "afterwards) and compares every public table's row count with the dump's own "
        "snapshot; --verify-only FILE does the restore check on an existing archive. "
        "Every run is recorded as a BackupRun (admin: Hosting > Backup runs)."
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
        parser.add_argument(
            "--verify",
            action="store_true",
            help="Restore the new archive into a scratch database on the same server "
            "(needs CREATEDB) and compare every public table's exact row count with the "
            "counts read in the snapshot pg_dump used. A mismatch or a restore error "
            "fails the backup (the archive is kept and recorded as failed verification).",
        )
        parser.add_argument(
            "--verify-only",
            type=Path,
            metavar="FILE",
            help="Make no backup: restore FILE into a scratch database and count its "
            "rows (compared with the counts recorded when it was made, when known).",
        )

    def handle(self, *args, output_dir=None, keep=None, verify=False, verify_only=None, **options):
        try:
            if verify_only is not None:
                backup_verify_file(verify_only, say=self.stdout.write)
                return
            backup_run(
                output_dir, keep=keep, verify=verify, say=self.stdout.write, warn=self.stderr.write
            )
        except PgError as exc:
            raise CommandError(str(exc)) from exc
