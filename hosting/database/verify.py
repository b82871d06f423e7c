"""Proving that a `backup` archive restores: `manage.py backup --verify` and
`manage.py backup --verify-only FILE`.

The archive is restored into a scratch database on the same server
(`hosting_verify_<random>`, made from template0 with the source's encoding and locale)
with `pg_restore --no-owner --no-privileges --exit-on-error`, the exact row count of every
public table there is compared with the counts the dump saw, and the scratch database is
dropped (`WITH (FORCE)`) whatever happened.

Honest counts under concurrent writes: `snapshot_open()` starts a REPEATABLE READ, READ
ONLY transaction on a connection of its own and exports its snapshot
(`pg_export_snapshot()`); the row counts are read in that transaction and pg_dump runs
with `--snapshot=<id>`, so both see exactly the same committed rows, however many are
written meanwhile. A mismatch therefore means the archive lost or gained rows, never that
the site was busy.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from django.db import connections
from psycopg import sql
from psycopg.conninfo import make_conninfo

from hosting.database import pg
from hosting.database.archive import archive_verify
from hosting.database.pg import PgError, one_line

SCRATCH_PREFIX = "hosting_verify_"

PUBLIC_TABLES = (
    "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY c.relname"
)


@dataclass
class Snapshot:
    """An exported snapshot held open, and the row counts of the public tables in it."""

    snapshot_id: str
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class VerifyResult:
    tables: int
    rows: int
    compared: bool  # False: no source counts to compare with (an existing file)
    seconds: float


def _connect(database: str | None = None, alias: str = "backup-verify"):
    """A new connection (autocommit) to the default database's server: to the default
    database itself, or to `database`. The caller closes it."""
    config = dict(connections["default"].settings_dict)
    if database is not None:
        config["NAME"] = database
    wrapper = pg.database_wrapper(config, alias=alias)
    try:
        wrapper.ensure_connection()
    except Exception as exc:
        wrapper.close()
        raise PgError(f"cannot connect to the database server: {one_line(exc)}") from exc
    return wrapper


def _count_rows(raw) -> dict[str, int]:
    """Exact row counts of the public tables on a raw psycopg connection."""
    counts = {}
    with raw.cursor() as cursor:
        cursor.execute(PUBLIC_TABLES)
        names = [name for (name,) in cursor.fetchall()]
        for name in names:
            cursor.execute(
                sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("public", name))
            )
            counts[name] = cursor.fetchone()[0]
    return counts


@contextmanager
def snapshot_open():
    """Yield a Snapshot of the default database: its id for `pg_dump --snapshot` and the
    row counts read in it. The transaction stays open (so the snapshot stays importable)
    until the block ends."""
    wrapper = _connect(alias="backup-snapshot")
    try:
        raw = wrapper.connection
        try:
            raw.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            snapshot_id = raw.execute("SELECT pg_export_snapshot()").fetchone()[0]
            counts = _count_rows(raw)
        except Exception as exc:
            raise PgError(f"cannot take a snapshot of the database: {one_line(exc)}") from exc
        yield Snapshot(snapshot_id, counts)
    finally:
        # Closing the connection ends the read-only transaction, and the snapshot with it.
        wrapper.close()


def _scratch_create(admin) -> str:
    """CREATE DATABASE hosting_verify_<random> like the source (template0, its encoding
    and locale). Returns the name."""
    name = f"{SCRATCH_PREFIX}{secrets.token_hex(6)}"
    raw = admin.connection
    row = raw.execute(
        "SELECT pg_encoding_to_char(encoding), datcollate, datctype, to_jsonb(d)::text "
        "FROM pg_database d WHERE datname = current_database()"
    ).fetchone()
    encoding, collate, ctype, details = row
    details = json.loads(details)
    statement = sql.SQL(
        "CREATE DATABASE {} TEMPLATE template0 ENCODING {} LC_COLLATE {} LC_CTYPE {}"
    ).format(sql.Identifier(name), sql.Literal(encoding), sql.Literal(collate), sql.Literal(ctype))
    # ICU databases (PostgreSQL 15+): the same provider and locale (PG 17 renamed the
    # column to datlocale).
    icu_locale = details.get("daticulocale") or details.get("datlocale")
    if details.get("datlocprovider") == "i" and icu_locale:
        statement += sql.SQL(" LOCALE_PROVIDER icu ICU_LOCALE {}").format(sql.Literal(icu_locale))
    try:
        raw.execute(statement)
    except Exception as exc:
        raise PgError(
            f"cannot create the scratch database {name} (the database user needs "
            f"CREATEDB): {one_line(exc)}"
        ) from exc
    return name


def _scratch_drop(admin, name: str) -> None:
    admin.connection.execute(
        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    )


def _compare(expected: dict[str, int], restored: dict[str, int]) -> list[str]:
    problems = []
    for name in sorted(expected.keys() | restored.keys()):
        if name not in restored:
            problems.append(f"{name}: {expected[name]} rows in the source, table missing")
        elif name not in expected:
            problems.append(f"{name}: not in the source, {restored[name]} rows restored")
        elif expected[name] != restored[name]:
            problems.append(
                f"{name}: {expected[name]} rows in the source, {restored[name]} restored"
            )
    return problems


def backup_verify(
    path: Path,
    *,
    expected: dict[str, int] | None = None,
    say: Callable[[str], object] = print,
) -> VerifyResult:
    """Restore the archive at `path` into a scratch database and count every public
    table's rows; with `expected` (the counts the dump saw), any difference fails. The
    scratch database is always dropped. Raises PgError naming the tables and counts."""
    path = Path(path).expanduser()
    try:
        archive_verify(path)
    except PgError as exc:
        raise PgError(f"verification of {path.name} failed: {exc}") from exc
    pg_restore = pg.pg_binary("pg_restore")
    started = time.monotonic()
    admin = _connect(alias="backup-verify-admin")
    try:
        name = _scratch_create(admin)
        try:
            libpq = {**pg.libpq_env(), "PGDATABASE": name}
            command = [
                pg_restore,
                "--no-owner",
                "--no-privileges",
                "--exit-on-error",
                "--dbname",
                make_conninfo("", dbname=name),
                str(path),
            ]
            pg.run(
                command,
                libpq=libpq,
                failure=f"verification of {path.name} failed: pg_restore into a scratch "
                "database failed",
            )
            scratch = _connect(name, alias="backup-verify-scratch")
            try:
                restored = _count_rows(scratch.connection)
            finally:
                scratch.close()
        finally:
            _scratch_drop(admin, name)
    finally:
        admin.close()

    if expected is not None:
        problems = _compare(expected, restored)
        if problems:
            shown = "; ".join(problems[:10]) + ("; ..." if len(problems) > 10 else "")
            raise PgError(
                f"verification of {path.name} failed: row counts differ in "
                f"{len(problems)} table(s): {shown}"
            )
    result = VerifyResult(
        tables=len(restored),
        rows=sum(restored.values()),
        compared=expected is not None,
        seconds=time.monotonic() - started,
    )
    how = "row counts match the dump's snapshot" if result.compared else "restored cleanly"
    say(
        f"Verified {path}: {how} ({result.tables} tables, {result.rows} rows) "
        f"in {result.seconds:.1f}s"
    )
    return result
