"""`migrate` is the whole set-up: a database made by it alone serves a login and says
ready; a table the app needs going missing makes `/readyz` say which."""

import json

import pytest

from hosting.testing import PAGES_PROBE, run_python, subprocess_env

READY_ONLY = """
import json
import django
django.setup()
from django.test import Client

ready = Client().get("/readyz")
print(json.dumps({"readyz": ready.status_code, "reason": ready.json().get("reason", "")}))
"""


def probe(env, script=PAGES_PROBE) -> dict:
    result = run_python("-c", script, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def psql_in(url, statement, env):
    result = run_python(
        "-c",
        "import django, sys; django.setup(); from django.db import connection; "
        f"connection.cursor().execute({statement!r})",
        env={**env, "DATABASE_URL": url},
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.django_db
def test_a_database_made_by_migrate_alone_logs_in_and_is_ready(scratch_database_url):
    # DEBUG on: pages name their static files without collectstatic's manifest (a fresh
    # clone has none).
    env = subprocess_env(
        DATABASE_URL=scratch_database_url, ALLOWED_HOSTS="testserver", DEBUG="true"
    )
    migrated = run_python("manage.py", "migrate", "--noinput", env=env)
    assert migrated.returncode == 0, migrated.stderr

    seen = probe(env)
    assert (seen["login"], seen["login_to"]) == (302, "/dashboard/"), seen
    assert seen["dashboard"] == 200
    assert (seen["readyz"], seen["reason"]) == (200, "")

    psql_in(scratch_database_url, "DROP TABLE django_cache", env)
    seen = probe(env, READY_ONLY)
    assert seen["readyz"] == 503
    assert seen["reason"] == "table(s) missing: django_cache"

    psql_in(scratch_database_url, "DROP TABLE procrastinate_periodic_defers CASCADE", env)
    seen = probe(env, READY_ONLY)
    assert seen["reason"] == "table(s) missing: django_cache, procrastinate_periodic_defers"
