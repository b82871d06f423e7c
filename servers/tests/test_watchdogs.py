"""The periodic jobs that catch what the normal flow missed: a server stuck provisioning is
failed and refunded (`provisioning_watch`), and a job left `doing` by a dead worker is put
back in the queue (`jobs_recover_stalled`), including after a real worker process is
killed with SIGKILL in the middle of building a server."""

import asyncio
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import time_machine
from django.db import connection, transaction
from django.utils import timezone
from procrastinate.contrib.django import app
from procrastinate.contrib.django.models import ProcrastinateJob

from billing import services as billing_services
from billing.models import Payment
from billing.tests.factories import PaymentFactory
from hosting.tasks import jobs_recover_stalled
from hosting.testing import PROJECT_DIR, run_jobs, subprocess_env
from servers.models import Server, ServerEvent, ServerEventKind, SimulatedDroplet
from servers.tasks import provisioning_watch
from servers.tests.factories import ServerFactory

PROVISION = "servers.tasks.server_provision"


def jobs(task_name: str):
    return ProcrastinateJob.objects.filter(task_name=task_name)


# --- provisioning_watch -------------------------------------------------------------------


def provisioning(age: timedelta, **fields) -> Server:
    payment = PaymentFactory()
    return ServerFactory(
        user=payment.user,
        payment=payment,
        status=Server.Status.PROVISIONING,
        ip_address=None,
        provider_id="",
        created_at=timezone.now() - age,
        **fields,
    )


@pytest.mark.django_db
def test_a_server_provisioning_too_long_is_failed_and_refunded(settings):
    settings.PROVISION_TIMEOUT = 30 * 60
    late = provisioning(timedelta(minutes=31))
    young = provisioning(timedelta(minutes=29))

    assert provisioning_watch(timestamp=0) == 1

    late.refresh_from_db()
    assert late.status == Server.Status.FAILED
    failed = ServerEvent.objects.get(server=late, kind=ServerEventKind.FAILED)
    assert failed.message == "The server was not ready after 30 minutes."
    refund = jobs("billing.tasks.payment_refund").get()
    assert refund.args == {
        "payment_id": late.payment_id,
        "kind": "provision_failed",
        "reason": "Your server could not be built: The server was not ready after 30 minutes.",
    }
    destroy = jobs("servers.tasks.droplet_destroy").get()
    assert destroy.args == {"server_id": late.pk}
    assert destroy.lock == f"server:{late.pk}"
    young.refresh_from_db()
    assert young.status == Server.Status.PROVISIONING
    assert not young.events.exists()


@pytest.mark.django_db
def test_the_timeout_counts_from_creation(settings):
    settings.PROVISION_TIMEOUT = 600
    server = provisioning(timedelta(0))
    with time_machine.travel(timezone.now() + timedelta(seconds=599), tick=False):
        assert provisioning_watch(timestamp=0) == 0
    assert Server.objects.get(pk=server.pk).status == Server.Status.PROVISIONING
    with time_machine.travel(timezone.now() + timedelta(seconds=601), tick=False):
        assert provisioning_watch(timestamp=0) == 1
    assert Server.objects.get(pk=server.pk).status == Server.Status.FAILED


@pytest.mark.django_db
def test_watching_twice_fails_the_server_once(settings):
    settings.PROVISION_TIMEOUT = 60
    server = provisioning(timedelta(minutes=5))

    assert provisioning_watch(timestamp=0) == 1
    assert provisioning_watch(timestamp=0) == 0

    assert ServerEvent.objects.filter(server=server, kind=ServerEventKind.FAILED).count() == 1
    assert jobs("billing.tasks.payment_refund").count() == 1
    assert jobs("servers.tasks.droplet_destroy").count() == 1


@pytest.mark.django_db
def test_running_and_ended_servers_are_left_alone(settings):
    settings.PROVISION_TIMEOUT = 60
    old = timezone.now() - timedelta(days=1)
    running = ServerFactory(created_at=old)
    deleted = ServerFactory(created_at=old, status=Server.Status.DELETED)

    assert provisioning_watch(timestamp=0) == 0

    assert Server.objects.get(pk=running.pk).status == Server.Status.RUNNING
    assert Server.objects.get(pk=deleted.pk).status == Server.Status.DELETED
    assert not ProcrastinateJob.objects.exists()


# --- jobs_recover_stalled -------------------------------------------------------------------


def run_recovery() -> int:
    """jobs_recover_stalled as the worker runs it: on the worker's own connector, in an
    event loop of its own (in a thread, so a loop already running here is no obstacle)."""

    async def recover() -> int:
        async with app.open_async():
            return await jobs_recover_stalled(timestamp=0)

    with app.replace_connector(app.connector.get_worker_connector()):
        with ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(asyncio.run, recover()).result(timeout=30)


def worker_row(heartbeat_age: timedelta) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO procrastinate_workers (last_heartbeat) VALUES (now() - %s) RETURNING id",
            [heartbeat_age],
        )
        return cursor.fetchone()[0]


def doing_job(worker_id: int, server_id: int) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO procrastinate_jobs (queue_name, task_name, lock, args, status, worker_id)"
            " VALUES ('servers', %s, %s, %s, 'doing', %s) RETURNING id",
            [PROVISION, f"server:{server_id}", f'{{"server_id": {server_id}}}', worker_id],
        )
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_a_dead_workers_job_goes_back_to_the_queue():
    dead = doing_job(worker_row(timedelta(minutes=5)), server_id=1)
    alive = doing_job(worker_row(timedelta(seconds=2)), server_id=2)

    assert run_recovery() == 1

    recovered = ProcrastinateJob.objects.get(pk=dead)
    assert recovered.status == "todo"
    assert recovered.attempts == 1
    assert recovered.lock == "server:1"
    assert ProcrastinateJob.objects.get(pk=alive).status == "doing"
    assert run_recovery() == 0  # nothing left to recover


# --- end to end: a real worker, SIGKILLed mid-job ----------------------------------------------


def wait_for(condition, *, timeout: float, what: str, log=None):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            detail = f"\n--- worker output ---\n{log.read_text()}" if log else ""
            raise AssertionError(f"{what} within {timeout} s{detail}")
        time.sleep(0.05)


def backend_waiting_on_us() -> int | None:
    """The PostgreSQL backend blocked on a lock this connection holds."""
    with connection.cursor() as cursor:
        # Inside a transaction, pg_stat_activity is read once and then cached: read it anew.
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE pg_backend_pid() = ANY(pg_blocking_pids(pid))"
        )
        row = cursor.fetchone()
    return row[0] if row else None


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_while_building_a_server_is_recovered(settings, tmp_path):
    settings.STRIPE_SECRET_KEY = ""
    settings.DIGITALOCEAN_TOKEN = ""
    settings.SIMULATED_PROVIDER_BOOT_SECONDS = 0
    settings.SIMULATED_PROVIDER_FAILURES = []
    settings.PROVISION_POLL_SECONDS = 0
    payment = PaymentFactory(status=Payment.Status.PENDING, paid_at=None)
    with transaction.atomic():
        server = billing_services.payment_fulfil(
            payment=Payment.objects.select_for_update().get(pk=payment.pk)
        )
    job = jobs(PROVISION).get()
    log = tmp_path / "worker.log"

    # The server row locked, the worker's job stops where it first locks it (to store the
    # generated credentials): in the middle of the job, before any droplet exists.
    with transaction.atomic(), log.open("w") as output:
        Server.objects.select_for_update().get(pk=server.pk)
        worker = subprocess.Popen(
            # One job at a time, so the job killed is the only one the dead worker held
            # (with more, a periodic job may be running beside it).
            [
                *(sys.executable, "manage.py", "procrastinate", "worker"),
                *("--queues", "servers", "--concurrency", "1"),
            ],
            cwd=PROJECT_DIR,
            env=subprocess_env(
                STRIPE_SECRET_KEY="", DIGITALOCEAN_TOKEN="", PROCRASTINATE_LOG_LEVEL="INFO"
            ),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            blocked = wait_for(
                backend_waiting_on_us, timeout=30, what="the worker did not start the job", log=log
            )
            assert ProcrastinateJob.objects.get(pk=job.pk).status == "doing"
            worker.send_signal(signal.SIGKILL)
            assert worker.wait(timeout=10) == -signal.SIGKILL
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
        # Its backend still waits for our lock; PostgreSQL would end it on its next write
        # to the dead client. End it now, so it never takes the lock.
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [blocked])

    killed = ProcrastinateJob.objects.get(pk=job.pk)
    assert killed.status == "doing" and killed.worker_id is not None
    # A worker that may still be alive keeps its job.
    assert run_recovery() == 0
    # Its heartbeat stops; once it is older than WORKER_STALLED_SECONDS, it is dead.
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE procrastinate_workers SET last_heartbeat = now() - interval '1 minute'"
            " WHERE id = %s",
            [killed.worker_id],
        )
    assert run_recovery() == 1
    assert ProcrastinateJob.objects.get(pk=job.pk).status == "todo"

    run_jobs(until=lambda: Server.objects.get(pk=server.pk).status == Server.Status.RUNNING)

    server.refresh_from_db()
    assert server.ip_address
    assert SimulatedDroplet.objects.filter(tags=[f"server-{server.uuid}"]).count() == 1
    assert ProcrastinateJob.objects.get(pk=job.pk).status == "succeeded"
    kinds = list(server.events.values_list("kind", flat=True))
    assert kinds == ["payment_confirmed", "droplet_requested", "droplet_active", "ready"]
