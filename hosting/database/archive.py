"""Verifying a pg_dump archive: what `backup` checks before it names a new archive, and
what `restore` checks before it touches a database."""

from __future__ import annotations

import os
from pathlib import Path

from hosting.database import pg
from hosting.database.pg import PgError

CUSTOM_FORMAT_MAGIC = b"PGDMP"


def archive_entries(path: str | os.PathLike) -> int:
    """The number of table-of-contents entries of a pg_dump archive, read with
    `pg_restore --list`. Raises PgError when it cannot be read or lists nothing."""
    result = pg.run(
        [pg.pg_binary("pg_restore"), "--list", str(path)],
        failure=f"pg_restore --list cannot read {path}",
    )
    # The listing's header and comments start with ';'.
    entries = sum(
        1 for line in result.stdout.splitlines() if line.strip() and not line.startswith(";")
    )
    if not entries:
        raise PgError(f"{path} has an empty table of contents")
    return entries


def archive_verify(path: Path) -> int:
    """The file exists, is readable, is a custom-format archive and pg_restore can list
    it: its number of entries. Raises PgError saying which of these fails."""
    if not path.is_file():
        raise PgError(f"no such backup file: {path}")
    try:
        with path.open("rb") as archive:
            magic = archive.read(len(CUSTOM_FORMAT_MAGIC))
    except OSError as exc:
        raise PgError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if magic != CUSTOM_FORMAT_MAGIC:
        raise PgError(f"{path} is not a pg_dump custom-format archive")
    return archive_entries(path)
