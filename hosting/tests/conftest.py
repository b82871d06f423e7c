"""Fixtures the operator tests share: empty databases beside the test database."""

import subprocess
import uuid

import pytest
from django.db import connection

from hosting.database import pg
from hosting.testing import database_url, local_superuser


@pytest.fixture
def scratch_databases():
    """Makes empty databases next to the test database (returning their URLs), dropped
    afterwards (by the local cluster's superuser, who may end any session still in one)."""
    env = pg.subprocess_env(pg.libpq_env())
    admin_env = {**env, "PGUSER": local_superuser() or env.get("PGUSER", "")}
    made = []

    def psql(statement, *, as_admin=False):
        subprocess.run(
            [pg.pg_binary("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "postgres"],
            input=statement,
            env=admin_env if as_admin else env,
            check=True,
            capture_output=True,
            text=True,
        )

    def make() -> str:
        name = f"{connection.settings_dict['NAME'][:40]}_scratch_{uuid.uuid4().hex[:8]}"
        psql(f'CREATE DATABASE "{name}"')
        made.append(name)
        return database_url(name)

    try:
        yield make
    finally:
        for name in made:
            psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', as_admin=True)


@pytest.fixture
def scratch_database_url(scratch_databases):
    """An empty database next to the test database, dropped afterwards."""
    return scratch_databases()
