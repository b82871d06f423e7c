"""Can we reach the database, and how fast (`manage.py check_db`)."""

from __future__ import annotations

import logging
import statistics
import time
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings
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
        budget = connection_budget(config)
        budget_line = budget.describe(server_max_connections(connection))
    return [
        f"Database: {target}",
        f"Server:   PostgreSQL {version}",
        f"Latency:  SELECT 1 x{runs}: min {min(timings):.2f} ms, "
        f"median {statistics.median(timings):.2f} ms",
        f"Pool:     {pool_settings(config)}",
        f"Connections: {budget_line}",
    ]


# procrastinate's worker keeps two connections besides its jobs': one listening for new
# jobs, one fetching them.
WORKER_OWN_CONNECTIONS = 2


@dataclass(frozen=True)
class ConnectionBudget:
    """The most connections the configured processes can open at once."""

    web_processes: int
    per_web_process: int
    worker_processes: int
    per_worker_process: int

    @property
    def total(self) -> int:
        return (
            self.web_processes * self.per_web_process
            + self.worker_processes * self.per_worker_process
        )

    def describe(self, max_connections: int | None) -> str:
        line = (
            f"web {self.web_processes} x {self.per_web_process} + worker "
            f"{self.worker_processes} x {self.per_worker_process} = {self.total}"
        )
        if max_connections is None:
            return line
        verdict = "fits" if self.fits(max_connections) else "EXCEEDS"
        return f"{line}; {verdict} the server's max_connections {max_connections}"

    def fits(self, max_connections: int) -> bool:
        return self.total <= max_connections


def connection_budget(config: dict) -> ConnectionBudget:
    """WEB_CONCURRENCY gunicorn workers, each with its pool (DB_POOL_MAX_SIZE, or one
    connection without a pool), and WORKER_PROCESSES workers, each with a connection
    per job (WORKER_CONCURRENCY) and procrastinate's own two."""
    pool = config.get("OPTIONS", {}).get("pool")
    per_web = pool.get("max_size", 4) if isinstance(pool, dict) else (4 if pool else 1)
    return ConnectionBudget(
        web_processes=settings.WEB_CONCURRENCY,
        per_web_process=per_web,
        worker_processes=settings.WORKER_PROCESSES,
        per_worker_process=settings.WORKER_CONCURRENCY + WORKER_OWN_CONNECTIONS,
    )


def server_max_connections(connection) -> int | None:
    """The server's max_connections less those kept for superusers."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('max_connections')::int"
            " - current_setting('superuser_reserved_connections')::int"
        )
        return cursor.fetchone()[0]


def connection_budget_check(app_configs=None, databases=None, **kwargs):
    """System check (database tag: `check --database default`, and `migrate`): warn
    when the processes can open more connections than the server accepts."""
    from django.core.checks import Warning

    if not databases or DEFAULT_DB_ALIAS not in databases:
        return []
    connection = connections[DEFAULT_DB_ALIAS]
    budget = connection_budget(connection.settings_dict)
    try:
        max_connections = server_max_connections(connection)
    except Exception:  # unreachable: other checks and commands say so
        return []
    if budget.fits(max_connections):
        return []
    return [
        Warning(
            f"The configured processes can open {budget.total} database connections "
            f"({budget.describe(max_connections)}).",
            hint="Lower WEB_CONCURRENCY, DB_POOL_MAX_SIZE, WORKER_PROCESSES or "
            "WORKER_CONCURRENCY, raise the server's max_connections, or put PgBouncer "
            "in front (DB_POOL_MAX_SIZE=0).",
            id="hosting.W001",
        )
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
