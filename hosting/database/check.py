"""Can we reach the database, and how fast (`manage.py check_db`)."""

from __future__ import annotations

import logging
import statistics
import time
from contextlib import contextmanager

from django.db import DEFAULT_DB_ALIAS, connections

from hosting.database import pg
from hosting.database.pg import PgError, one_line


@contextmanager
def quiet_pool_warnings():
    """psycopg_pool logs a warning for every failed connection attempt; the one-line error
    says the same."""
    logger = logging.getLogger("psycopg.pool")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def database_check(runs: int = 5) -> list[str]:
    """Connect to the default database and time `runs` SELECT 1 round trips. Returns the
    report's lines: the database (never the password), the server version, the latency
    and the pool settings. Raises PgError with a one-line reason when it cannot connect."""
    if runs < 1:
        raise PgError("--runs must be at least 1")
    connection = connections[DEFAULT_DB_ALIAS]
    config = connection.settings_dict
    target = pg.describe(pg.libpq_env(DEFAULT_DB_ALIAS))
    with quiet_pool_warnings():
        try:
            with connection.cursor() as cursor:
                cursor.execute("SHOW server_version")
                (version,) = cursor.fetchone()
                timings = []
                for _ in range(runs):
                    started = time.perf_counter()
                    cursor.execute("SELECT 1")
                    cursor.fetchone()
                    timings.append((time.perf_counter() - started) * 1000)
        except Exception as exc:
            raise PgError(f"cannot reach {target}: {_diagnose(config, exc)}") from exc
    return [
        f"Database: {target}",
        f"Server:   PostgreSQL {version}",
        f"Latency:  SELECT 1 x{runs}: min {min(timings):.2f} ms, "
        f"median {statistics.median(timings):.2f} ms",
        f"Pool:     {pool_settings(config)}",
    ]


def pool_settings(config: dict) -> str:
    pool = config.get("OPTIONS", {}).get("pool")
    if not pool:
        return "pool off"
    if pool is True:
        return "on (psycopg_pool defaults)"
    keys = ("min_size", "max_size", "timeout")
    shown = [f"{key}={pool[key]}" for key in keys[:2] if key in pool]
    if "timeout" in pool:
        shown.append(f"timeout={pool['timeout']}s")
    shown += [f"{key}={value}" for key, value in pool.items() if key not in keys]
    return "on, " + " ".join(shown)


def _diagnose(config: dict, exc: BaseException) -> str:
    """With the pool on, a dead server shows up as "couldn't get a connection after 10
    sec"; one direct connection attempt gives the reason libpq saw."""
    reason = one_line(exc)
    if not config.get("OPTIONS", {}).get("pool"):
        return reason
    direct = None
    try:
        direct = pg.database_wrapper(config, alias="check-db-direct")
        direct.ensure_connection()
    except Exception as direct_exc:
        return f"{reason}; a direct connection says: {one_line(direct_exc)}"
    finally:
        if direct is not None:
            direct.close()
    return reason
