"""The database cache's table (login rate limits and lockouts), made by `migrate` like
every other table, so a database set up with `migrate` alone serves logins. Django's own
`createcachetable` does the work: the same table it always made, and nothing when the
table is already there (databases set up before this migration)."""

from django.core.management import call_command
from django.db import migrations


def cache_table_create(apps, schema_editor):
    call_command("createcachetable", database=schema_editor.connection.alias, verbosity=0)


def cache_table_drop(apps, schema_editor):
    schema_editor.execute("DROP TABLE IF EXISTS django_cache")


class Migration(migrations.Migration):
    initial = True
    dependencies = []
    operations = [migrations.RunPython(cache_table_create, cache_table_drop)]
