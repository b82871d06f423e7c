"""Recurring billing against Stripe and DigitalOcean faked at the HTTP layer: renewals,
a failed renewal's grace period, suspension and resumption, cancellation and deletion
after its grace, disputes. Every event goes signed through the real webhook view; the
handlers re-read the subscription from Stripe, so duplicated, reordered and late events
leave the state Stripe has now."""

import itertools
import threading
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core import mail
from django.db import connection
from procrastinate.contrib.django.models import ProcrastinateJob

from accounts.models import AuditEvent
from billing import subscriptions
from billing.models import Payment, StripeEvent, Subscription
from billing.tests import test_purchase_stripe as purchase
from billing.tests.flow import deliver
from billing.tests.stripe_fakes import stripe_object
from hosting.testing import run_jobs
from servers.models import Server, ServerAction, ServerEvent

cloud = purchase.cloud
START = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
PERIOD_END = int(datetime(2026, 12, 1, 12, 0, tzinfo=UTC).timestamp())
NEXT_PERIOD_END = int(datetime(2027, 1, 1, 12, 0, tzinfo=UTC).timestamp())
EVENT_IDS = itertools.count(1)


@pytest.fixture
def clock():
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


def event(event_type, obj, event_id=None):
    return stripe_object(
        "event",
        id=event_id or f"evt_sub_{next(EVENT_IDS)}",
        type=event_type,
        data={"object": obj},
    )


def stripe_has(stripe_api, *, status, period_end=PERIOD_END, cancel_at_period_end=False):
    """What GET /v1/subscriptions/sub_1 answers from now on (Stripe's state)."""
    stripe_api.reply(
        "GET",
        "/v1/subscriptions/sub_1",
        stripe_object(
            "subscription",
            id="sub_1",
            customer="cus_1",
            status=status,
            cancel_at_period_end=cancel_at_period_end,
            items={
                "object": "list",
                "data": [stripe_object("subscription_item", current_period_end=period_end)],
            },
        ),
    )


def renewal_invoice(invoice_id="in_2", *, amount=900):
    return stripe_object(
        "invoice",
        id=invoice_id,
        billing_reason="subscription_cycle",
        status="paid",
        amount_paid=amount,
        amount_due=amount,
        currency="usd",
        customer="cus_1",
        hosted_invoice_url=f"https://invoice.stripe.com/i/{invoice_id}",
        parent={"type": "subscription_details", "subscription_details": {"subscription": "sub_1"}},
    )


def failed_invoice(invoice_id="in_2"):
    return {**renewal_invoice(invoice_id), "status": "open", "amount_paid": 0}


@pytest.fixture
def bought(cloud, client):
    """A customer's running server on a real (fake) droplet, bought through Stripe."""
    stripe_api, do = cloud
    payment, server = purchase.paid_server(stripe_api, client)
    droplet = do.add_droplet()
    Server.objects.filter(pk=server.pk).update(provider_id=str(droplet))
    purchase.invoice_paid_with(stripe_api, invoice_id="in_2", pi="pi_2", charge="ch_2")
    return stripe_api, do, droplet, Server.objects.get(pk=server.pk)


def subscription():
    return Subscription.objects.get(stripe_subscription_id="sub_1")


def server_of(server):
    return Server.objects.get(pk=server.pk)


def mails(subject_part):
    return [m for m in mail.outbox if subject_part in m.subject]


@pytest.mark.django_db
def test_the_purchase_makes_the_servers_subscription(bought):
    _, _, _, server = bought
    row = subscription()
    assert (row.server, row.user, row.status) == (server, server.user, "active")
    assert row.stripe_customer_id == "cus_1"


@pytest.mark.django_db
def test_a_renewal_is_a_payment_and_extends_the_period_once(bought, client):
    stripe_api, _, _, server = bought
    stripe_has(stripe_api, status="active", period_end=NEXT_PERIOD_END)
    paid = event("invoice.paid", renewal_invoice())

    for delivery in (paid, paid, {**paid, "id": "evt_sub_redelivered_as_new"}):
        assert deliver(client, delivery).status_code == 200

    (renewal,) = Payment.objects.filter(kind="renewal")
    assert (renewal.renews, renewal.user, renewal.amount_cents, renewal.status) == (
        server,
        server.user,
        900,
        "succeeded",
    )
    assert (renewal.stripe_invoice_id, renewal.stripe_payment_intent_id) == ("in_2", "pi_2")
    assert subscription().current_period_end == datetime.fromtimestamp(NEXT_PERIOD_END, tz=UTC)
    assert (
        ProcrastinateJob.objects.filter(
            task_name="billing.tasks.payment_notify",
            args={"payment_id": renewal.pk, "kind": "renewed"},
        ).count()
        == 1
    )


@pytest.mark.django_db(transaction=True)
def test_failed_renewal_grace_suspension_payment_resumed(bought, client, clock):
    """The whole dunning path with the clock moved, every event delivered twice."""
    stripe_api, do, droplet, server = bought
    stripe_has(stripe_api, status="past_due")
    failed = event("invoice.payment_failed", failed_invoice())
    deliver(client, failed)
    deliver(client, failed)
    run_jobs()

    row = subscription()
    assert (row.status, row.past_due_since) == ("past_due", START)
    assert row.failure_reason == "Your renewal payment of $9.00 did not go through."
    assert row.suspends_at == START + timedelta(days=7)
    assert row.pay_url == "https://invoice.stripe.com/i/in_2"
    (warning,) = mails("renewal payment failed")
    assert "$9.00" in warning.body and "https://invoice.stripe.com/i/in_2" in warning.body

    clock.move_to(START + timedelta(days=6))
    assert subscriptions.subscriptions_suspend_overdue() == 0  # still in the grace period
    clock.move_to(START + timedelta(days=7, minutes=1))
    assert subscriptions.subscriptions_suspend_overdue() == 1
    assert subscriptions.subscriptions_suspend_overdue() == 0
    run_jobs()
    assert server_of(server).status == "suspended"
    assert do.power(droplet) == "off"  # powered off through the provider job
    assert len(mails("suspended")) == 1
    assert ServerEvent.objects.filter(server=server, kind="suspended").count() == 1

    stripe_has(stripe_api, status="active", period_end=NEXT_PERIOD_END)
    paid = event("invoice.paid", renewal_invoice())
    deliver(client, paid)
    deliver(client, paid)
    run_jobs()
    assert server_of(server).status == "running"
    assert do.power(droplet) == "active"
    row = subscription()
    assert (row.status, row.past_due_since, row.suspended_at, row.failure_reason) == (
        "active",
        None,
        None,
        "",
    )
    assert len(mails("back")) == 1
    assert Payment.objects.filter(kind="renewal").count() == 1

    # Stripe's failure event for that invoice, arriving late: Stripe says active now.
    deliver(client, event("invoice.payment_failed", failed_invoice()))
    run_jobs()
    assert subscription().past_due_since is None
    assert len(mails("renewal payment failed")) == 1


@pytest.mark.django_db(transaction=True)
def test_two_workers_suspending_at_once_suspend_once_and_mail_once(bought, client, clock):
    stripe_api, _, _, server = bought
    stripe_has(stripe_api, status="past_due")
    deliver(client, event("invoice.payment_failed", failed_invoice()))
    clock.move_to(START + timedelta(days=8))
    barrier, results = threading.Barrier(2), []

    def worker():
        try:
            barrier.wait()
            results.append(subscriptions.subscriptions_suspend_overdue())
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [0, 1]
    assert ServerAction.objects.filter(server=server, kind="stop").count() == 1
    notify = ProcrastinateJob.objects.filter(
        task_name="billing.tasks.subscription_notify", args__kind="suspended"
    )
    assert notify.count() == 1


@pytest.mark.django_db(transaction=True)
def test_cancellation_suspends_then_deletes_only_after_the_grace_and_the_warning(
    bought, client, clock, settings
):
    stripe_api, do, droplet, server = bought
    settings.DELETION_GRACE_DAYS = 14
    stripe_has(stripe_api, status="canceled")
    ended = event("customer.subscription.deleted", stripe_object("subscription", id="sub_1"))
    deliver(client, ended)
    deliver(client, ended)
    row = subscription()
    assert (row.status, row.canceled_at, row.delete_after) == (
        "canceled",
        START,
        START + timedelta(days=14),
    )
    assert server_of(server).status == "suspended"

    # The warning has not gone out yet: even past the date, nothing is deleted.
    clock.move_to(START + timedelta(days=15))
    assert subscriptions.subscriptions_delete_ended() == 0
    clock.move_to(START)
    run_jobs()
    (warning,) = mails("back up your server")
    assert "Nov 15, 2026" in warning.body
    assert subscription().deletion_warned_at is not None

    clock.move_to(START + timedelta(days=13))
    assert subscriptions.subscriptions_delete_ended() == 0
    clock.move_to(START + timedelta(days=14, minutes=1))
    assert subscriptions.subscriptions_delete_ended() == 1
    assert subscriptions.subscriptions_delete_ended() == 0
    run_jobs()
    assert server_of(server).status == "deleted"
    assert do.destroyed == [droplet]


@pytest.mark.django_db
def test_cancel_at_period_end_then_resume_keeps_everything(bought, client):
    stripe_api, do, droplet, server = bought
    stripe_has(stripe_api, status="active", cancel_at_period_end=True)
    deliver(
        client, event("customer.subscription.updated", stripe_object("subscription", id="sub_1"))
    )
    assert subscription().cancel_at_period_end is True

    stripe_has(stripe_api, status="active", cancel_at_period_end=False)
    deliver(
        client, event("customer.subscription.updated", stripe_object("subscription", id="sub_1"))
    )
    row = subscription()
    assert (row.cancel_at_period_end, row.canceled_at, row.delete_after) == (False, None, None)
    assert server_of(server).status == "running"


@pytest.mark.django_db
def test_an_updated_event_applies_stripes_state_not_the_events(bought, client):
    """An old `updated` event (past_due in its body) arriving after the payment: Stripe
    is asked, says active, and active it stays."""
    stripe_api, _, _, _ = bought
    stripe_has(stripe_api, status="active", period_end=NEXT_PERIOD_END)
    stale = stripe_object("subscription", id="sub_1", status="past_due")
    deliver(client, event("customer.subscription.updated", stale))
    row = subscription()
    assert (row.status, row.past_due_since) == ("active", None)


@pytest.mark.django_db
def test_an_event_for_an_unknown_subscription_waits(cloud, client):
    stripe_api, _ = cloud
    stripe_api.reply("GET", "/v1/subscriptions/sub_9", stripe_object("subscription", id="sub_9"))
    response = deliver(
        client, event("customer.subscription.updated", stripe_object("subscription", id="sub_9"))
    )
    assert response.status_code == 200
    row = StripeEvent.objects.get()
    assert row.processed_at is None and "No subscription sub_9" in row.error


@pytest.mark.django_db
def test_a_dispute_flags_the_payment_mails_staff_and_changes_nothing_else(bought, client):
    _, _, _, server = bought
    payment = Payment.objects.get(server=server)
    dispute = stripe_object(
        "dispute", id="dp_1", charge="ch_1", payment_intent="pi_1", reason="fraudulent"
    )
    created = event("charge.dispute.created", dispute)
    deliver(client, created)
    deliver(client, created)

    payment.refresh_from_db()
    assert (payment.stripe_dispute_id, payment.dispute_reason, payment.status) == (
        "dp_1",
        "fraudulent",
        "succeeded",
    )
    assert payment.disputed_at is not None
    assert server_of(server).status == "running"
    (audit,) = AuditEvent.objects.filter(action="payment_dispute")
    assert audit.target_id == str(payment.pk) and audit.metadata["dispute"] == "dp_1"
    assert (
        ProcrastinateJob.objects.filter(
            task_name="billing.tasks.payment_dispute_notify", args={"payment_id": payment.pk}
        ).count()
        == 1
    )


@pytest.mark.django_db
def test_the_dispute_mail_goes_to_staff(bought, client, settings, mailoutbox):
    from billing.tasks import payment_dispute_notify

    settings.STAFF_NOTIFICATION_EMAILS = ["billing@example.test"]
    _, _, _, server = bought
    payment = Payment.objects.get(server=server)
    dispute = stripe_object("dispute", id="dp_1", charge="ch_1", reason="fraudulent")
    deliver(client, event("charge.dispute.created", dispute))
    payment_dispute_notify(payment_id=payment.pk)
    (sent,) = mailoutbox
    assert sent.to == ["billing@example.test"]
    assert "fraudulent" in sent.body and "dp_1" in sent.body


@pytest.mark.django_db
def test_reconciliation_reads_subscriptions_stripe_has_not_mentioned_for_a_day(bought, clock):
    stripe_api, _, _, _ = bought
    stripe_has(stripe_api, status="active", period_end=NEXT_PERIOD_END)
    Subscription.objects.update(synced_at=START - timedelta(hours=2))
    assert subscriptions.subscriptions_reconcile() == 0  # told us recently enough
    Subscription.objects.update(synced_at=START - timedelta(days=2))
    assert subscriptions.subscriptions_reconcile() == 1
    row = subscription()
    assert row.synced_at == START
    assert row.current_period_end == datetime.fromtimestamp(NEXT_PERIOD_END, tz=UTC)


@pytest.mark.django_db
def test_a_suspended_server_refuses_the_customers_power_actions(bought):
    from servers.actions import ActionRefused, server_action_request

    _, _, _, server = bought
    Server.objects.filter(pk=server.pk).update(status="suspended")
    with pytest.raises(ActionRefused, match="This server is suspended: see Billing"):
        server_action_request(server_id=server.pk, kind="start", actor=server.user)


@pytest.mark.django_db
def test_a_suspended_server_still_counts_as_the_customers_one_server(bought):
    from billing.services import checkout_refusal

    _, _, _, server = bought
    Server.objects.filter(pk=server.pk).update(status="suspended")
    assert checkout_refusal(user=server.user) is not None
