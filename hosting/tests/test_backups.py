"""Backups that are proven: `backup --verify` / `--verify-only` (hosting/database/verify.py)
against the real PostgreSQL server."""

import re
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone

from accounts.models import User
from hosting.database import backup as backup_module
from hosting.database import pg, verify
from hosting.database.archive import archive_entries
from hosting.database.backup import backup_staleness_check
from hosting.database.pg import PgError
from hosting.models import BackupAlert, BackupRun
from hosting.tasks import backups_check_stale, backups_scheduled

# Data that pg_dump and pg_restore (other processes) must see has to be committed.
committed_db = pytest.mark.django_db(transaction=True)


def run(*args, **options) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO(), **options)
    return out.getvalue()


def archive_of(out: str) -> Path:
    return Path(re.search(r" to (\S+\.dump) ", out)[1])


def databases_named(names) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT datname FROM pg_database WHERE datname = ANY(%s)", [list(names)])
        return [name for (name,) in cursor.fetchall()]


@pytest.fixture
def scratch_names(monkeypatch):
    """The names of the scratch databases verification makes."""
    made = []
    real = verify._scratch_create

    def create(admin):
        made.append(real(admin))
        return made[-1]

    monkeypatch.setattr(verify, "_scratch_create", create)
    return made


# Phase 1: --verify


@committed_db
def test_backup_verify_restores_and_compares_every_table(tmp_path, scratch_names):
    run("seed")
    out = run("backup", "--output-dir", str(tmp_path), "--verify")

    archive = archive_of(out)
    assert archive.is_file()
    match = re.search(
        r"Verified \S+: row counts match the dump's snapshot \((\d+) tables, (\d+) rows\)", out
    )
    assert match, out
    assert int(match[1]) >= 20 and int(match[2]) > 0
    [scratch] = scratch_names
    assert scratch.startswith("hosting_verify_")
    assert databases_named(scratch_names) == []  # dropped


@committed_db
def test_verify_counts_are_those_of_the_dump_snapshot_despite_concurrent_writes(
    tmp_path, monkeypatch, scratch_names
):
    """A row committed after the snapshot was exported, while the dump is starting, is in
    neither the counts nor the archive: no false alarm, and no rows missed silently."""
    run("seed")
    real_dump = backup_module._dump
    seen = {}

    def dump_with_a_concurrent_write(*args):
        User.objects.create_user(email="late@example.com", password="x-Secret-42")
        real_dump(*args)
        seen["users_now"] = User.objects.count()

    monkeypatch.setattr(backup_module, "_dump", dump_with_a_concurrent_write)
    counted = {}
    real_verify = backup_module.backup_verify

    def verify_spy(path, *, expected, say):
        counted.update(expected)
        return real_verify(path, expected=expected, say=say)

    monkeypatch.setattr(backup_module, "backup_verify", verify_spy)
    out = run("backup", "--output-dir", str(tmp_path), "--verify")

    assert "row counts match" in out
    assert seen["users_now"] == 5 and counted["accounts_user"] == 4
    assert databases_named(scratch_names) == []


@committed_db
def test_verify_only_on_a_truncated_or_corrupted_archive_fails(tmp_path, scratch_names):
    run("seed")
    good = archive_of(run("backup", "--output-dir", str(tmp_path)))
    data = good.read_bytes()
    out = run("backup", "--verify-only", str(good))
    assert "restored cleanly" in out

    # Cut short by two thirds: even the table of contents is incomplete.
    halved = tmp_path / "halved.dump"
    halved.write_bytes(data[: len(data) // 3])
    with pytest.raises(CommandError, match="verification of halved.dump failed: pg_restore --list"):
        run("backup", "--verify-only", str(halved))

    # Damage only in the last table data: `pg_restore --list` (all a plain backup
    # checks) still reads it; restoring it does not.
    truncated = tmp_path / "truncated.dump"
    truncated.write_bytes(data[:-200])
    corrupted = tmp_path / "corrupted.dump"
    at = len(data) - 400
    corrupted.write_bytes(data[:at] + bytes(b ^ 0x5A for b in data[at : at + 32]) + data[at + 32 :])
    for damaged, error in [(truncated, "end of file"), (corrupted, "could not uncompress data")]:
        assert archive_entries(damaged) > 0
        with pytest.raises(CommandError) as raised:
            run("backup", "--verify-only", str(damaged))
        message = str(raised.value)
        assert message.startswith(
            f"verification of {damaged.name} failed: pg_restore into a scratch database failed"
        )
        assert error in message and "\n" not in message

    assert len(scratch_names) == 3
    assert databases_named(scratch_names) == []  # dropped on failure too


@committed_db
def test_verify_names_the_tables_whose_counts_differ(tmp_path, scratch_names):
    run("seed")
    good = archive_of(run("backup", "--output-dir", str(tmp_path)))
    expected = verify._count_rows(connection.connection)
    expected["accounts_user"] += 1
    expected["zz_gone"] = 7
    with pytest.raises(PgError) as raised:
        verify.backup_verify(good, expected=expected, say=lambda line: None)
    message = str(raised.value)
    assert "row counts differ in 2 table(s)" in message
    assert "accounts_user: 5 rows in the source, 4 restored" in message
    assert "zz_gone: 7 rows in the source, table missing" in message
    assert databases_named(scratch_names) == []


@committed_db
def test_backup_verify_failure_fails_the_command_and_keeps_no_scratch(
    tmp_path, monkeypatch, scratch_names
):
    real = verify._count_rows
    calls = []

    def lose_a_row_in_the_copy(raw):
        counts = real(raw)
        calls.append(1)
        if len(calls) == 2:  # the scratch database's counts
            counts["billing_plan"] -= 1
        return counts

    monkeypatch.setattr(verify, "_count_rows", lose_a_row_in_the_copy)
    with pytest.raises(CommandError, match=r"billing_plan: 3 rows in the source, 2 restored"):
        run("backup", "--output-dir", str(tmp_path), "--verify", "--keep", "1")
    assert databases_named(scratch_names) == []


# Phase 2: BackupRun, the scheduled job, staleness, restore's refusal, retention


@pytest.fixture
def scheduled(settings, tmp_path):
    settings.BACKUP_SCHEDULED = True
    settings.BACKUP_DIR = tmp_path / "backups"
    settings.STAFF_NOTIFICATION_EMAILS = ["ops@example.com"]
    return settings


@committed_db
def test_scheduled_job_records_a_verified_run(scheduled, mailoutbox, scratch_names):
    run("seed")
    backups_scheduled(timestamp=0)

    [record] = BackupRun.objects.all()
    assert record.trigger == BackupRun.Trigger.SCHEDULE
    assert record.verified is True and record.error == "" and record.succeeded
    archive = scheduled.BACKUP_DIR / record.file_name
    assert archive.is_file() and record.size_bytes == archive.stat().st_size
    assert record.duration.total_seconds() > 0
    # The counts of the dump's snapshot, in which this run's row was already there.
    assert record.row_counts["accounts_user"] == 4 and record.row_counts["hosting_backuprun"] == 1
    assert mailoutbox == []
    assert databases_named(scratch_names) == []


@pytest.mark.django_db
def test_scheduled_job_does_nothing_without_backup_dir(settings, mailoutbox):
    settings.BACKUP_SCHEDULED = False
    backups_scheduled(timestamp=0)
    assert not BackupRun.objects.exists() and mailoutbox == []


@pytest.mark.django_db
def test_scheduled_job_records_a_failed_run_and_mails_staff_once(
    scheduled, monkeypatch, mailoutbox
):
    monkeypatch.setattr(pg, "pg_binary", lambda name: "/bin/false")
    with pytest.raises(PgError, match="pg_dump of .* failed"):
        backups_scheduled(timestamp=0)

    [record] = BackupRun.objects.all()
    assert record.finished_at and not record.succeeded
    assert record.verified is None and record.file_name == ""
    assert "pg_dump of" in record.error
    [mail] = mailoutbox
    assert mail.to == ["ops@example.com"] and mail.subject == "[Hosting] Backup failed"
    assert "pg_dump of" in mail.body and f"/hosting/backuprun/{record.pk}/" in mail.body
    # The hourly check right after: nothing is stale yet, so no second mail.
    assert backups_check_stale(timestamp=0) is False
    assert len(mailoutbox) == 1


@pytest.mark.django_db
def test_stale_backups_mail_staff_once_per_incident(scheduled, mailoutbox):
    now = timezone.now()
    old = BackupRun.objects.create(
        started_at=now - timedelta(hours=30),
        finished_at=now - timedelta(hours=30),
        file_name="hosting-old.dump",
        verified=True,
    )
    BackupRun.objects.create(  # a later run that failed does not count
        started_at=now - timedelta(hours=3), finished_at=now, verified=False, error="boom"
    )
    assert backups_check_stale(timestamp=0) is True
    assert backups_check_stale(timestamp=0) is False  # the next hours: no new mail
    [mail] = mailoutbox
    assert mail.subject == "[Hosting] No recent verified backup"
    assert "hosting-old.dump" in mail.body and "failed: boom" in mail.body
    assert BackupAlert.objects.get().incident == f"stale-after-{old.pk}"

    # A fresh verified backup ends the incident; when it too gets old, a new one mails.
    BackupRun.objects.create(started_at=now, finished_at=now, file_name="new.dump", verified=True)
    assert backup_staleness_check(now=now + timedelta(hours=1)) is False
    assert backup_staleness_check(now=now + timedelta(hours=27)) is True
    assert len(mailoutbox) == 2


@pytest.mark.django_db
def test_never_verified_is_stale_a_day_after_the_first_run(scheduled, mailoutbox):
    now = timezone.now()
    BackupRun.objects.create(started_at=now - timedelta(hours=2), error="boom")
    assert backup_staleness_check(now=now) is False
    assert backup_staleness_check(now=now + timedelta(hours=25)) is True
    assert "No backup has ever been verified" in mailoutbox[0].body


@pytest.mark.django_db
def test_restore_refuses_an_archive_whose_verification_failed(
    scheduled, scratch_database_url, scratch_names
):
    scheduled.DEBUG = True
    out = run("backup")  # into BACKUP_DIR: recorded
    archive = archive_of(out)
    record = BackupRun.objects.get()
    assert record.file_name == archive.name and record.verified is None

    archive.write_bytes(archive.read_bytes()[:-200])  # damaged on disk afterwards
    with pytest.raises(CommandError, match="pg_restore into a scratch database failed"):
        run("backup", "--verify-only", str(archive))
    record.refresh_from_db()
    assert record.verified is False and "end of file" in record.error

    with pytest.raises(
        CommandError, match=rf"refusing to restore {archive.name}: its verification"
    ):
        run("restore", str(archive), "--database-url", scratch_database_url)
    # --force gets past the refusal (and then pg_restore meets the damage).
    with pytest.raises(CommandError, match="pg_restore into .* failed"):
        run("restore", str(archive), "--database-url", scratch_database_url, "--force")


def make_archive(directory: Path, made: datetime) -> Path:
    path = directory / f"hosting-{made:%Y%m%d-%H%M%S}.dump"
    path.write_bytes(b"PGDMP")
    return path


@pytest.mark.django_db
def test_retention_keeps_the_newest_verified_archive(tmp_path):
    now = datetime.now(UTC)
    verified_old = make_archive(tmp_path, now - timedelta(days=40))
    old = make_archive(tmp_path, now - timedelta(days=35))
    recent = [make_archive(tmp_path, now - timedelta(days=days)) for days in (3, 2, 1)]
    BackupRun.objects.create(file_name=verified_old.name, verified=True)
    BackupRun.objects.create(file_name=recent[0].name, verified=False, error="mismatch")
    (tmp_path / "notes.txt").write_text("left alone")

    said = []
    backup_module._prune(tmp_path, 2, said.append, max_age_days=30)

    left = sorted(path.name for path in tmp_path.iterdir())
    assert left == sorted([verified_old.name, recent[1].name, recent[2].name, "notes.txt"])
    assert not old.exists() and not recent[0].exists()
    assert "the newest verified one" in said[-1]

    # Once a newer archive is verified, the old one is no longer protected.
    BackupRun.objects.create(file_name=recent[2].name, verified=True)
    backup_module._prune(tmp_path, 2, said.append, max_age_days=30)
    assert not verified_old.exists() and recent[2].exists()


def test_backup_jobs_are_periodic_with_the_configured_cron(settings):
    from procrastinate.contrib.django import app

    periodic = {task.task.name: task.cron for task in app.periodic_registry.periodic_tasks.values()}
    assert periodic["hosting.tasks.backups_scheduled"] == settings.BACKUP_SCHEDULE == "0 2 * * *"
    assert periodic["hosting.tasks.backups_check_stale"] == "41 * * * *"


@pytest.mark.django_db
def test_backup_runs_admin_is_read_only(admin_client, settings):
    settings.STAFF_REQUIRE_MFA = False
    record = BackupRun.objects.create(file_name="hosting-20250101-020000.dump", verified=True)
    assert admin_client.get("/admin/hosting/backuprun/").status_code == 200
    page = admin_client.get(f"/admin/hosting/backuprun/{record.pk}/change/")
    assert page.status_code == 200 and b"hosting-20250101-020000.dump" in page.content
    assert admin_client.get("/admin/hosting/backuprun/add/").status_code == 403
    assert admin_client.post(f"/admin/hosting/backuprun/{record.pk}/change/", {}).status_code == 403
