import pytest
from procrastinate.contrib.django.models import ProcrastinateJob

from accounts.tests.factories import UserFactory
from hosting.testing import run_python, subprocess_env
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


@pytest.mark.django_db
def test_no_job_is_enqueued_when_the_transaction_rolls_back(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        ticket_create(user=UserFactory(), subject="s", description="d")
    assert len(callbacks) == 1
    assert not ProcrastinateJob.objects.exists()  # nothing enqueued before commit
