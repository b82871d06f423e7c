"""`manage.py billing_reconcile`: what Stripe (or the simulator) knows and the webhook never
told us is fulfilled exactly as the webhook would have, once; waiting events are processed
again; paid payments without a server are reported."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone
from procrastinate.contrib.django.models import ProcrastinateJob

from accounts.tests.factories import UserFactory
from billing.gateways.simulated import SimulatedGateway
from billing.models import Payment, StripeEvent
from billing.reconcile import LOOKBACK
from billing.tasks import billing_reconcile_periodic
from billing.tests.factories import PaymentFactory, plan
from billing.tests.flow import completed_event, deliver, start_checkout
from billing.tests.stripe_fakes import query, stripe_list, stripe_object
from servers.models import Server
from servers.tests.factories import ServerFactory

pytestmark = pytest.mark.django_db

SESSIONS = "/v1/checkout/sessions"


@pytest.fixture
def simulated(settings):
    settings.STRIPE_SECRET_KEY = ""


def reconcile() -> str:
    out = StringIO()
    call_command("billing_reconcile", stdout=out)
    return out.getvalue()


def paid_but_never_told(client) -> Payment:
    """A simulated checkout the customer paid, whose events never reached the webhook."""
    payment = start_checkout(client, UserFactory())
    SimulatedGateway().complete(payment.stripe_checkout_session_id)  # not delivered
    assert Payment.objects.get(pk=payment.pk).status == Payment.Status.PENDING
    return payment


def test_a_paid_session_whose_events_were_lost_is_fulfilled(client, simulated):
    payment = paid_but_never_told(client)
    session_id = payment.stripe_checkout_session_id

    output = reconcile()

    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    assert payment.paid_at is not None
    assert payment.stripe_subscription_id.startswith("sub_sim_")
    server = Server.objects.get(payment=payment)
    assert server.status == Server.Status.PROVISIONING
    assert ProcrastinateJob.objects.filter(task_name="servers.tasks.server_provision").count() == 1
    assert "Completed Checkout Sessions seen: 1" in output
    assert "Fulfilled now (their webhook was missed): 1" in output
    assert f"  {session_id}\n" in output


def test_reconciling_twice_changes_nothing_the_second_time(client, simulated):
    payment = paid_but_never_told(client)
    reconcile()
    servers, jobs = Server.objects.count(), ProcrastinateJob.objects.count()
    paid_at = Payment.objects.get(pk=payment.pk).paid_at

    output = reconcile()

    assert Server.objects.count() == servers == 1
    assert ProcrastinateJob.objects.count() == jobs
    assert Payment.objects.get(pk=payment.pk).paid_at == paid_at
    assert "Completed Checkout Sessions seen: 1" in output
    assert "Fulfilled now (their webhook was missed): 0" in output
    assert payment.stripe_checkout_session_id not in output


def test_events_arriving_after_reconciliation_change_nothing(client, simulated):
    payment = paid_but_never_told(client)
    reconcile()
    jobs = ProcrastinateJob.objects.count()

    for event in SimulatedGateway().complete(payment.stripe_checkout_session_id):
        assert deliver(client, event).status_code == 200

    assert Server.objects.filter(payment=payment).count() == 1
    assert ProcrastinateJob.objects.count() == jobs
    assert Payment.objects.get(pk=payment.pk).stripe_charge_id.startswith("ch_sim_")


def test_the_periodic_job_reconciles_too(client, simulated):
    payment = paid_but_never_told(client)
    billing_reconcile_periodic(timestamp=0)
    assert Payment.objects.get(pk=payment.pk).status == Payment.Status.SUCCEEDED
    assert Server.objects.filter(payment=payment).exists()


def test_a_waiting_event_older_than_a_minute_is_processed_again(client, simulated):
    payment_uuid = "0b8f8f0e-8d59-4a55-bd1e-3c7f0c0f9d11"
    deliver(client, completed_event("cs_test_early", payment_uuid))
    deliver(client, completed_event("cs_test_young", "7d7c1b52-52f0-4a8e-9d0c-2f1d0b5f1c22"))
    early = StripeEvent.objects.get(payload__data__object__id="cs_test_early")
    young = StripeEvent.objects.get(payload__data__object__id="cs_test_young")
    StripeEvent.objects.filter(pk=early.pk).update(
        received_at=timezone.now() - timedelta(minutes=2)
    )
    payment = PaymentFactory(
        uuid=payment_uuid,
        status=Payment.Status.PENDING,
        paid_at=None,
        stripe_checkout_session_id="",
        stripe_payment_intent_id="",
    )

    output = reconcile()

    assert "Waiting events processed again: 1" in output
    assert f"  {early.event_id}: processed" in output
    assert young.event_id not in output
    early.refresh_from_db()
    assert early.processed_at is not None and early.error == ""
    assert early.payment == payment
    assert Payment.objects.get(pk=payment.pk).status == Payment.Status.SUCCEEDED
    assert Server.objects.filter(payment=payment).exists()
    young.refresh_from_db()
    assert young.processed_at is None and young.attempts == 1


def test_a_waiting_event_still_without_its_payment_keeps_waiting(client, simulated):
    deliver(client, completed_event("cs_test_orphan", "3e9f7c2a-1111-4c3d-8e5f-9a0b1c2d3e4f"))
    event = StripeEvent.objects.get()
    StripeEvent.objects.filter(pk=event.pk).update(
        received_at=timezone.now() - timedelta(minutes=5)
    )

    output = reconcile()

    assert f"  {event.event_id}: waiting" in output
    event.refresh_from_db()
    assert event.processed_at is None
    assert event.attempts == 2
    assert event.error == "No payment for Checkout Session cs_test_orphan."


def test_a_paid_payment_without_a_server_is_reported(simulated):
    lost = PaymentFactory(paid_at=timezone.now() - timedelta(minutes=5))
    PaymentFactory(paid_at=timezone.now())  # may still be in its webhook's transaction

    output = reconcile()

    assert "Paid payments without a server: 1" in output
    assert str(lost.uuid) in output
    assert lost.user.email in output
    assert "Basic $9.00" in output
    assert "Every paid payment has a server." not in output


def test_a_second_payment_awaiting_its_automatic_refund_is_not_reported(client, simulated):
    customer = UserFactory()
    ServerFactory(user=customer, status=Server.Status.RUNNING)
    second = Payment.objects.create(user=customer, plan=plan("basic"), amount_cents=900)
    session = SimulatedGateway()
    second.stripe_checkout_session_id = session.checkout_session_create(
        payment=second, success_url="http://x/", cancel_url="http://x/"
    ).id
    second.save(update_fields=["stripe_checkout_session_id"])
    for event in session.complete(second.stripe_checkout_session_id):
        deliver(client, event)
    Payment.objects.filter(pk=second.pk).update(paid_at=timezone.now() - timedelta(minutes=5))
    assert ProcrastinateJob.objects.filter(task_name="billing.tasks.payment_refund").exists()

    output = reconcile()

    assert str(second.uuid) not in output
    assert "Every paid payment has a server." in output


def test_unpaid_checkouts_older_than_a_day_are_expired(simulated):
    stale = PaymentFactory(
        status=Payment.Status.PENDING, paid_at=None, created_at=timezone.now() - timedelta(hours=26)
    )
    fresh = PaymentFactory(status=Payment.Status.PENDING, paid_at=None)

    assert "Unpaid checkouts now expired: 1" in reconcile()

    stale.refresh_from_db()
    assert (stale.status, stale.failure_reason) == ("failed", "The checkout expired unpaid.")
    assert Payment.objects.get(pk=fresh.pk).status == Payment.Status.PENDING
    assert "Unpaid checkouts now expired: 0" in reconcile()


def test_nothing_to_report_says_so(simulated):
    output = reconcile()
    assert "Completed Checkout Sessions seen: 0" in output
    assert "Every paid payment has a server." in output


def test_with_stripe_lists_recent_completed_sessions_and_fulfils_a_missed_one(stripe_api):
    payment = PaymentFactory(
        status=Payment.Status.PENDING,
        paid_at=None,
        stripe_checkout_session_id="cs_test_missed",
        stripe_payment_intent_id="",
    )
    fulfilled = PaymentFactory(stripe_checkout_session_id="cs_test_seen")
    ServerFactory(user=fulfilled.user, payment=fulfilled)

    def session(session_id, reference):
        return stripe_object(
            "checkout.session",
            id=session_id,
            status="complete",
            payment_status="paid",
            mode="subscription",
            client_reference_id=reference,
            metadata={"payment_uuid": reference},
            customer="cus_missed",
            subscription="sub_missed",
            invoice="in_missed",
        )

    stripe_api.reply(
        "GET",
        SESSIONS,
        stripe_list(
            [
                session("cs_test_missed", str(payment.uuid)),
                session("cs_test_seen", str(fulfilled.uuid)),
                session("cs_test_elsewhere", "not-a-uuid"),
            ],
            SESSIONS,
        ),
    )
    before = int((timezone.now() - LOOKBACK).timestamp())

    output = reconcile()

    after = int((timezone.now() - LOOKBACK).timestamp())
    (listing,) = stripe_api.calls("GET", SESSIONS)
    params = query(listing)
    assert params["status"] == ["complete"]
    assert params["limit"] == ["100"]
    assert before <= int(params["created[gte]"][0]) <= after
    assert stripe_api.posts() == []
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    assert payment.stripe_subscription_id == "sub_missed"
    assert payment.stripe_invoice_id == "in_missed"
    assert Server.objects.filter(payment=payment).count() == 1
    assert Server.objects.count() == 2
    assert "Completed Checkout Sessions seen: 3" in output
    assert "Fulfilled now (their webhook was missed): 1" in output
    assert "  cs_test_missed\n" in output
    assert "no payment here for cs_test_elsewhere" in output
    assert "cs_test_seen" not in output
