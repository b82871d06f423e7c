"""Shared task settings and the jobs that look after the queue itself."""

import logging

from django.conf import settings
from procrastinate import RetryStrategy
from procrastinate.contrib.django import app

logger = logging.getLogger(__name__)

DEFAULT_RETRY = RetryStrategy(max_attempts=5, exponential_wait=5)
# Calls to Stripe or DigitalOcean: keep trying for about two hours (2 s, 4 s, ... 68 min
# apart); every call carries an idempotency key or is safe to repeat.
GATEWAY_RETRY = RetryStrategy(max_attempts=12, exponential_wait=2)


# procrastinate reads the cron when the tasks are imported: a new schedule needs a
# worker restart.
@app.periodic(cron=settings.JOBS_RECOVERY_SCHEDULE)
@app.task(queue="maintenance", queueing_lock="jobs_recover_stalled")
async def jobs_recover_stalled(timestamp: int) -> int:
    """Jobs left `doing` by a worker that died (SIGKILL, a lost host) are retried: a
    worker that has not sent a heartbeat for WORKER_STALLED_SECONDS (three missed ones,
    by default) is taken for dead."""
    stalled = await app.job_manager.get_stalled_jobs(
        seconds_since_heartbeat=settings.WORKER_STALLED_SECONDS
    )
    for job in stalled:
        logger.warning("Retrying job %s (%s) of a dead worker", job.id, job.task_name)
        await app.job_manager.retry_job(job)
    return len(stalled)


# Succeeded jobs are kept this long for staff to look at; failed ones until staff act.
SUCCEEDED_JOBS_KEPT_HOURS = 72


@app.periodic(cron="17 * * * *")
@app.task(queue="maintenance", queueing_lock="jobs_delete_old")
async def jobs_delete_old(timestamp: int) -> None:
    """The periodic jobs alone add some 4,000 rows a day: keep the queue table small."""
    await app.job_manager.delete_old_jobs(nb_hours=SUCCEEDED_JOBS_KEPT_HOURS)


# Database backups (hosting/database/backup.py). procrastinate reads the cron when the
# tasks are imported: a new BACKUP_SCHEDULE needs a worker restart. A queue of their own,
# so a worker can be given to them alone (`procrastinate worker --queues=backups`).
@app.periodic(cron=settings.BACKUP_SCHEDULE)
@app.task(queue="backups", queueing_lock="backups_scheduled")
def backups_scheduled(timestamp: int) -> None:
    """Backup + verify + retention when BACKUP_DIR is set; staff mailed on failure."""
    from hosting.database.backup import backup_scheduled

    backup_scheduled()


@app.periodic(cron="41 * * * *")
@app.task(queue="backups", queueing_lock="backups_check_stale")
def backups_check_stale(timestamp: int) -> bool:
    """Staff mailed, once per incident, when no verified backup is recent enough."""
    from hosting.database.backup import backup_staleness_check

    return backup_staleness_check()
