"""`manage.py check_rls`: every tenant table is behind row-level security
(hosting/database/rls.py). `make lint` runs it, so a new table with customers' rows
cannot ship without its policy."""

from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from hosting.database.rls import EXEMPT, role_bypasses, table_states


class Command(BaseCommand):
    help = (
        "List every table whose rows belong to a customer (a foreign key to the user, or "
        "to such a table) with its row-level security state. Exits 1 when one lacks an "
        "enabled, forced tenant policy, or when the app's role bypasses row-level security."
    )

    def handle(self, *args, **options):
        states = table_states(connection)
        width = max(len(state.table) for state in states)
        failures = []
        for state in states:
            problem = state.problem
            verdict = problem or "enabled, forced, policy"
            self.stdout.write(f"{state.table:<{width}}  {verdict:<28}  owner: {state.owner}")
            if problem:
                failures.append(f"{state.table}: {problem}")
        for table, reason in EXEMPT.items():
            self.stdout.write(f"{table:<{width}}  {'exempt':<28}  {reason}")
        bypass = role_bypasses(connection)
        if bypass:
            failures.append(f"row-level security is not enforced: {bypass}")
        if failures:
            raise CommandError(
                "Tenant tables without row-level security:\n  "
                + "\n  ".join(failures)
                + "\nAdd the policy in a migration: hosting.tenant.rls_enable_sql(table).",
                returncode=1,
            )
        self.stdout.write(
            self.style.SUCCESS(f"OK: {len(states)} tenant tables behind row-level security")
        )
