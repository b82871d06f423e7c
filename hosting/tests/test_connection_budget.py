"""Connection settings: DATABASE_URL or its parts, and a connection budget that adds up
what the configured processes can open against the server's max_connections."""

import pytest
from django.core.checks import run_checks
from django.core.management import call_command

from hosting.database.check import connection_budget, connection_budget_check
from hosting.tests.test_settings import settings_for


def test_the_parts_make_the_connection_when_database_url_is_unset():
    db = settings_for(
        DB_HOST="db.internal",
        DB_PORT="6432",
        DB_NAME="prod",
        DB_USER="app",
        DB_PASSWORD="s3cret",
        DB_SSLMODE="verify-full",
        DB_SSLROOTCERT="/etc/ssl/db-ca.pem",
    )["db"]
    assert (db["HOST"], db["PORT"], db["NAME"], db["USER"], db["PASSWORD"]) == (
        "db.internal",
        6432,
        "prod",
        "app",
        "s3cret",
    )
    assert (db["OPTIONS"]["sslmode"], db["OPTIONS"]["sslrootcert"]) == (
        "verify-full",
        "/etc/ssl/db-ca.pem",
    )
    assert db["OPTIONS"]["connect_timeout"] == 3


def test_database_url_wins_over_the_parts():
    db = settings_for(DATABASE_URL="postgresql://u@url.internal/fromurl", DB_HOST="parts")["db"]
    assert (db["HOST"], db["NAME"]) == ("url.internal", "fromurl")


def test_the_budget_adds_up_web_and_worker_processes(settings):
    settings.WEB_CONCURRENCY, settings.WORKER_PROCESSES, settings.WORKER_CONCURRENCY = 4, 2, 5
    budget = connection_budget({"OPTIONS": {"pool": {"max_size": 10}}})
    assert budget.total == 4 * 10 + 2 * (5 + 2)
    assert (
        budget.describe(100)
        == "web 4 x 10 + worker 2 x 7 = 54; fits the server's max_connections 100"
    )
    assert connection_budget({"OPTIONS": {}}).per_web_process == 1  # no pool: one each


@pytest.mark.django_db
def test_check_db_prints_the_budget_against_max_connections(capsys):
    call_command("check_db", "--runs", "1")
    out = capsys.readouterr().out
    assert "Connections: web 3 x " in out and "fits the server's max_connections" in out


@pytest.mark.django_db
def test_a_system_check_warns_when_the_processes_can_open_too_many(settings):
    assert connection_budget_check(databases=["default"]) == []
    settings.WEB_CONCURRENCY = 500
    (warning,) = connection_budget_check(databases=["default"])
    assert warning.id == "hosting.W001"
    assert "EXCEEDS the server's max_connections" in warning.msg
    # Registered: `check --database default` and `migrate` run it.
    assert "hosting.W001" in [m.id for m in run_checks(databases=["default"])]
