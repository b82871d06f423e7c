import pytest
from django.db import transaction
from procrastinate.contrib.django.models import ProcrastinateJob

from accounts.tests.factories import UserFactory
from hosting.testing import run_python, subprocess_env
from support.models import Ticket
from support.services import ticket_create


@pytest.mark.django_db(transaction=True)
def test_worker_process_runs_the_task_against_postgresql():
    """`manage.py procrastinate worker` picks up the job that a committed ticket
    enqueued, sends the staff email and marks the job done."""
    ticket = ticket_create(
        user=UserFactory(), subject="Disk is full on web-1", description="df says 100%"
    )
    job = ProcrastinateJob.objects.get(task_name="support.tasks.ticket_notify_staff")
    assert job.status == "todo"
    assert job.args == {"ticket_id": ticket.pk}

    result = run_python(
        "manage.py",
        "procrastinate",
        "worker",
        "--one-shot",
        env=subprocess_env(EMAIL_URL="consolemail://", STAFF_NOTIFICATION_EMAILS="ops@example.com"),
    )

    assert result.returncode == 0, result.stderr
    assert "Subject: [Hosting] New ticket: Disk is full on web-1" in result.stdout
    assert "To: ops@example.com" in result.stdout
    job.refresh_from_db()
    assert job.status == "succeeded"


def notify_jobs():
    return ProcrastinateJob.objects.filter(task_name="support.tasks.ticket_notify_staff")


@pytest.mark.django_db
def test_the_job_is_written_in_the_tickets_transaction():
    """DESIGN, convention 2: deferred inside the transaction, not after its commit."""
    with transaction.atomic():
        ticket = ticket_create(user=UserFactory(), subject="s", description="d")
        # Still inside the caller's transaction: nothing has been committed yet.
        assert list(notify_jobs().values_list("args", flat=True)) == [{"ticket_id": ticket.pk}]


@pytest.mark.django_db
def test_the_job_rolls_back_with_its_transaction():
    """A ticket that is rolled back leaves no job behind (and a job written on another
    connection, or after commit, would fail one of these two tests)."""
    user = UserFactory()
    with pytest.raises(RuntimeError, match="the caller fails after the ticket"):
        with transaction.atomic():
            ticket_create(user=user, subject="s", description="d")
            assert notify_jobs().count() == 1
            raise RuntimeError("the caller fails after the ticket")
    assert not Ticket.objects.filter(user=user).exists()
    assert not notify_jobs().exists()
