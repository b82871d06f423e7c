"""`manage.py check_db`: can we reach the database, and how fast."""

from __future__ import annotations

import logging
import statistics
import time
from contextlib import contextmanager

from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, connections

from hosting import pg


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


@contextmanager
def quiet_pool_warnings():
    """psycopg_pool logs a warning for every failed connection attempt; the command's
    own one-line error says the same."""
    logger = logging.getLogger("psycopg.pool")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


class Command(BaseCommand):
    help = (
        "Connect to the default database and print the server version, the round-trip "
        "latency of SELECT 1, the database name and host (never the password) and the "
        "connection pool settings. Exits 1 with a one-line reason when it cannot connect."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--runs", type=int, default=5, help="SELECT 1 round trips to time (default 5)."
        )

    def handle(self, *args, runs=5, **options):
        if runs < 1:
            raise CommandError("--runs must be at least 1")
        with quiet_pool_warnings():
            self._check(runs)

    def _check(self, runs: int) -> None:
        connection = connections[DEFAULT_DB_ALIAS]
        config = connection.settings_dict
        target = self._describe(config)
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
            raise CommandError(
                f"cannot reach {target}: {self._diagnose(config, exc)}", returncode=1
            ) from exc

        self.stdout.write(f"Database: {target}")
        self.stdout.write(f"Server:   PostgreSQL {version}")
        self.stdout.write(
            f"Latency:  SELECT 1 x{runs}: min {min(timings):.2f} ms, "
            f"median {statistics.median(timings):.2f} ms"
        )
        self.stdout.write(f"Pool:     {self._pool(config)}")
        self.stdout.write(self.style.SUCCESS("OK"))

    @staticmethod
    def _describe(config: dict) -> str:
        host = config.get("HOST") or "the default socket"
        port = config.get("PORT")
        where = f"{host}:{port}" if port else host
        user = f" as {config['USER']}" if config.get("USER") else ""
        return f'database "{config.get("NAME")}" on {where}{user}'

    @staticmethod
    def _pool(config: dict) -> str:
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

    @staticmethod
    def _diagnose(config: dict, exc: BaseException) -> str:
        """With the pool on, a dead server shows up as "couldn't get a connection after
        10 sec"; one direct connection attempt gives the reason libpq saw."""
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
