"""The hosting app's own records: one row per database backup (`manage.py backup` or the
scheduled job), and the staff alerts about backups already sent."""

from django.db import models
from django.utils import timezone


class BackupRun(models.Model):
    """One backup attempt. `verified` is None when the archive was not restored into a
    scratch database (no --verify, or the run failed before it), False when that check
    failed (then `restore` refuses the file without --force), True when it passed."""

    class Trigger(models.TextChoices):
        COMMAND = "command", "manage.py backup"
        SCHEDULE = "schedule", "scheduled job"

    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.COMMAND)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    file_name = models.CharField(max_length=255, blank=True)
    size_bytes = models.BigIntegerField(null=True, blank=True)
    duration = models.DurationField(null=True, blank=True)
    verified = models.BooleanField(null=True, blank=True)
    error = models.TextField(blank=True)
    # Exact row count per public table, read in the snapshot the dump used (--verify).
    row_counts = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [
            models.Index(fields=["file_name"], name="backuprun_file_name_idx"),
            models.Index(fields=["-started_at"], name="backuprun_started_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(trigger__in=["command", "schedule"]),
                name="backuprun_trigger_valid",
            )
        ]

    def __str__(self) -> str:
        return self.file_name or f"backup run {self.pk}"

    @property
    def succeeded(self) -> bool:
        return self.finished_at is not None and not self.error


class BackupAlert(models.Model):
    """A staff mail about backups that was sent, so that one incident mails once: `incident`
    names it (e.g. stale-after-<id of the newest verified run>)."""

    class Kind(models.TextChoices):
        STALE = "stale", "no recent verified backup"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    incident = models.CharField(max_length=100)
    sent_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["kind", "incident"], name="backupalert_once"),
            models.CheckConstraint(
                condition=models.Q(kind__in=["stale"]), name="backupalert_kind_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.incident}"
