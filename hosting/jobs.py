"""Deferring jobs inside the caller's database transaction, in every process.

In the web process procrastinate's Django connector writes a job on Django's connection,
so it commits or rolls back with the rows written beside it. The worker swaps that
connector for a psycopg pool of its own, so a job deferred from inside a task would be
written on another connection, outside the task's transaction: a job could then exist
for rows that rolled back. `defer()` always writes on Django's connection.
"""

from __future__ import annotations

from typing import Any

from procrastinate import manager
from procrastinate.contrib.django.django_connector import DjangoConnector
from procrastinate.jobs import JobDeferrer

_on_django_connection = manager.JobManager(DjangoConnector())

# The priority of jobs a customer is watching a page for (their server being built, a
# deployment, a power action): the worker takes them before the background checks
# (default priority 0), so a queue of thousands of certificate rechecks at scale does
# not keep a new customer's server waiting.
CUSTOMER_WAITING = 10


def defer(
    task,
    *,
    lock: str | None = None,
    queueing_lock: str | None = None,
    schedule_in: dict[str, float] | None = None,
    **task_kwargs: Any,
) -> int:
    """Defer `task` with `task_kwargs` in the current transaction; returns the job id.
    `lock` serialises jobs on one object (at most one runs at a time, in defer order)."""
    options: dict[str, Any] = {}
    if lock is not None:
        options["lock"] = lock
    if queueing_lock is not None:
        options["queueing_lock"] = queueing_lock
    if schedule_in is not None:
        options["schedule_in"] = schedule_in
    job = task.configure(**options).job
    return JobDeferrer(_on_django_connection, job).defer(**task_kwargs)
