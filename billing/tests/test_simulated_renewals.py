"""The offline Stripe's subscriptions: they renew when their period ends, a renewal can
be made to fail on the simulator page, and paying there brings the server back. Every
step reaches the site as signed events through the webhook's own code, owed until
accepted, so a crash between the change and the delivery loses nothing."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core import mail
from django.db import connection
from django.urls import reverse

from accounts.models import User
from accounts.tests.factories import UserFactory
from billing import simulator
from billing.gateways import simulated as simulated_stripe
from billing.gateways.simulated import SimulatedGateway
from billing.models import (
    Payment,
    SimulatedCheckoutSession,
    SimulatedEvent,
    SimulatedInvoice,
    StripeEvent,
    Subscription,
)
from billing.subscriptions import subscriptions_delete_ended, subscriptions_suspend_overdue
from billing.tests.flow import deliver, start_checkout
from hosting.testing import run_jobs
from servers.models import Server

START = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
PERIOD = timedelta(seconds=60)


@pytest.fixture(autouse=True)
def _fast_simulators(settings):
    settings.STRIPE_SECRET_KEY = ""
    settings.DIGITALOCEAN_TOKEN = ""
    settings.SIMULATED_PROVIDER_BOOT_SECONDS = 0
    settings.SIMULATED_PROVIDER_ACTION_SECONDS = 0
    settings.SIMULATED_PROVIDER_FAILURES = []
    settings.PROVISION_POLL_SECONDS = 0
    settings.SIMULATED_BILLING_PERIOD_SECONDS = int(PERIOD.total_seconds())
    settings.BILLING_GRACE_DAYS = 0.01  # 14.4 minutes
    settings.DELETION_GRACE_DAYS = 0.02


@pytest.fixture
def clock():
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


@pytest.fixture
def bought(client, clock):
    """A customer's running server, bought on the simulator's checkout."""
    customer = UserFactory()
    payment = start_checkout(client, customer, "pro")
    for event in SimulatedGateway().complete(payment.stripe_checkout_session_id):
        assert deliver(client, event).status_code == 200
    server = Server.objects.get(payment=payment)
    run_jobs(until=lambda: status(server) == Server.Status.RUNNING)
    mail.outbox.clear()
    session = SimulatedCheckoutSession.objects.get(session_id=payment.stripe_checkout_session_id)
    return customer, server, session


def status(server):
    return Server.objects.get(pk=server.pk).status


def subscription_of(server):
    return Subscription.objects.get(server=server)


def renewals(server):
    return Payment.objects.filter(renews=server, kind="renewal")


def sub_id(session):
    return simulated_stripe.shapes.object_id("sub", session)


@pytest.mark.django_db(transaction=True)
def test_the_subscription_renews_when_its_period_ends_once(bought, clock):
    _, server, session = bought
    first_end = subscription_of(server).current_period_end
    assert first_end == START + PERIOD

    clock.move_to(START + PERIOD - timedelta(seconds=1))
    assert simulator.subscriptions_renew() == 0
    assert not renewals(server).exists()

    clock.move_to(START + PERIOD)
    assert simulator.subscriptions_renew() == 1
    assert simulator.subscriptions_renew() == 0  # the next period has not ended

    (renewal,) = renewals(server)
    assert (renewal.status, renewal.amount_cents) == ("succeeded", 2900)
    assert renewal.stripe_invoice_id == f"{simulated_stripe.shapes.object_id('in', session)}_2"
    assert renewal.stripe_charge_id.startswith("ch_sim_")
    row = subscription_of(server)
    assert (row.status, row.current_period_end) == ("active", START + 2 * PERIOD)
    assert SimulatedEvent.objects.filter(delivered_at__isnull=True).count() == 0
    run_jobs()
    assert [m.subject for m in mail.outbox] == ["[Hosting] Renewed: Pro"]


@pytest.mark.django_db(transaction=True)
def test_declined_renewal_grace_suspension_then_paid_on_the_simulator_page(bought, client, clock):
    customer, server, session = bought
    client.force_login(customer)
    page = reverse("billing:simulator_subscription", args=[sub_id(session)])
    client.post(page, {"action": "fail_next"})

    clock.move_to(START + PERIOD)
    simulator.subscriptions_renew()
    row = subscription_of(server)
    assert (row.status, row.past_due_since) == ("past_due", START + PERIOD)
    assert "did not go through" in row.failure_reason
    assert row.pay_url.endswith(page)
    assert User.objects.get(pk=customer.pk).payment_overdue_since == START + PERIOD
    assert not renewals(server).exists()
    run_jobs()
    assert [m.subject for m in mail.outbox] == ["[Hosting] Your renewal payment failed"]

    # The card is declined once only; the period still moved on, as Stripe's does.
    assert not SimulatedCheckoutSession.objects.get(pk=session.pk).fail_next_renewal
    clock.move_to(START + PERIOD + timedelta(days=0.01) - timedelta(seconds=1))
    assert subscriptions_suspend_overdue() == 0
    clock.move_to(START + PERIOD + timedelta(days=0.01, seconds=1))
    assert subscriptions_suspend_overdue() == 1
    run_jobs(until=lambda: status(server) == Server.Status.SUSPENDED)

    response = client.get(page)
    assert b"was declined and is unpaid" in response.content
    response = client.post(page, {"action": "pay"}, follow=True)
    assert b"Paid." in response.content
    (renewal,) = renewals(server)
    assert renewal.status == "succeeded"
    run_jobs(until=lambda: status(server) == Server.Status.RUNNING)
    row = subscription_of(server)
    assert (row.status, row.past_due_since, row.suspended_at) == ("active", None, None)
    assert User.objects.get(pk=customer.pk).payment_overdue_since is None

    # Paying again finds nothing open: no second payment.
    response = client.post(page, {"action": "pay"}, follow=True)
    assert b"Nothing to do" in response.content
    assert renewals(server).count() == 1


@pytest.mark.django_db(transaction=True)
def test_events_owed_are_delivered_later_and_a_redelivery_changes_nothing(bought, clock):
    _, server, session = bought
    clock.move_to(START + PERIOD)
    assert simulated_stripe.subscription_renew(session.pk)  # as if the worker died here
    assert SimulatedEvent.objects.filter(delivered_at__isnull=True).count() == 2
    assert not renewals(server).exists()

    assert simulator.events_deliver() == 2
    assert renewals(server).count() == 1

    SimulatedEvent.objects.update(delivered_at=None)  # delivered again, as Stripe may
    assert simulator.events_deliver() == 2
    assert renewals(server).count() == 1
    assert StripeEvent.objects.filter(type="invoice.paid").count() == 2  # first + renewal


@pytest.mark.django_db(transaction=True)
def test_two_renewal_runs_at_once_make_one_invoice(bought, clock):
    _, server, session = bought
    clock.move_to(START + PERIOD)
    barrier, results = threading.Barrier(2), []

    def renew():
        try:
            barrier.wait()
            results.append(simulated_stripe.subscription_renew(session.pk))
        finally:
            connection.close()

    threads = [threading.Thread(target=renew) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False, True]
    assert SimulatedInvoice.objects.filter(session=session).count() == 1
    simulator.events_deliver()
    assert renewals(server).count() == 1


@pytest.mark.django_db(transaction=True)
def test_cancel_at_period_end_ends_it_then_the_server_is_deleted_after_the_grace(bought, clock):
    _, server, session = bought
    state = SimulatedGateway().subscription_cancel_at_period_end(
        subscription_id=sub_id(session), cancel=True
    )
    assert state.cancel_at_period_end
    assert subscription_of(server).cancel_at_period_end  # its updated event was delivered

    clock.move_to(START + PERIOD)
    assert simulator.subscriptions_renew() == 1
    row = subscription_of(server)
    assert (row.status, row.canceled_at) == ("canceled", START + PERIOD)
    assert not renewals(server).exists()
    run_jobs(until=lambda: status(server) == Server.Status.SUSPENDED)
    assert [m.subject for m in mail.outbox if "ended" in m.subject]

    clock.move_to(START + PERIOD + timedelta(days=0.02, seconds=1))
    assert subscriptions_delete_ended() == 1
    assert status(server) == Server.Status.DELETED


@pytest.mark.django_db(transaction=True)
def test_resume_before_the_end_keeps_it_renewing(bought, clock):
    _, server, session = bought
    gateway = SimulatedGateway()
    gateway.subscription_cancel_at_period_end(subscription_id=sub_id(session), cancel=True)
    gateway.subscription_cancel_at_period_end(subscription_id=sub_id(session), cancel=False)
    assert not subscription_of(server).cancel_at_period_end
    clock.move_to(START + PERIOD)
    simulator.subscriptions_renew()
    assert renewals(server).count() == 1
    assert subscription_of(server).status == "active"


@pytest.mark.django_db(transaction=True)
def test_a_refunded_renewal_is_refunded_in_the_simulator_and_the_server_stays(bought, clock):
    from billing import services

    _, server, session = bought
    clock.move_to(START + PERIOD)
    simulator.subscriptions_renew()
    (renewal,) = renewals(server)
    assert services.payment_refund(payment_id=renewal.pk, kind=services.RefundKind.STAFF)
    renewal.refresh_from_db()
    assert renewal.status == "refunded"
    assert renewal.stripe_refund_id == f"re_sim_{session.session_id.split('_')[-1]}_2"
    assert SimulatedInvoice.objects.get(session=session).refund_id == renewal.stripe_refund_id
    assert status(server) == Server.Status.RUNNING
    assert subscription_of(server).status == "active"


@pytest.mark.django_db
def test_the_simulator_page_is_the_customers_own_and_off_with_stripe(client, settings):
    owner, other = UserFactory(), UserFactory()
    payment = start_checkout(client, owner, "basic")
    SimulatedGateway().complete(payment.stripe_checkout_session_id)
    session = SimulatedCheckoutSession.objects.get(session_id=payment.stripe_checkout_session_id)
    page = reverse("billing:simulator_subscription", args=[sub_id(session)])

    assert client.get(page).status_code == 200
    response = client.post(page, {"action": "explode"}, follow=True)
    assert b"Choose one of the buttons." in response.content

    client.force_login(other)
    assert client.get(page).status_code == 404
    assert client.post(page, {"action": "fail_next"}).status_code == 404
    assert not SimulatedCheckoutSession.objects.get(pk=session.pk).fail_next_renewal

    client.force_login(owner)
    settings.STRIPE_SECRET_KEY = "sk_test_x"
    assert client.get(page).status_code == 404
