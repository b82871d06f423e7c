"""A verified pg_dump archive of the DATABASE_URL database (`manage.py backup`).

The archive is written under a temporary name, checked with `pg_restore --list`, and only
then given its final name, hosting-YYYYmmdd-HHMMSS.dump (UTC): a failed backup leaves no
file behind. With `verify`, the dump runs inside an exported snapshot whose row counts
are read first, and the named archive is then restored into a scratch database and its
counts compared (hosting/database/verify.py); an archive that fails this is kept, but the
backup fails (and its BackupRun says so, which `restore` heeds).
"""

from __future__ import annotations

import logging
import os
import re
import stat
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.urls import reverse
from django.utils import timezone

from hosting.database import pg
from hosting.database.archive import archive_verify
from hosting.database.pg import PgError, one_line
from hosting.database.verify import backup_verify, snapshot_open

logger = logging.getLogger(__name__)

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


@dataclass
class BackupReport:
    """What a backup got as far as, filled in as it goes (also when it fails)."""

    path: Path | None = None
    size: int | None = None
    verified: bool | None = None  # None: not verified (no --verify, or not reached)
    row_counts: dict[str, int] | None = None  # read in the dump's snapshot (--verify)


def backup_create(
    output_dir: Path | None = None,
    *,
    keep: int | None = None,
    max_age_days: int | None = None,
    verify: bool = False,
    say: Callable[[str], object] = print,
    warn: Callable[[str], object] = print,
    report: BackupReport | None = None,
) -> Path:
    """Dump the default database into `output_dir` (default: settings.BACKUP_DIR, created
    0700 when missing), verify the archive, name it, with `verify` restore it into a
    scratch database and compare row counts with the dump's snapshot, and with `keep`
    delete all but the newest `keep` archives there (with `max_age_days`, also those
    older; never the newest verified one). Returns the archive's path; progress
    goes to `say`, a directory open to others is reported to `warn`, and `report` is
    filled in as far as the backup gets. Raises PgError."""
    report = report if report is not None else BackupReport()
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
        with snapshot_open() if verify else nullcontext() as snapshot:
            _dump(pg_dump, tmp, libpq, snapshot.snapshot_id if snapshot else None)
        report.row_counts = snapshot.counts if snapshot else None
        try:
            entries = archive_verify(tmp)
        except PgError as exc:
            raise PgError(f"the new archive failed verification: {exc}") from exc
        final = _publish(tmp, directory, stamp)
    finally:
        tmp.unlink(missing_ok=True)

    size = final.stat().st_size
    report.path, report.size = final, size
    say(
        f"Backed up {pg.describe(libpq)} to {final} "
        f"({human_size(size)}, {size} bytes, {entries} archive entries) "
        f"in {time.monotonic() - started:.1f}s"
    )
    if verify:
        report.verified = False
        backup_verify(final, expected=snapshot.counts, say=say)
        report.verified = True
    if keep is not None or max_age_days is not None:
        _prune(directory, keep, say, max_age_days)
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


def _dump(pg_dump: str, tmp: Path, libpq: dict[str, str], snapshot_id: str | None) -> None:
    command = [pg_dump, "--format=custom", "--no-owner", "--no-privileges", f"--file={tmp}"]
    # The tenant tables' row-level security binds their owner too (FORCE): pg_dump's
    # default turns it off and so refuses them. With it on and no tenant scope set (a
    # command acts for the system) every policy passes every row.
    command.append("--enable-row-security")
    if snapshot_id:
        # The exported snapshot the row counts were read in: the dump sees the same rows.
        command.append(f"--snapshot={snapshot_id}")
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


def _prune(
    directory: Path,
    keep: int | None,
    say: Callable[[str], object],
    max_age_days: int | None = None,
) -> None:
    """Delete all but the newest `keep` archives, and those older than `max_age_days` (by
    the UTC time in their names); the newest archive recorded as verified stays."""
    # Only names backup_create writes; anything else in the directory is left alone.
    backups = sorted(
        (path for path in directory.glob("hosting-*.dump") if BACKUP_NAME.match(path.name)),
        key=backup_sort_key,
    )
    protected = _newest_verified(backups)
    oldest_allowed = (
        datetime.now(UTC) - timedelta(days=max_age_days) if max_age_days is not None else None
    )
    failed, deleted = [], 0
    for index, path in enumerate(backups):
        too_many = keep is not None and index < len(backups) - keep
        too_old = oldest_allowed is not None and _made_at(path) < oldest_allowed
        if path == protected or not (too_many or too_old):
            continue
        try:
            path.unlink()
        except OSError as exc:
            failed.append(f"{path.name}: {exc.strerror or exc}")
        else:
            deleted += 1
            say(f"Deleted old backup {path}")
    if failed:
        raise PgError(f"backup written, but pruning failed: {'; '.join(failed)}")
    kept = f" (including {protected.name}, the newest verified one)" if protected else ""
    say(f"Kept {len(backups) - deleted} backup(s) in {directory}{kept}")


def _made_at(path: Path) -> datetime:
    return datetime.strptime(backup_sort_key(path)[0], "%Y%m%d-%H%M%S").replace(tzinfo=UTC)


def _backup_runs():
    """The BackupRun model, or None when its table is missing (a database not migrated
    yet: backups still work, unrecorded)."""
    from hosting.models import BackupRun

    try:
        if BackupRun._meta.db_table in connection.introspection.table_names():
            return BackupRun
    except DatabaseError:
        pass
    return None


def _is_backup_dir(output_dir: Path | None) -> bool:
    if output_dir is None:
        return True
    configured = Path(settings.BACKUP_DIR).expanduser()
    return Path(output_dir).expanduser().resolve() == configured.resolve()


def _newest_verified(backups: list[Path]) -> Path | None:
    BackupRun = _backup_runs()
    if BackupRun is None or not backups:
        return None
    verified = set(
        BackupRun.objects.filter(
            verified=True, file_name__in=[path.name for path in backups]
        ).values_list("file_name", flat=True)
    )
    return next((path for path in reversed(backups) if path.name in verified), None)


def backup_run(
    output_dir: Path | None = None,
    *,
    keep: int | None = None,
    max_age_days: int | None = None,
    verify: bool = False,
    row=None,
    say: Callable[[str], object] = print,
    warn: Callable[[str], object] = print,
):
    """`backup_create`, recorded as a BackupRun (`row`, or a new one): file, size,
    duration, verification, error. Only archives written into BACKUP_DIR are recorded:
    the runs are the history of that managed set (retention, the staleness alert and
    restore's refusal go by it); a one-off copy into another --output-dir is not part of
    it. Returns the row (None when not recorded); raises what backup_create raises, after
    recording it."""
    if row is None and _is_backup_dir(output_dir):
        BackupRun = _backup_runs()
        if BackupRun is None:
            warn("warning: the hosting_backuprun table is missing (run migrate): not recorded")
        else:
            row = BackupRun.objects.create()
    report = BackupReport()
    started = time.monotonic()
    error = ""
    try:
        backup_create(
            output_dir,
            keep=keep,
            max_age_days=max_age_days,
            verify=verify,
            say=say,
            warn=warn,
            report=report,
        )
    except Exception as exc:
        error = str(exc) if isinstance(exc, PgError) else f"{type(exc).__name__}: {one_line(exc)}"
        raise
    finally:
        if row is not None:
            row.finished_at = timezone.now()
            row.duration = timedelta(seconds=time.monotonic() - started)
            row.file_name = report.path.name if report.path else ""
            row.size_bytes = report.size
            row.verified = report.verified
            row.row_counts = report.row_counts or {}
            row.error = error
            try:
                row.save()
            except DatabaseError as exc:
                warn(f"warning: cannot record the backup run: {one_line(exc)}")
    return row


def backup_verify_file(path: Path, *, say: Callable[[str], object] = print):
    """`backup --verify-only FILE`: restore an existing archive into a scratch database;
    when a BackupRun made it, compare with the row counts it recorded and record the
    outcome there (a failure makes `restore` refuse the file without --force)."""
    path = Path(path).expanduser()
    BackupRun = _backup_runs()
    row = BackupRun.objects.filter(file_name=path.name).first() if BackupRun else None
    expected = row.row_counts if row is not None and row.row_counts else None
    try:
        result = backup_verify(path, expected=expected, say=say)
    except PgError as exc:
        if row is not None:
            row.verified, row.error = False, str(exc)
            row.save(update_fields=["verified", "error"])
        raise
    if row is not None and row.verified is not True:
        row.verified, row.error = True, ""
        row.save(update_fields=["verified", "error"])
    return result


# The scheduled job (hosting/tasks.py) and its staff mails.


def _staff_mail(subject: str, template: str, context: dict) -> int:
    from hosting.mail import mail_send
    from support.notifications import staff_recipients

    recipients = staff_recipients()
    if not recipients:
        return 0
    return mail_send(to=recipients, subject=subject, template=template, context=context)


def _admin_url(row) -> str:
    return settings.SITE_URL + reverse("admin:hosting_backuprun_change", args=[row.pk])


def backup_scheduled(*, now: datetime | None = None) -> object:
    """The periodic backup: nothing unless BACKUP_DIR is set; else backup + verify +
    retention (BACKUP_KEEP, BACKUP_MAX_AGE_DAYS), recorded as a BackupRun; staff are
    mailed when it fails, and when the newest verified backup is stale. Re-raises a
    failure (the job shows as failed) after mailing it. Returns the BackupRun."""
    if not settings.BACKUP_SCHEDULED:
        logger.info("BACKUP_DIR is not set: no scheduled backup")
        return None
    from hosting.models import BackupRun

    row = BackupRun.objects.create(trigger=BackupRun.Trigger.SCHEDULE)
    try:
        backup_run(
            settings.BACKUP_DIR,
            keep=settings.BACKUP_KEEP,
            max_age_days=settings.BACKUP_MAX_AGE_DAYS,
            verify=True,
            row=row,
            say=logger.info,
            warn=logger.warning,
        )
    except Exception:
        logger.exception("Scheduled backup %s failed", row.pk)
        _staff_mail(
            "Backup failed",
            "backup_failed",
            {"run": row, "directory": settings.BACKUP_DIR, "admin_url": _admin_url(row)},
        )
        backup_staleness_check(now=now)
        raise
    backup_staleness_check(now=now)
    return row


def backup_staleness_check(*, now: datetime | None = None) -> bool:
    """Mail staff when the newest verified backup finished more than BACKUP_STALE_HOURS
    ago (or none was ever verified, BACKUP_STALE_HOURS after the first run), once per
    incident: a BackupAlert records the mail. Returns whether a mail went out."""
    if not settings.BACKUP_SCHEDULED or _backup_runs() is None:
        return False
    from hosting.models import BackupAlert, BackupRun

    now = now or timezone.now()
    threshold = now - timedelta(hours=settings.BACKUP_STALE_HOURS)
    newest = BackupRun.objects.filter(verified=True).order_by("-started_at").first()
    if newest is not None:
        if (newest.finished_at or newest.started_at) >= threshold:
            return False
        incident = f"stale-after-{newest.pk}"
    else:
        first = BackupRun.objects.order_by("started_at").first()
        if first is None or first.started_at >= threshold:
            return False
        incident = "never-verified"
    with transaction.atomic():
        _alert, created = BackupAlert.objects.get_or_create(
            kind=BackupAlert.Kind.STALE, incident=incident
        )
        if not created:
            return False
        latest = BackupRun.objects.order_by("-started_at").first()
        # Inside the transaction: a mail that cannot be sent is tried again next hour.
        _staff_mail(
            "No recent verified backup",
            "backup_stale",
            {
                "newest": newest,
                "latest": latest,
                "hours": settings.BACKUP_STALE_HOURS,
                "directory": settings.BACKUP_DIR,
                "admin_url": settings.SITE_URL + reverse("admin:hosting_backuprun_changelist"),
            },
        )
    logger.warning("Backups are stale (%s): staff mailed", incident)
    return True
