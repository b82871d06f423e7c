from django.apps import AppConfig
from django.db.models.signals import post_migrate, pre_migrate


class HostingConfig(AppConfig):
    name = "hosting"
    verbose_name = "Hosting"

    def ready(self):
        from django.core.checks import Tags, register

        from hosting import migration_safety, tenant  # noqa: F401 (tenant: its receivers)
        from hosting.database.check import connection_budget_check

        # A database check: `check --database default` and `migrate` run it.
        register(connection_budget_check, Tags.database)

        # Once per `migrate` run (the signals go out for every app; these for this one).
        pre_migrate.connect(migration_safety.lock_timeout_set, sender=self)
        post_migrate.connect(migration_safety.lock_timeout_reset, sender=self)
