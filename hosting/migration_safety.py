"""Migrations that are safe to run on a live site.

Two guards, both about `manage.py migrate` while the old code is still serving:

- **A lock timeout.** Every migration runs with `SET lock_timeout` on its connection
  (`pre_migrate`, connected in `hosting.apps`), so an ALTER that waits behind a long
  transaction fails within `LOCK_TIMEOUT` instead of queueing every request on that table
  behind itself. Run it again when the blocker is gone.
- **A lint for backward-incompatible changes** (`python -m hosting.migration_safety`,
  run by `make lint`): django-migration-linter reads the SQL of every migration that is
  not in `BASELINE` (the ones that have shipped) and fails on what the running code
  cannot survive: dropped or renamed columns and tables, NOT NULL without a default,
  column type changes, new unique constraints on existing tables, and irreversible
  RunPython / RunSQL. It is driven through its Python API, so it needs no entry in
  INSTALLED_APPS; a migration that really must do one of these (after a release that
  stopped using the column, say) adds `django_migration_linter.IgnoreMigration()` to its
  operations, which a reviewer then sees.
"""

from __future__ import annotations

import sys

# How long a migration's statement may wait for a lock. Should become a setting
# (MIGRATION_LOCK_TIMEOUT, documented in .env.example); a module constant until then.
LOCK_TIMEOUT = "5s"

# The apps whose migrations are ours to lint (third-party apps ship their own).
PROJECT_APPS = ("hosting", "accounts", "billing", "servers", "support")

# Migrations that have shipped: they ran on every database already, so they are exempt.
# Add nothing here by hand for a new migration; fix it or mark it IgnoreMigration().
BASELINE = frozenset(
    {
        ("accounts", "0001_initial"),
        ("accounts", "0002_audit_append_only"),
        ("accounts", "0003_audit_server_password_reveal"),
        ("accounts", "0004_audit_ticket_status"),
        ("accounts", "0005_audit_payment_dispute"),
        ("accounts", "0006_payment_overdue_banner"),
        ("billing", "0001_initial"),
        ("billing", "0002_seed_plans"),
        ("billing", "0003_purchase_flow"),
        ("billing", "0004_subscriptions"),
        ("billing", "0005_simulated_renewals"),
        ("hosting", "0001_cache_table"),
        ("hosting", "0002_backup_runs"),
        ("servers", "0001_initial"),
        ("servers", "0002_domain_messages"),
        ("servers", "0003_purchase_flow"),
        ("servers", "0004_server_panel"),
        ("servers", "0005_domains_and_tls_ask"),
        ("servers", "0006_ticket_events"),
        ("servers", "0007_subscriptions"),
        ("support", "0001_initial"),
        ("support", "0002_ticket_activity"),
        ("support", "0003_ticket_mail_search"),
    }
)

# Linter warnings that fail the lint like its errors do: a migration that cannot be
# reversed cannot be rolled back with the release that brought it.
WARNINGS_AS_ERRORS = ("RUNPYTHON_REVERSIBLE", "RUNSQL_REVERSIBLE")


def lock_timeout_set(sender=None, *, using="default", **kwargs) -> None:
    """`pre_migrate` receiver: the session's lock timeout for the migrations that follow
    on this connection (session level, so it holds in every migration's transaction)."""
    from django.db import connections

    connection = connections[using]
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'")


def lock_timeout_reset(sender=None, *, using="default", **kwargs) -> None:
    """`post_migrate` receiver: the server's lock timeout again, so a connection that
    outlives the migrations (a test run's, a pooled one) does not keep the short one."""
    from django.db import connections

    connection = connections[using]
    if connection.vendor != "postgresql" or connection.connection is None:
        return
    with connection.cursor() as cursor:
        cursor.execute("RESET lock_timeout")


def linter(*, extra_migrations=(), quiet: bool = False):
    """A django-migration-linter for the project's migrations past `BASELINE`, with
    `extra_migrations` (Migration objects not on disk, for tests) added to the graph."""
    from django.db import connection
    from django_migration_linter import MigrationLinter

    class BaselineLinter(MigrationLinter):
        def should_ignore_migration(self, app_label, migration_name, *args, **kwargs):
            return (app_label, migration_name) in BASELINE or super().should_ignore_migration(
                app_label, migration_name, *args, **kwargs
            )

        @staticmethod
        def get_migration_hash(app_label, migration_name):
            return ""  # only its cache uses it, and the cache is off

        def get_sql(self, app_label, migration_name):
            # What `sqlmigrate` prints, from this linter's own loader (which also holds
            # migrations that exist only in memory).
            loader = self.migration_loader
            migration = loader.graph.nodes[(app_label, migration_name)]
            statements = loader.collect_sql([(migration, False)])
            if migration.atomic and connection.features.can_rollback_ddl:
                statements = ["BEGIN;", *statements, "COMMIT;"]
            return "\n".join(statements).splitlines()

    lint = BaselineLinter(
        include_apps=PROJECT_APPS,
        no_cache=True,
        warnings_as_errors_tests=WARNINGS_AS_ERRORS,
        quiet=["ok", "ignore"] if quiet else [],
    )
    loader = lint.migration_loader
    for migration in extra_migrations:
        key = (migration.app_label, migration.name)
        loader.disk_migrations[key] = migration
        loader.graph.add_node(key, migration)
        for parent in migration.dependencies:
            loader.graph.add_dependency(migration, key, parent)
    loader.graph.validate_consistency()
    return lint


def lint(*, extra_migrations=(), quiet: bool = False) -> bool:
    """Lints every project migration past the baseline, printing the findings; True when
    none is backward-incompatible."""
    lint = linter(extra_migrations=extra_migrations, quiet=quiet)
    lint.lint_all_migrations()
    lint.print_summary()
    return not lint.has_errors


def main() -> int:
    import os

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hosting.settings")
    django.setup()
    return 0 if lint(quiet=True) else 1


if __name__ == "__main__":
    sys.exit(main())
