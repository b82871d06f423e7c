"""A verified pg_dump archive of the DATABASE_URL database (`manage.py backup`).

The archive is written under a temporary name, checked with `pg_restore --list`, and only
then given its final name, hosting-YYYYmmdd-HHMMSS.dump (UTC): a failed backup leaves no
file behind.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings

from hosting.database import pg
from hosting.database.archive import archive_verify
from hosting.database.pg import PgError

BACKUP_NAME = re.compile(r"^hosting-(?P<stamp>\d{8}-\d{6})(?:-(?P<n>\d+))?\.dump$")


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{size} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def backup_sort_key(path: Path) -> tuple[str, int]:
    match = BACKUP_NAME.match(path.name)
    return (match["stamp"], int(match["n"] or 0)) if match else ("", 0)


def backup_create(
    output_dir: Path | None = None,
    *,
    keep: int | None = None,
    say: Callable[[str], object] = print,
    warn: Callable[[str], object] = print,
) -> Path:
    """Dump the default database into `output_dir` (default: settings.BACKUP_DIR, created
    0700 when missing), verify the archive, name it, and with `keep` delete all but the
    newest `keep` archives there. Returns the archive's path; progress goes to `say`, a
    directory open to others is reported to `warn`. Raises PgError."""
    if keep is not None and keep < 1:
        raise PgError("--keep must be at least 1 (the backup just made is kept)")
    directory = Path(output_dir or settings.BACKUP_DIR).expanduser().absolute()
    pg_dump = pg.pg_binary("pg_dump")
    pg.pg_binary("pg_restore")  # missing: fail before dumping, not after
    libpq = pg.libpq_env()
    _prepare_directory(directory, warn)

    started = time.monotonic()
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    try:
        # mkstemp creates the file 0600 and pg_dump keeps that mode: a dump holds
        # password hashes and encrypted secrets.
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".hosting-{stamp}-", suffix=".dump.partial", dir=directory
        )
        os.close(fd)
    except OSError as exc:
        raise PgError(f"cannot write to {directory}: {exc.strerror or exc}") from exc
    tmp = Path(tmp_name)
    try:
        _dump(pg_dump, tmp, libpq)
        try:
            entries = archive_verify(tmp)
        except PgError as exc:
            raise PgError(f"the new archive failed verification: {exc}") from exc
        final = _publish(tmp, directory, stamp)
    finally:
        tmp.unlink(missing_ok=True)

    size = final.stat().st_size
    say(
        f"Backed up {pg.describe(libpq)} to {final} "
        f"({human_size(size)}, {size} bytes, {entries} archive entries) "
        f"in {time.monotonic() - started:.1f}s"
    )
    if keep is not None:
        _prune(directory, keep, say)
    return final


def _prepare_directory(directory: Path, warn: Callable[[str], object]) -> None:
    try:
        if not directory.exists():
            directory.mkdir(mode=0o700, parents=True)
            directory.chmod(0o700)  # mkdir's mode is filtered by the umask
        elif not directory.is_dir():
            raise PgError(f"{directory} exists and is not a directory")
        mode = stat.S_IMODE(directory.stat().st_mode)
    except OSError as exc:
        raise PgError(f"cannot create backup directory {directory}: {exc.strerror or exc}") from exc
    if mode & 0o077:
        warn(
            f"warning: {directory} is open to other users (mode {mode:04o}); "
            "backups hold password hashes and encrypted secrets: chmod 700 it"
        )


def _dump(pg_dump: str, tmp: Path, libpq: dict[str, str]) -> None:
    command = [pg_dump, "--format=custom", "--no-owner", "--no-privileges", f"--file={tmp}"]
    pg.run(command, libpq=libpq, failure=f"pg_dump of {pg.describe(libpq)} failed")
    try:
        # On disk before it gets its final name: a crash leaves the old backups, never a
        # truncated file that looks complete.
        with tmp.open("rb") as dumped:
            os.fsync(dumped.fileno())
        empty = tmp.stat().st_size == 0
    except OSError as exc:
        raise PgError(f"cannot read back {tmp}: {exc.strerror or exc}") from exc
    if empty:
        raise PgError(f"pg_dump of {pg.describe(libpq)} wrote an empty file")


def _publish(tmp: Path, directory: Path, stamp: str) -> Path:
    """Give the verified archive its final name without replacing an existing one (two
    backups within a second get -1, -2, ... suffixes)."""
    for n in range(1000):
        final = directory / (f"hosting-{stamp}.dump" if n == 0 else f"hosting-{stamp}-{n}.dump")
        try:
            os.link(tmp, final)  # fails if `final` exists: no race with another run
        except FileExistsError:
            continue
        except OSError as exc:
            # A filesystem without hard links: the check-then-rename fallback.
            if final.exists():
                continue
            try:
                os.rename(tmp, final)
            except OSError:
                raise PgError(f"cannot name the backup {final}: {exc.strerror or exc}") from exc
        _fsync_dir(directory)
        return final
    raise PgError(f"too many backups named hosting-{stamp}-*.dump in {directory}")


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _prune(directory: Path, keep: int, say: Callable[[str], object]) -> None:
    # Only names backup_create writes; anything else in the directory is left alone.
    backups = sorted(
        (path for path in directory.glob("hosting-*.dump") if BACKUP_NAME.match(path.name)),
        key=backup_sort_key,
    )
    failed = []
    for path in backups[:-keep]:
        try:
            path.unlink()
        except OSError as exc:
            failed.append(f"{path.name}: {exc.strerror or exc}")
        else:
            say(f"Deleted old backup {path}")
    if failed:
        raise PgError(f"backup written, but pruning failed: {'; '.join(failed)}")
    say(f"Kept the newest {min(keep, len(backups))} backup(s) in {directory}")
