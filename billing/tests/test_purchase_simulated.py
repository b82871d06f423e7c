"""The purchase with both simulators (the offline mode `make run` shows): checkout, the
simulator's signed events through the real webhook view, the real worker, a server."""

import itertools

import pytest
from django.core import mail
from procrastinate.contrib.django.models import ProcrastinateJob

from accounts.tests.factories import UserFactory
from billing.gateways.simulated import SimulatedGateway
from billing.models import Payment, StripeEvent
from billing.tests.flow import deliver, start_checkout
from hosting.testing import run_jobs
from servers.models import Server, ServerEvent, SimulatedDroplet


@pytest.fixture(autouse=True)
def _fast_simulators(settings):
    settings.STRIPE_SECRET_KEY = ""
    settings.DIGITALOCEAN_TOKEN = ""
    settings.SIMULATED_PROVIDER_BOOT_SECONDS = 0
    settings.SIMULATED_PROVIDER_FAILURES = []
    settings.PROVISION_POLL_SECONDS = 0


def paid_events(payment, *, decline=False):
    return SimulatedGateway().complete(payment.stripe_checkout_session_id, decline=decline)


def provision_jobs():
    return ProcrastinateJob.objects.filter(task_name="servers.tasks.server_provision")


@pytest.mark.django_db(transaction=True)
def test_checkout_pay_and_the_worker_brings_the_server_up(client):
    customer = UserFactory()
    payment = start_checkout(client, customer, "pro")
    assert payment.status == Payment.Status.PENDING
    assert payment.amount_cents == 2900

    for event in paid_events(payment):
        assert deliver(client, event).status_code == 200

    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    assert payment.stripe_subscription_id.startswith("sub_sim_")
    assert payment.stripe_charge_id.startswith("ch_sim_")
    server = Server.objects.get(payment=payment)
    assert server.status == Server.Status.PROVISIONING

    run_jobs(until=lambda: Server.objects.get(pk=server.pk).status == Server.Status.RUNNING)

    server.refresh_from_db()
    assert server.ip_address.startswith("203.0.113.")
    assert server.ssh_password and server.ssh_host_key.startswith("ssh-ed25519 ")
    assert server.ssh_host_private_key == ""  # forgotten once the server runs
    droplet = SimulatedDroplet.objects.get()
    assert droplet.tags == [f"server-{server.uuid}"]
    assert server.ssh_password not in droplet.user_data
    assert [e.kind for e in ServerEvent.objects.filter(server=server)] == [
        "payment_confirmed",
        "droplet_requested",
        "droplet_active",
        "ready",
    ]
    subjects = sorted(message.subject for message in mail.outbox)
    assert subjects == [
        "[Hosting] Payment received: Pro",
        f"[Hosting] Your server {server.name} is ready",
    ]
    ready = next(m for m in mail.outbox if "ready" in m.subject)
    assert f"/servers/{server.uuid}/" in ready.body
    assert server.ssh_password not in ready.body


@pytest.mark.django_db
@pytest.mark.parametrize("order", list(itertools.permutations(range(4))))
def test_any_order_and_redelivery_gives_one_paid_payment_and_one_server(client, order):
    customer = UserFactory()
    payment = start_checkout(client, customer)
    events = paid_events(payment) * 2  # each event delivered twice
    for index in order:
        assert deliver(client, events[index]).status_code == 200

    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    assert Server.objects.filter(user=customer).count() == 1
    assert provision_jobs().count() == 1
    assert StripeEvent.objects.count() == 2
    assert not StripeEvent.objects.filter(processed_at__isnull=True).exists()


@pytest.mark.django_db
def test_declined_payment_fails_without_a_server(client):
    customer = UserFactory()
    payment = start_checkout(client, customer)
    for event in paid_events(payment, decline=True):
        assert deliver(client, event).status_code == 200
    payment.refresh_from_db()
    assert payment.status == Payment.Status.FAILED
    assert "declined" in payment.failure_reason
    assert not Server.objects.exists()
    page = client.get(f"/billing/checkout/{payment.uuid}/done/")
    assert "declined" in page.content.decode()


@pytest.mark.django_db(transaction=True)
def test_provisioning_that_always_fails_ends_failed_refunded_once_and_told(client, settings):
    settings.SIMULATED_PROVIDER_FAILURES = ["create"]
    settings.PROVISION_ATTEMPTS = 3
    settings.PROVISION_RETRY_SECONDS = 0
    customer = UserFactory()
    payment = start_checkout(client, customer)
    for event in paid_events(payment):
        deliver(client, event)

    run_jobs(
        until=lambda: (
            Payment.objects.get(pk=payment.pk).status == Payment.Status.REFUNDED
            and not ProcrastinateJob.objects.filter(status__in=["todo", "doing"]).exists()
        )
    )

    payment.refresh_from_db()
    server = Server.objects.get(payment=payment)
    assert server.status == Server.Status.FAILED
    assert payment.stripe_refund_id.startswith("re_sim_")
    kinds = list(ServerEvent.objects.filter(server=server).values_list("kind", flat=True))
    assert kinds.count("retrying") == 2
    assert kinds.count("failed") == 1
    assert kinds.count("refund_issued") == 1
    failed = ServerEvent.objects.get(server=server, kind="failed")
    assert "Simulated failure: create" in failed.message
    refund_mails = [m for m in mail.outbox if "could not be built" in m.subject]
    assert len(refund_mails) == 1
    assert "Why: Simulated failure: create\n" in refund_mails[0].body
    assert payment.amount_display in refund_mails[0].body
    assert not any("ready" in m.subject for m in mail.outbox)
    job = provision_jobs().get()
    assert job.status == "failed" and job.attempts == 3  # PROVISION_ATTEMPTS, in all
