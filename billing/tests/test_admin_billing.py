"""Staff's billing screens: "Refund and delete server" through Stripe (faked at the HTTP
layer), the webhook events with "Process again", and the background jobs page."""

import re

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from procrastinate.contrib.django.models import ProcrastinateJob

from accounts.models import AuditEvent
from accounts.tests.factories import StaffFactory, UserFactory
from billing.models import Payment, StripeEvent
from billing.tests.factories import PaymentFactory
from billing.tests.flow import completed_event, deliver
from billing.tests.stripe_fakes import form, stripe_object
from hosting.admin_links import admin_url
from hosting.jobs import defer
from servers.models import Server, ServerEventKind
from servers.tasks import server_provision
from servers.tests.factories import ServerFactory

pytestmark = pytest.mark.django_db

REFUNDS = "/v1/refunds"


@pytest.fixture(autouse=True)
def _admin_without_mfa(settings):
    settings.STAFF_REQUIRE_MFA = False


@pytest.fixture
def paid():
    payment = PaymentFactory(
        stripe_payment_intent_id="pi_paid_1",
        stripe_charge_id="ch_paid_1",
        stripe_subscription_id="sub_paid_1",
    )
    ServerFactory(user=payment.user, payment=payment, plan=payment.plan)
    return payment


def refund_action(client, *payments, confirm=False):
    data = {
        "action": "refund_and_delete_server",
        "_selected_action": [p.pk for p in payments],
    }
    if confirm:
        data["confirm"] = "yes"
    return client.post(admin_url(Payment, "changelist"), data)


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def jobs(task_name: str):
    return ProcrastinateJob.objects.filter(task_name=task_name)


def test_refund_asks_first_and_changes_nothing(client, staff, stripe_api, paid):
    response = refund_action(client, paid)

    assert response.status_code == 200
    content = response.content.decode()
    assert "Refund and delete server?" in content
    assert f"$9.00 from {paid.user.email} for Basic: server {paid.server.name} (Running)" in content
    assert 'name="confirm" value="yes"' in content
    assert f'name="_selected_action" value="{paid.pk}"' in content
    assert stripe_api.calls() == []
    paid.refresh_from_db()
    assert paid.status == Payment.Status.SUCCEEDED
    assert Server.objects.get(payment=paid).status == Server.Status.RUNNING
    assert not ProcrastinateJob.objects.exists()
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.PAYMENT_REFUND).exists()


def test_confirmed_refund_goes_through_stripe_and_deletes_the_server(
    client, staff, stripe_api, paid
):
    stripe_api.reply("POST", REFUNDS, stripe_object("refund", id="re_admin_1", status="succeeded"))
    server = paid.server

    response = refund_action(client, paid, confirm=True)

    assert response.status_code == 302
    assert messages_of(response) == [f"{paid}: refunded $9.00 to {paid.user.email}."]
    (call,) = stripe_api.calls("POST", REFUNDS)
    assert form(call) == {"payment_intent": ["pi_paid_1"]}
    assert call.request.headers["Idempotency-Key"] == f"refund-{paid.uuid}"
    paid.refresh_from_db()
    assert paid.status == Payment.Status.REFUNDED
    assert paid.refunded_at is not None
    assert paid.stripe_refund_id == "re_admin_1"
    assert paid.refund_reason == "Refunded by our staff."
    server.refresh_from_db()
    assert server.status == Server.Status.DELETED
    kinds = list(server.events.values_list("kind", flat=True))
    assert kinds == [ServerEventKind.DELETED, ServerEventKind.REFUND_ISSUED]
    assert list(jobs("servers.tasks.droplet_destroy").values_list("args", flat=True)) == [
        {"server_id": server.pk}
    ]
    assert list(jobs("billing.tasks.subscription_cancel").values_list("args", flat=True)) == [
        {"payment_id": paid.pk}
    ]
    assert jobs("billing.tasks.payment_notify").get().args == {
        "payment_id": paid.pk,
        "kind": "refunded:staff",
    }
    audit = AuditEvent.objects.get(action=AuditEvent.Action.PAYMENT_REFUND)
    assert audit.actor == staff
    assert audit.target_type == "billing.payment"
    assert audit.target_id == str(paid.pk)
    assert audit.metadata == {"kind": "staff", "amount_cents": 900}


def test_refunding_again_makes_no_second_call_and_changes_nothing(client, staff, stripe_api, paid):
    stripe_api.reply("POST", REFUNDS, stripe_object("refund", id="re_admin_1"))
    refund_action(client, paid, confirm=True)
    job_count = ProcrastinateJob.objects.count()

    asked = refund_action(client, paid)
    refund_action(client, paid, confirm=True)

    content = asked.content.decode()
    assert "(only paid payments are refunded)" in content
    assert "Basic · $9.00 · Refunded" in content
    assert "Yes, refund" not in content
    assert len(stripe_api.calls("POST", REFUNDS)) == 1
    assert ProcrastinateJob.objects.count() == job_count
    assert AuditEvent.objects.filter(action=AuditEvent.Action.PAYMENT_REFUND).count() == 1
    assert Payment.objects.get(pk=paid.pk).stripe_refund_id == "re_admin_1"


def test_confirming_a_refund_someone_else_already_made_says_already_refunded(
    client, staff, stripe_api, paid
):
    stripe_api.reply("POST", REFUNDS, stripe_object("refund", id="re_admin_1"))
    asked = refund_action(client, paid)  # this staff member sees the confirmation page...
    assert "Yes, refund 1 payment" in asked.content.decode()
    colleague = Client()
    colleague.force_login(StaffFactory())
    refund_action(colleague, paid, confirm=True)  # ...while a colleague refunds it

    response = refund_action(client, paid, confirm=True)

    assert len(stripe_api.calls("POST", REFUNDS)) == 1
    assert any("already refunded" in text for text in messages_of(response))


def test_a_pending_payment_is_skipped(client, staff, stripe_api):
    payment = PaymentFactory(
        status=Payment.Status.PENDING, paid_at=None, stripe_payment_intent_id=""
    )

    asked = refund_action(client, payment)
    refund_action(client, payment, confirm=True)

    content = asked.content.decode()
    assert "(only paid payments are refunded)" in content
    assert "Basic · $9.00 · Pending" in content
    assert stripe_api.calls() == []
    assert Payment.objects.get(pk=payment.pk).status == Payment.Status.PENDING
    assert not ProcrastinateJob.objects.exists()


def test_a_mixed_selection_refunds_only_the_paid_one(client, staff, stripe_api, paid):
    stripe_api.reply("POST", REFUNDS, stripe_object("refund", id="re_admin_1"))
    waiting = PaymentFactory(
        status=Payment.Status.PENDING, paid_at=None, stripe_payment_intent_id=""
    )

    refund_action(client, paid, waiting, confirm=True)

    assert len(stripe_api.calls("POST", REFUNDS)) == 1
    assert Payment.objects.get(pk=paid.pk).status == Payment.Status.REFUNDED
    assert Payment.objects.get(pk=waiting.pk).status == Payment.Status.PENDING


def test_stripe_refusing_the_refund_is_reported_and_changes_nothing(
    client, staff, stripe_api, paid
):
    stripe_api.error("POST", REFUNDS, code="charge_disputed", message="This charge is disputed.")

    response = refund_action(client, paid, confirm=True)

    (text,) = messages_of(response)
    assert "not refunded" in text and "This charge is disputed." in text
    assert Payment.objects.get(pk=paid.pk).status == Payment.Status.SUCCEEDED
    assert Server.objects.get(payment=paid).status == Server.Status.RUNNING
    assert not ProcrastinateJob.objects.exists()


# --- webhook events -----------------------------------------------------------------------------


def test_stripe_event_page_shows_payload_time_error_and_payment(client, staff):
    payment = PaymentFactory(status=Payment.Status.PENDING, paid_at=None)
    deliver(client, completed_event(payment.stripe_checkout_session_id, str(payment.uuid)))
    event = StripeEvent.objects.get()
    StripeEvent.objects.filter(pk=event.pk).update(
        processing_ms=1234, error="Stripe unavailable: <timeout>"
    )

    content = client.get(admin_url(event)).content.decode()

    assert event.event_id in content
    assert "<pre>{" in content
    assert f"&quot;id&quot;: &quot;{payment.stripe_checkout_session_id}&quot;" in content
    assert re.search(r"Processing ms:</label>\s*<div class=\"readonly\">1234</div>", content)
    assert "Stripe unavailable: &lt;timeout&gt;" in content  # escaped
    assert f'<a href="{admin_url(payment)}">' in content


def test_process_again_runs_a_waiting_event_once_its_payment_exists(client, staff):
    customer = UserFactory()
    payment_uuid = "5a0e4f63-1f3c-4a9b-9a53-6a1e0c6c7e21"
    deliver(client, completed_event("cs_test_late", payment_uuid))
    event = StripeEvent.objects.get()
    assert event.processed_at is None
    assert event.error == "No payment for Checkout Session cs_test_late."
    page = client.get(admin_url(event)).content.decode()
    assert "No payment for Checkout Session cs_test_late." in page

    payment = PaymentFactory(
        user=customer,
        uuid=payment_uuid,
        status=Payment.Status.PENDING,
        paid_at=None,
        stripe_checkout_session_id="",
        stripe_payment_intent_id="",
    )
    response = client.post(
        admin_url(StripeEvent, "changelist"),
        {"action": "process_again", "_selected_action": [event.pk]},
    )

    assert response.status_code == 302
    assert messages_of(response) == [f"{event.event_id}: processed"]
    event.refresh_from_db()
    assert event.processed_at is not None
    assert event.error == ""
    assert event.attempts == 2
    assert event.payment == payment
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    assert payment.stripe_checkout_session_id == "cs_test_late"
    assert Server.objects.get(payment=payment).status == Server.Status.PROVISIONING
    assert jobs("servers.tasks.server_provision").count() == 1
    assert f'<a href="{admin_url(payment)}">' in client.get(admin_url(event)).content.decode()


def test_staff_see_the_background_jobs(client, staff):
    server = ServerFactory(status=Server.Status.PROVISIONING)
    job_id = defer(server_provision, lock=f"server:{server.pk}", server_id=server.pk)

    response = client.get(admin_url(ProcrastinateJob, "changelist"))

    assert response.status_code == 200
    content = response.content.decode()
    assert f"/admin/procrastinate/procrastinatejob/{job_id}/change/" in content
    assert "servers.tasks.server_provision" in content
    assert (
        f"&quot;server_id&quot;: {server.pk}" in content or f'"server_id": {server.pk}' in content
    )


def test_customers_cannot_open_the_jobs_page(client):
    client.force_login(UserFactory())
    response = client.get(admin_url(ProcrastinateJob, "changelist"))
    assert response.status_code == 302
    assert "/login/" in response.url
