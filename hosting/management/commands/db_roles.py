"""`manage.py db_roles`: the owner role that runs migrate and the app role the web and
worker processes log in as (hosting/database/roles.py)."""

from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, connections

from hosting.database.pg import PgError
from hosting.database.roles import DEFAULT_APP, DEFAULT_OWNER, report_lines, roles_ensure


class Command(BaseCommand):
    help = (
        "Create, or bring up to date, two login roles for the DATABASE_URL database; run "
        "it as a superuser. The owner role owns every table, sequence, function and type "
        "of the public schema and runs migrate. The app role, for the web and worker "
        "processes, may only read and write rows (SELECT, INSERT, UPDATE, DELETE; "
        "sequences; EXECUTE on functions), also on tables later migrations make; it "
        "cannot create, alter, drop or truncate anything. Idempotent: a second run changes "
        "nothing. Prints what changed and the two DATABASE_URLs; a password is printed "
        "only when this run set it (a new role, or --reset-passwords)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--owner", default=DEFAULT_OWNER, help=f"Owner role (default {DEFAULT_OWNER})."
        )
        parser.add_argument("--app", default=DEFAULT_APP, help=f"App role (default {DEFAULT_APP}).")
        parser.add_argument(
            "--owner-password",
            help="The owner's password when it is created or reset, or to set it to this "
            "(default: a generated one). Visible to `ps`; prefer the generated one.",
        )
        parser.add_argument(
            "--app-password",
            help="The app role's password, like --owner-password.",
        )
        parser.add_argument(
            "--reset-passwords",
            action="store_true",
            help="Set new passwords for both roles (generated unless given) and print them.",
        )

    def handle(self, *args, **options):
        connection = connections[DEFAULT_DB_ALIAS]
        try:
            report = roles_ensure(
                connection,
                owner=options["owner"],
                app=options["app"],
                owner_password=options["owner_password"],
                app_password=options["app_password"],
                reset_passwords=options["reset_passwords"],
            )
        except PgError as exc:
            raise CommandError(str(exc), returncode=1) from exc
        for line in report_lines(report, connection):
            self.stdout.write(line)
        if not report.changed:
            self.stdout.write(self.style.SUCCESS("Nothing to change."))
