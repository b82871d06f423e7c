"""Migrations that are safe: every one reverses, a backward-incompatible new one fails the
lint, and a migration blocked behind a lock fails fast instead of stalling the site."""

import json
import time

import environ
import pytest
from django.db import migrations, models
from django.db.migrations.loader import MigrationLoader

from hosting import migration_safety
from hosting.database import pg
from hosting.testing import run_python, subprocess_env

TABLES = """
import json
import django
django.setup()
from django.db import connection
print(json.dumps(sorted(connection.introspection.table_names())))
"""


def connection_to(url):
    """A Django connection (not the test's) to the database at `url`; close it after."""
    return pg.database_wrapper(environ.Env.db_url_config(url))


def tables(env) -> set[str]:
    listed = run_python("-c", TABLES, env=env)
    assert listed.returncode == 0, listed.stderr
    return set(json.loads(listed.stdout.strip().splitlines()[-1]))


def migrate(env, *args):
    result = run_python("manage.py", "migrate", "--noinput", *args, env=env)
    assert result.returncode == 0, f"migrate {' '.join(args)}:\n{result.stderr}"
    return result


def project_apps_unmigrate_order() -> list[str]:
    """The apps with migrations, dependents first: the order to take them to zero in."""
    loader = MigrationLoader(None, ignore_no_migrations=True)
    plan = []
    for leaf in sorted(loader.graph.leaf_nodes()):
        for app_label, _name in loader.graph.forwards_plan(leaf):
            if app_label not in plan:
                plan.append(app_label)
    return [app for app in reversed(plan) if app in migration_safety.PROJECT_APPS]


@pytest.mark.django_db
def test_every_migration_reverses_to_zero_and_back(scratch_database_url):
    env = subprocess_env(DATABASE_URL=scratch_database_url)
    started = time.monotonic()
    migrate(env)
    first = tables(env)

    order = project_apps_unmigrate_order()
    assert set(order) == set(migration_safety.PROJECT_APPS)
    # Every project app to zero, dependents first, in one process (each `migrate <app>
    # zero` is the same code path `migrate` runs backwards; one process keeps it quick).
    script = (
        "import django; django.setup(); from django.core.management import call_command\n"
        f"for app in {order!r}:\n"
        "    call_command('migrate', app, 'zero', interactive=False, verbosity=0)\n"
    )
    unmigrated = run_python("-c", script, env=env)
    assert unmigrated.returncode == 0, unmigrated.stderr

    left = tables(env)
    ours = {t for t in first if t.split("_")[0] in migration_safety.PROJECT_APPS}
    ours.add("django_cache")  # hosting's, named by Django
    assert not (left & ours), f"tables left after zero: {sorted(left & ours)}"
    assert left < first

    migrate(env)
    assert tables(env) == first
    # Still the whole schema Django expects: nothing left to do, and the plans are back.
    check = run_python("manage.py", "migrate", "--check", env=env)
    assert check.returncode == 0, check.stdout + check.stderr
    plans = run_python(
        "-c",
        "import django; django.setup(); from billing.models import Plan; "
        "print(sorted(Plan.objects.values_list('slug', flat=True)))",
        env=env,
    )
    assert plans.stdout.strip() == "['basic', 'premium', 'pro']", plans.stderr
    assert time.monotonic() - started < 60


@pytest.mark.django_db
def test_the_lint_passes_on_the_shipped_migrations(capsys):
    assert migration_safety.lint(quiet=True)
    assert "Erroneous migrations: 0/" in capsys.readouterr().out


def new_migration(*operations, app_label="support"):
    """A migration that is not on disk: the next one after `app_label`'s latest."""
    loader = MigrationLoader(None, ignore_no_migrations=True)
    (latest,) = [name for app, name in loader.graph.leaf_nodes() if app == app_label]
    number = int(latest.split("_")[0]) + 1
    migration = migrations.Migration(f"{number:04d}_new", app_label)
    migration.dependencies = [(app_label, latest)]
    migration.operations = list(operations)
    return migration


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("operation", "finding"),
    [
        (migrations.RemoveField("ticket", "subject"), "DROPPING columns"),
        (migrations.DeleteModel("TicketMessage"), "DROPPING table"),
        (migrations.RenameField("ticket", "subject", "title"), "RENAMING columns"),
        (migrations.RenameModel("TicketMessage", "TicketReply"), "RENAMING tables"),
        (
            migrations.AddField("ticket", "weight", models.IntegerField(default=1)),
            "NOT NULL constraint on columns",
        ),
        (
            migrations.AlterField(
                "ticket",
                "server",
                models.ForeignKey("servers.Server", models.PROTECT, related_name="+"),
            ),
            "NOT NULL constraint on columns",
        ),
        (
            migrations.RunPython(lambda apps, schema_editor: None),
            "RunPython data migration is not reversible",
        ),
        (migrations.RunSQL("UPDATE support_ticket SET subject = ''"), "not reversible"),
    ],
    ids=lambda value: getattr(value, "describe", lambda: None)() or "",
)
def test_the_lint_fails_a_backward_incompatible_new_migration(operation, finding, capsys):
    assert not migration_safety.lint(extra_migrations=[new_migration(operation)], quiet=True)
    out = capsys.readouterr().out
    assert "(support, 0004_new)... ERR" in out
    assert finding in out


@pytest.mark.django_db
def test_the_lint_passes_a_compatible_new_migration(capsys):
    compatible = new_migration(
        migrations.AddField("ticket", "note", models.TextField(null=True, blank=True)),
        migrations.AddField("ticket", "weight", models.IntegerField(db_default=1)),
        migrations.RunPython(migrations.RunPython.noop, migrations.RunPython.noop),
    )
    assert migration_safety.lint(extra_migrations=[compatible], quiet=True)
    assert "Erroneous migrations: 0/" in capsys.readouterr().out


LOCK_TIMEOUT = """
import django
django.setup()
from django.core.management import call_command
from django.db import connection
call_command("migrate", "support", "0002", interactive=False, verbosity=0)
with connection.cursor() as cursor:
    cursor.execute("SHOW lock_timeout")
    print(cursor.fetchone()[0])
"""


@pytest.mark.django_db
def test_a_migration_blocked_by_a_lock_fails_fast(scratch_database_url):
    env = subprocess_env(DATABASE_URL=scratch_database_url)
    migrate(env)

    holder = connection_to(scratch_database_url)
    try:
        holder.set_autocommit(False)
        with holder.cursor() as cursor:
            cursor.execute("LOCK TABLE support_ticket IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        blocked = run_python("manage.py", "migrate", "--noinput", "support", "0002", env=env)
        took = time.monotonic() - started
        assert blocked.returncode != 0
        assert "lock timeout" in blocked.stderr, blocked.stderr
        assert took < 10 + 3, took  # 5 s to wait, and the process's own start
        holder.rollback()
    finally:
        holder.close()

    # The blocker gone, the same migration goes through, and the connection it leaves
    # has the server's lock timeout again.
    passed = run_python("-c", LOCK_TIMEOUT, env=env)
    assert passed.returncode == 0, passed.stderr
    assert passed.stdout.strip().splitlines()[-1] == "0"
    migrate(env)
    assert "support_ticket" in tables(env)


def test_the_lock_timeout_is_set_for_the_migrations_only(django_db_blocker):
    from django.db import connection

    with django_db_blocker.unblock(), connection.cursor() as cursor:
        migration_safety.lock_timeout_set(using=connection.alias)
        cursor.execute("SHOW lock_timeout")
        assert cursor.fetchone()[0] == migration_safety.LOCK_TIMEOUT
        migration_safety.lock_timeout_reset(using=connection.alias)
        cursor.execute("SHOW lock_timeout")
        assert cursor.fetchone()[0] == "0"


MAKE_A_DEPLOYMENT = """
import django
django.setup()
from billing.models import Plan
from servers.models import DeploymentLogLine
from servers.tests.factories import DeploymentFactory
deployment = DeploymentFactory(server__plan=Plan.objects.get(slug="pro"))
DeploymentLogLine.objects.bulk_create(
    DeploymentLogLine(deployment=deployment, number=number, text=text)
    for number, text in [(2, "done"), (1, "cloning")]
)
print(deployment.server.plan.slug)
"""

SQL = """
import json, sys
import django
django.setup()
from django.db import connection
with connection.cursor() as cursor:
    cursor.execute(sys.argv[1])
    print(json.dumps(cursor.fetchall()))
"""


def query(env, sql):
    result = run_python("-c", SQL, sql, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.django_db
def test_going_back_keeps_the_data_the_reverses_can_keep(scratch_database_url):
    env = subprocess_env(DATABASE_URL=scratch_database_url)
    migrate(env)
    made = run_python("-c", MAKE_A_DEPLOYMENT, env=env)
    assert made.returncode == 0, made.stderr
    plan = made.stdout.strip().splitlines()[-1]

    # Before the numbered log lines: the log is one text again, in order.
    migrate(env, "servers", "0003")
    assert query(env, "SELECT output FROM servers_deployment") == [["cloning\ndone"]]

    # Before the seeded plans: the ones nothing uses go, the server's plan stays.
    migrate(env, "billing", "0001")
    assert query(env, "SELECT slug FROM billing_plan") == [[plan]]

    migrate(env)
    assert query(env, "SELECT text FROM servers_deploymentlogline ORDER BY number") == [
        ["cloning"],
        ["done"],
    ]
    assert {slug for (slug,) in query(env, "SELECT slug FROM billing_plan")} == {
        "basic",
        "pro",
        "premium",
    }
