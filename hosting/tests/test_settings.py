"""Settings are read from the environment; each case runs in a fresh interpreter."""

import json

import pytest

from hosting.testing import run_python

PRINT_SETTINGS = """
import json, django
from django.conf import settings
django.setup()
db = settings.DATABASES["default"]
keys = ("ENGINE", "NAME", "USER", "PASSWORD", "HOST", "PORT", "OPTIONS", "CONN_HEALTH_CHECKS")
print(json.dumps({"db": {k: db.get(k) for k in keys}, "debug": settings.DEBUG,
    "hsts": settings.SECURE_HSTS_SECONDS}, default=lambda value: value.__qualname__))
"""


def load_settings(**environ):
    env = {
        "PATH": "/usr/bin:/bin",
        "ENV_FILE": "/dev/null",  # ignore the developer's .env
        "DJANGO_SETTINGS_MODULE": "hosting.settings",
        "FIELD_ENCRYPTION_KEYS": "",
        **environ,
    }
    return run_python("-c", PRINT_SETTINGS, env=env)


def settings_for(**environ):
    result = load_settings(SECRET_KEY="x" * 50, **environ)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("scheme", ["postgres", "postgresql"])
def test_database_url_both_schemes(scheme):
    db = settings_for(DATABASE_URL=f"{scheme}://app:s3cret@db.internal:6543/hosting_prod")["db"]
    assert db["ENGINE"] == "django.db.backends.postgresql"
    assert (db["NAME"], db["USER"], db["PASSWORD"], db["HOST"], db["PORT"]) == (
        "hosting_prod",
        "app",
        "s3cret",
        "db.internal",
        6543,
    )


def test_sslmode_passes_through_and_pool_is_configured():
    db = settings_for(
        DATABASE_URL="postgresql://app:pw@db.internal/hosting?sslmode=require",
        DB_POOL_MIN_SIZE="2",
        DB_POOL_MAX_SIZE="7",
    )["db"]
    assert db["OPTIONS"]["sslmode"] == "require"
    # A request waits DB_CONNECT_TIMEOUT for a connection, as libpq does for the server.
    pool = db["OPTIONS"]["pool"]
    assert {key: pool[key] for key in ("min_size", "max_size", "timeout")} == {
        "min_size": 2,
        "max_size": 7,
        "timeout": 3,
    }
    assert "check" not in pool  # Django adds psycopg's check from CONN_HEALTH_CHECKS
    assert db["OPTIONS"]["connect_timeout"] == 3
    assert db["CONN_HEALTH_CHECKS"] is True


def test_db_connect_timeout_reaches_libpq_and_the_pool():
    db = settings_for(DATABASE_URL="postgresql://a@h/d", DB_CONNECT_TIMEOUT="5")["db"]
    assert (db["OPTIONS"]["connect_timeout"], db["OPTIONS"]["pool"]["timeout"]) == (5, 5)
    db = settings_for(DATABASE_URL="postgresql://a@h/d", DB_POOL_TIMEOUT="9")["db"]
    assert (db["OPTIONS"]["connect_timeout"], db["OPTIONS"]["pool"]["timeout"]) == (3, 9.0)


def test_pool_can_be_turned_off():
    db = settings_for(DATABASE_URL="postgresql://a@h/d", DB_POOL_MAX_SIZE="0")["db"]
    assert "pool" not in db.get("OPTIONS", {})


def test_without_database_url_the_local_cluster_is_used():
    from hosting.database import localdb

    db = settings_for()["db"]
    assert db["HOST"] == str(localdb.data_dir())
    assert db["NAME"] == "hosting"


def test_secret_key_required_when_debug_off():
    result = load_settings(DEBUG="off")
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_debug_off_unless_set():
    assert settings_for()["debug"] is False
    assert settings_for()["hsts"] == 31536000
    assert settings_for(DEBUG="on")["debug"] is True
