"""Running PostgreSQL's client programs (pg_dump, pg_restore, psql) against the databases
Django knows about, and saying which database that is.

The connection parameters come from Django's own `get_connection_params()`, so what a
subprocess connects to is exactly what the ORM connects to: a Unix-socket directory in
HOST, a port, a password, `?sslmode=` and the other libpq options of DATABASE_URL.
They reach the subprocess as libpq environment variables, never on the command line,
where `ps` would show a password to every user of the host.
"""

from __future__ import annotations

import copy
import os
import subprocess

from django.db import connections
from django.db.utils import ConnectionHandler, load_backend

from hosting.database import programs

POSTGRESQL_ENGINES = ("django.db.backends.postgresql", "django.db.backends.postgresql_psycopg2")

# libpq connection parameter -> the environment variable libpq reads it from
# (https://www.postgresql.org/docs/current/libpq-envars.html). Parameters without a
# variable (keepalives and the like) do not matter to a dump or a restore.
LIBPQ_ENV_VARS = {
    "host": "PGHOST",
    "hostaddr": "PGHOSTADDR",
    "port": "PGPORT",
    "dbname": "PGDATABASE",
    "user": "PGUSER",
    "password": "PGPASSWORD",
    "passfile": "PGPASSFILE",
    "service": "PGSERVICE",
    "options": "PGOPTIONS",
    "application_name": "PGAPPNAME",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "sslmode": "PGSSLMODE",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcrl": "PGSSLCRL",
    "sslcrldir": "PGSSLCRLDIR",
    "sslsni": "PGSSLSNI",
    "sslcertmode": "PGSSLCERTMODE",
    "sslnegotiation": "PGSSLNEGOTIATION",
    "ssl_min_protocol_version": "PGSSLMINPROTOCOLVERSION",
    "ssl_max_protocol_version": "PGSSLMAXPROTOCOLVERSION",
    "requirepeer": "PGREQUIREPEER",
    "require_auth": "PGREQUIREAUTH",
    "channel_binding": "PGCHANNELBINDING",
    "gssencmode": "PGGSSENCMODE",
    "gssdelegation": "PGGSSDELEGATION",
    "krbsrvname": "PGKRBSRVNAME",
    "gsslib": "PGGSSLIB",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
    "load_balance_hosts": "PGLOADBALANCEHOSTS",
}


class PgError(Exception):
    """A database operation cannot be done: a client program is missing or fails, a
    database is not PostgreSQL or cannot be reached, a target refuses to be replaced. The
    message is one line, safe to show (never a password)."""


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (libpq's span several), or its type's name."""
    return " ".join(str(exc).split()) or type(exc).__name__


def database_wrapper(settings_dict: dict, alias: str = "pg-subprocess"):
    """A Django connection object (not yet connected) for a DATABASES-style dict, e.g.
    `environ.Env.db_url_config(url)`. The caller closes it after use. Pooling is turned
    off: a one-off connection for an operator command has no use for a pool."""
    config = copy.deepcopy(settings_dict)
    config.setdefault("OPTIONS", {}).pop("pool", None)
    config = ConnectionHandler().configure_settings({"default": config})["default"]
    if config["ENGINE"] not in POSTGRESQL_ENGINES:
        raise PgError(f"not a PostgreSQL database (ENGINE is {config['ENGINE']!r})")
    return load_backend(config["ENGINE"]).DatabaseWrapper(config, alias)


def params_env(conn_params: dict) -> dict[str, str]:
    """libpq environment variables for the output of `get_connection_params()`. Keys
    that are psycopg's, not libpq's (context, cursor_factory, prepare_threshold), are
    left out, and so is client_encoding, which Django forces to UTF8 for itself: the
    client programs choose their own (pg_dump: the database's encoding)."""
    env = {}
    for key, value in conn_params.items():
        var = LIBPQ_ENV_VARS.get(key)
        if var and value not in (None, ""):
            env[var] = str(value)
    return env


def libpq_env(alias: str = "default") -> dict[str, str]:
    """libpq environment variables for the database behind `connections[alias]`."""
    connection = connections[alias]
    if connection.vendor != "postgresql":
        raise PgError(f"database {alias!r} is not PostgreSQL ({connection.vendor})")
    return params_env(connection.get_connection_params())


def libpq_env_for(settings_dict: dict) -> dict[str, str]:
    """libpq environment variables for a DATABASES-style dict."""
    return params_env(database_wrapper(settings_dict).get_connection_params())


def subprocess_env(libpq: dict[str, str]) -> dict[str, str]:
    """The environment for a client program: ours, with the target's libpq variables
    on top (other PG* variables, e.g. PGSSLROOTCERT, apply as they do to the ORM)."""
    return {**os.environ, **libpq}


def describe(libpq: dict[str, str]) -> str:
    """`database "x" on host:port as user` for messages; never the password."""
    host = libpq.get("PGHOST") or libpq.get("PGHOSTADDR") or "the default socket"
    port = libpq.get("PGPORT")
    where = f"{host}:{port}" if port else host
    user = f" as {libpq['PGUSER']}" if libpq.get("PGUSER") else ""
    return f'database "{libpq.get("PGDATABASE", "?")}" on {where}{user}'


def pg_binary(name: str) -> str:
    """The path of a PostgreSQL client program (see `programs.find`). Raises PgError
    when there is none."""
    path = programs.find(name)
    if path is None:
        raise PgError(
            f"{name} not found on PATH or in {programs.SERVER_BIN_GLOB}; install the "
            "PostgreSQL client programs (Debian: apt-get install postgresql-client)"
        )
    return path


def stderr_tail(stderr: str | bytes | None, lines: int = 3, width: int = 400) -> str:
    """The last lines of a client program's stderr, joined into one line."""
    if isinstance(stderr, bytes):
        stderr = stderr.decode(errors="replace")
    kept = [line.strip() for line in (stderr or "").splitlines() if line.strip()][-lines:]
    text = " | ".join(kept)
    return text if len(text) <= width else "..." + text[-width:]


def run(command: list[str], *, failure: str, libpq: dict[str, str] | None = None):
    """Run a client program against the database in `libpq`. Raises PgError, starting
    with `failure` and ending with the tail of its stderr, when it cannot start or exits
    non-zero."""
    try:
        result = subprocess.run(
            command, env=subprocess_env(libpq or {}), capture_output=True, text=True, check=False
        )
    except OSError as exc:
        raise PgError(f"cannot run {command[0]}: {exc}") from exc
    if result.returncode != 0:
        raise PgError(
            f"{failure} (exit {result.returncode}): "
            f"{stderr_tail(result.stderr) or 'no error output'}"
        )
    return result
