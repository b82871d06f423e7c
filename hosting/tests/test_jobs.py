"""hosting.jobs.defer writes a job in the caller's transaction, also inside the worker,
where procrastinate's own `task.defer()` goes through the worker's own connection pool."""

import pytest
from django.db import transaction
from procrastinate.contrib.django import app
from procrastinate.contrib.django.models import ProcrastinateJob

from hosting.jobs import defer
from servers.tasks import server_notify


class Rollback(Exception):
    pass


def defer_then_roll_back(defer_job):
    with pytest.raises(Rollback), transaction.atomic():
        defer_job()
        raise Rollback


@pytest.mark.django_db(transaction=True)
def test_a_job_deferred_as_the_worker_does_rolls_back_with_the_transaction():
    with app.replace_connector(app.connector.get_worker_connector()):
        defer_then_roll_back(lambda: defer(server_notify, server_id=1, kind="ready"))
        assert not ProcrastinateJob.objects.exists()

        with transaction.atomic():
            job_id = defer(server_notify, lock="server:1", server_id=1, kind="ready")
        job = ProcrastinateJob.objects.get()
        assert (job.id, job.lock, job.args) == (
            job_id,
            "server:1",
            {"server_id": 1, "kind": "ready"},
        )
