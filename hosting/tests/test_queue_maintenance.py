"""The queue keeps itself small: succeeded jobs go after SUCCEEDED_JOBS_KEPT_HOURS, failed
ones stay for staff."""

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from procrastinate.contrib.django import app
from procrastinate.contrib.django.models import ProcrastinateJob

from hosting.tasks import SUCCEEDED_JOBS_KEPT_HOURS, jobs_delete_old


def finished_job(status: str, hours_ago: float) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO procrastinate_jobs (queue_name, task_name, args, status)"
            " VALUES ('servers', 'servers.tasks.server_notify', '{}', %s) RETURNING id",
            [status],
        )
        job_id = cursor.fetchone()[0]
        # The job's events carry its history; the last one dates when it finished.
        cursor.execute(
            "INSERT INTO procrastinate_events (job_id, type, at)"
            " VALUES (%s, %s, now() - make_interval(hours => %s))",
            [job_id, status, hours_ago],
        )
    return job_id


@pytest.mark.django_db(transaction=True)
def test_old_succeeded_jobs_are_deleted_and_failed_ones_kept():
    old = finished_job("succeeded", SUCCEEDED_JOBS_KEPT_HOURS + 1)
    recent = finished_job("succeeded", SUCCEEDED_JOBS_KEPT_HOURS - 1)
    failed = finished_job("failed", SUCCEEDED_JOBS_KEPT_HOURS + 1)

    async def run():
        async with app.open_async():
            await jobs_delete_old(timestamp=0)

    with app.replace_connector(app.connector.get_worker_connector()):
        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(asyncio.run, run()).result(timeout=30)

    assert set(ProcrastinateJob.objects.values_list("id", flat=True)) == {recent, failed}
    assert old not in (recent, failed)
