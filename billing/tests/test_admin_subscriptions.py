"""Staff's subscription screen: "Suspend now", "Resume", "Cancel now" and "Refund the
last payment", each asking first on the shared confirmation page and then calling the
service that owns the change. The subscription is bought, and renewed, through the real
webhook view against Stripe faked at the HTTP layer (billing/tests/stripe_fakes.py)."""

from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import constants as levels
from django.contrib.messages import get_messages
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from procrastinate.contrib.django.models import ProcrastinateJob

from accounts.models import AuditEvent
from accounts.tests.factories import UserFactory
from billing import subscriptions
from billing.models import Payment, Subscription
from billing.tasks import subscription_notify
from billing.tests import test_purchase_stripe as purchase
from billing.tests.factories import PaymentFactory
from billing.tests.flow import deliver
from billing.tests.stripe_fakes import form, stripe_object
from billing.tests.test_subscriptions import PERIOD_END, event, renewal_invoice
from hosting.admin_links import admin_url
from servers.models import Server, ServerEvent
from servers.tests.factories import ServerFactory

pytestmark = pytest.mark.django_db

cloud = purchase.cloud
CHANGELIST = admin_url(Subscription, "changelist")
SUBSCRIPTION = "/v1/subscriptions/sub_1"
REFUNDS = "/v1/refunds"
ACTIONS = ("suspend_now", "resume", "cancel_now", "refund_last_payment")


class StripeSubscription:
    """sub_1 as Stripe holds it: GET reads it, DELETE cancels it (or is refused with
    `refusal`, Stripe's message)."""

    def __init__(self, stripe_api):
        self.status = "active"
        self.refusal = ""
        stripe_api.handle("GET", SUBSCRIPTION, lambda request: self.as_stripe())
        stripe_api.handle("DELETE", SUBSCRIPTION, self.cancel)

    def as_stripe(self):
        item = stripe_object("subscription_item", current_period_end=PERIOD_END)
        return stripe_object(
            "subscription",
            id="sub_1",
            customer="cus_1",
            status=self.status,
            cancel_at_period_end=False,
            items={"object": "list", "data": [item]},
        )

    def cancel(self, request):
        if self.refusal:
            error = {"type": "invalid_request_error", "code": "locked", "message": self.refusal}
            return 400, {"error": error}
        self.status = "canceled"
        return self.as_stripe()


@pytest.fixture
def bought(cloud):
    """A customer's running server bought through Stripe, and its subscription."""
    stripe_api, _ = cloud
    stripe = StripeSubscription(stripe_api)
    payment, server = purchase.paid_server(stripe_api, Client())
    return SimpleNamespace(
        stripe_api=stripe_api,
        stripe=stripe,
        purchase=payment,
        server=server,
        customer=server.user,
        subscription=Subscription.objects.get(stripe_subscription_id="sub_1"),
    )


@pytest.fixture
def renewed(bought):
    """The same, a month later: the first renewal paid (invoice in_2, pi_2)."""
    purchase.invoice_paid_with(bought.stripe_api, invoice_id="in_2", pi="pi_2", charge="ch_2")
    assert deliver(Client(), event("invoice.paid", renewal_invoice())).status_code == 200
    bought.renewal = Payment.objects.get(kind=Payment.Kind.RENEWAL)
    return bought


def act(client, action, *rows, confirm=False):
    data = {"action": action, "_selected_action": [row.pk for row in rows]}
    if confirm:
        data["confirm"] = "yes"
    return client.post(CHANGELIST, data)


def messages_of(response) -> list[tuple[int, str]]:
    return [(m.level, str(m)) for m in get_messages(response.wsgi_request)]


def label(row) -> str:
    return f"{row.stripe_subscription_id}: {row.server.name} of {row.user.email}"


def jobs(task_name: str, **args):
    found = ProcrastinateJob.objects.filter(task_name=task_name)
    return found.filter(args=args) if args else found


def snapshot(server) -> dict:
    """Everything an action could change."""
    return {
        "subscription": Subscription.objects.filter(server=server).values().get(),
        "server": Server.objects.get(pk=server.pk).status,
        "payments": sorted(Payment.objects.values_list("pk", "status")),
        "server_events": ServerEvent.objects.filter(server=server).count(),
        "audit": AuditEvent.objects.count(),
        "jobs": ProcrastinateJob.objects.count(),
    }


def staff_audit(action: str):
    return AuditEvent.objects.filter(action=AuditEvent.Action.STAFF_ACTION, metadata__action=action)


def staff_suspend(row, actor):
    assert subscriptions.subscription_suspend_by_staff(subscription_id=row.pk, actor=actor)


def subscription_row(n: int, *, server_status=Server.Status.RUNNING, **fields):
    """A subscription made with factories (no Stripe), for several rows at once."""
    paid = PaymentFactory(stripe_subscription_id=f"sub_row_{n}")
    server = ServerFactory(user=paid.user, plan=paid.plan, payment=paid, status=server_status)
    return Subscription.objects.create(
        server=server,
        user=server.user,
        plan=server.plan,
        stripe_subscription_id=f"sub_row_{n}",
        **fields,
    )


# -- asking first --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "title", "button", "says"),
    [
        ("suspend_now", "Suspend now?", "Yes, suspend 1 server", " (Running)"),
        ("resume", "Resume?", "Yes, resume 1 server", ": suspended by our staff since "),
        ("cancel_now", "Cancel now, without a refund?", "Yes, cancel 1 subscription", " (Running)"),
        (
            "refund_last_payment",
            "Refund the last payment?",
            "Yes, refund 1 payment",
            ": the renewal, $9.00 paid ",
        ),
    ],
)
def test_each_action_asks_first_listing_the_rows_and_changes_nothing(
    client, staff, renewed, action, title, button, says
):
    row = renewed.subscription
    if action == "resume":
        staff_suspend(row, staff)
    before = snapshot(renewed.server)
    calls = len(renewed.stripe_api.calls())

    response = act(client, action, row)

    assert response.status_code == 200
    content = response.content.decode()
    assert f"<title>{title}" in content
    assert f"<li>{label(row)}{says}" in content
    assert f'value="{button}"' in content
    assert 'name="confirm" value="yes"' in content
    assert f'name="action" value="{action}"' in content
    assert f'name="_selected_action" value="{row.pk}"' in content
    assert "Left as they are" not in content
    assert snapshot(renewed.server) == before
    assert len(renewed.stripe_api.calls()) == calls  # Stripe not asked anything


# -- suspend, resume -----------------------------------------------------------------------


def test_suspend_now_suspends_once_audited_and_mails_the_customer(
    client, staff, bought, mailoutbox
):
    row = bought.subscription
    stripe_calls = len(bought.stripe_api.calls())

    response = act(client, "suspend_now", row, confirm=True)

    assert response.status_code == 302
    assert messages_of(response) == [
        (levels.INFO, f"{label(row)}: suspended; the server is being powered off.")
    ]
    assert Server.objects.get(pk=bought.server.pk).status == Server.Status.SUSPENDED
    row.refresh_from_db()
    assert row.suspended_by_staff is True and row.suspended_at is not None
    assert (row.status, row.canceled_at) == ("active", None)
    (audit,) = staff_audit("subscription_suspend")
    assert (audit.actor, audit.target_type, audit.target_id) == (
        staff,
        "billing.subscription",
        str(row.pk),
    )
    (notify,) = jobs("billing.tasks.subscription_notify")
    assert notify.args == {"subscription_id": row.pk, "kind": "suspended"}
    assert jobs("servers.tasks.server_action_run").count() == 1  # the power-off
    subscription_notify(**notify.args)
    (mail,) = mailoutbox
    assert mail.to == [bought.customer.email] and "suspended" in mail.subject
    assert len(bought.stripe_api.calls()) == stripe_calls  # Stripe is not involved
    after = snapshot(bought.server)

    asked = act(client, "suspend_now", row).content.decode()
    again = act(client, "suspend_now", row, confirm=True)

    assert f"<li>{label(row)}: already suspended by our staff since " in asked
    assert "Yes, suspend" not in asked
    assert messages_of(again) == [
        (
            levels.WARNING,
            f"{label(row)}: not suspended: it already was, or the subscription has ended.",
        )
    ]
    assert snapshot(bought.server) == after


def test_suspend_skips_a_server_still_being_built_with_its_reason(client, staff):
    running = subscription_row(1)
    building = subscription_row(2, server_status=Server.Status.PROVISIONING)

    asked = act(client, "suspend_now", running, building).content.decode()
    response = act(client, "suspend_now", running, building, confirm=True)

    assert f"<li>{label(running)} (Running)</li>" in asked
    assert (
        f"<li>{label(building)}: the server is provisioning: only a running or stopped "
        "server can be suspended</li>"
    ) in asked
    assert 'value="Yes, suspend 1 server"' in asked
    assert sorted(messages_of(response)) == [
        (levels.INFO, f"{label(running)}: suspended; the server is being powered off."),
        (
            levels.ERROR,
            f"{label(building)}: not suspended: Only a running or stopped server can be "
            "suspended (this one is being built or has ended).",
        ),
    ]
    assert Server.objects.get(pk=running.server_id).status == Server.Status.SUSPENDED
    assert Server.objects.get(pk=building.server_id).status == Server.Status.PROVISIONING
    building.refresh_from_db()
    assert (building.suspended_at, building.suspended_by_staff) == (None, False)
    assert staff_audit("subscription_suspend").count() == 1


def test_resume_lifts_a_staff_suspension_once(client, staff, bought):
    row = bought.subscription
    staff_suspend(row, staff)
    ProcrastinateJob.objects.all().delete()

    response = act(client, "resume", row, confirm=True)

    assert messages_of(response) == [
        (levels.INFO, f"{label(row)}: resumed; the server is being started.")
    ]
    # Stopped until the start action's job has the provider power it on.
    assert Server.objects.get(pk=bought.server.pk).status == Server.Status.STOPPED
    row.refresh_from_db()
    assert (row.suspended_at, row.suspended_by_staff) == (None, False)
    (audit,) = staff_audit("subscription_resume")
    assert audit.actor == staff and audit.target_id == str(row.pk)
    (notify,) = jobs("billing.tasks.subscription_notify")
    assert notify.args == {"subscription_id": row.pk, "kind": "resumed_by_staff"}
    assert jobs("servers.tasks.server_action_run").count() == 1  # the power-on
    after = snapshot(bought.server)

    asked = act(client, "resume", row).content.decode()
    again = act(client, "resume", row, confirm=True)

    assert f"<li>{label(row)}: not suspended</li>" in asked
    assert "Yes, resume" not in asked
    assert messages_of(again) == [
        (levels.WARNING, f"{label(row)}: not resumed: it is not suspended.")
    ]
    assert snapshot(bought.server) == after


def test_resuming_billings_suspension_still_overdue_starts_a_new_grace_period(
    client, staff, bought
):
    row = bought.subscription
    long_ago = timezone.now() - timedelta(days=20)
    Subscription.objects.filter(pk=row.pk).update(
        status="past_due", past_due_since=long_ago, suspended_at=long_ago
    )
    Server.objects.filter(pk=bought.server.pk).update(status=Server.Status.SUSPENDED)

    asked = act(client, "resume", row).content.decode()
    before = timezone.now()
    act(client, "resume", row, confirm=True)

    assert ": suspended by billing (an unpaid renewal) since " in asked
    assert "; still overdue: a new 7-day grace period starts now</li>" in asked
    row.refresh_from_db()
    assert row.suspended_at is None and row.past_due_since >= before
    assert Server.objects.get(pk=bought.server.pk).status == Server.Status.STOPPED


# -- cancel --------------------------------------------------------------------------------


def test_cancel_now_cancels_in_stripe_suspends_and_schedules_the_deletion(
    client, staff, bought, settings
):
    settings.DELETION_GRACE_DAYS = 14
    row = bought.subscription

    response = act(client, "cancel_now", row, confirm=True)

    assert messages_of(response) == [
        (
            levels.INFO,
            f"{label(row)}: cancelled in Stripe; the server is suspended and will be "
            "deleted after 14 days.",
        )
    ]
    (cancel,) = bought.stripe_api.calls("DELETE", SUBSCRIPTION)
    assert bought.stripe_api.calls("POST", REFUNDS) == []  # no refund
    row.refresh_from_db()
    assert row.status == "canceled" and row.canceled_at is not None
    assert row.delete_after == row.canceled_at + timedelta(days=14)
    assert Server.objects.get(pk=bought.server.pk).status == Server.Status.SUSPENDED
    assert Payment.objects.get(pk=bought.purchase.pk).status == Payment.Status.SUCCEEDED
    (audit,) = staff_audit("subscription_cancel")
    assert audit.actor == staff and audit.target_id == str(row.pk)
    (notify,) = jobs("billing.tasks.subscription_notify")
    assert notify.args == {"subscription_id": row.pk, "kind": "canceled"}
    after = snapshot(bought.server)

    asked = act(client, "cancel_now", row).content.decode()
    again = act(client, "cancel_now", row, confirm=True)

    assert f"<li>{label(row)}: already ended on " in asked
    assert "Yes, cancel" not in asked
    assert messages_of(again) == [
        (levels.WARNING, f"{label(row)}: not cancelled: it had already ended.")
    ]
    assert len(bought.stripe_api.calls("DELETE", SUBSCRIPTION)) == 1
    assert snapshot(bought.server) == after


def test_stripe_refusing_the_cancellation_is_an_error_and_changes_nothing(client, staff, bought):
    bought.stripe.refusal = "This subscription cannot be canceled right now."
    row = bought.subscription
    before = snapshot(bought.server)

    response = act(client, "cancel_now", row, confirm=True)

    ((level, text),) = messages_of(response)
    assert level == levels.ERROR
    assert text.startswith(f"{label(row)}: not cancelled: Stripe refused to cancel")
    assert "This subscription cannot be canceled right now." in text
    assert snapshot(bought.server) == before
    assert bought.stripe.status == "active"


# -- refund the last payment -----------------------------------------------------------------


def test_refunding_the_last_payment_when_it_is_a_renewal_keeps_the_server(client, staff, renewed):
    renewed.stripe_api.reply("POST", REFUNDS, stripe_object("refund", id="re_renewal"))
    row, renewal = renewed.subscription, renewed.renewal
    subscription_before = Subscription.objects.filter(pk=row.pk).values().get()

    response = act(client, "refund_last_payment", row, confirm=True)

    assert messages_of(response) == [
        (
            levels.INFO,
            f"{label(row)}, the renewal: refunded $9.00 to {renewed.customer.email}.",
        )
    ]
    (call,) = renewed.stripe_api.calls("POST", REFUNDS)
    assert form(call) == {"payment_intent": ["pi_2"]}
    renewal.refresh_from_db()
    assert (renewal.status, renewal.stripe_refund_id) == ("refunded", "re_renewal")
    assert Payment.objects.get(pk=renewed.purchase.pk).status == Payment.Status.SUCCEEDED
    assert Server.objects.get(pk=renewed.server.pk).status == Server.Status.RUNNING
    assert Subscription.objects.filter(pk=row.pk).values().get() == subscription_before
    assert ServerEvent.objects.filter(server=renewed.server, kind="refund_issued").count() == 1
    assert not jobs("servers.tasks.droplet_destroy").exists()
    assert not jobs("billing.tasks.subscription_cancel").exists()
    assert jobs(
        "billing.tasks.payment_notify", payment_id=renewal.pk, kind="refunded:staff"
    ).exists()
    audit = AuditEvent.objects.get(action=AuditEvent.Action.PAYMENT_REFUND)
    assert (audit.actor, audit.target_id) == (staff, str(renewal.pk))
    after = snapshot(renewed.server)

    asked = act(client, "refund_last_payment", row).content.decode()
    again = act(client, "refund_last_payment", row, confirm=True)

    # Once the last payment is refunded, the purchase (and the server) are not next.
    already = "its last payment, the renewal of $9.00, was already refunded on "
    assert f"<li>{label(row)}: {already}" in asked
    assert "Yes, refund" not in asked
    ((level, text),) = messages_of(again)
    assert level == levels.WARNING
    assert text.startswith(f"{label(row)}: nothing refunded: {already}")
    assert len(renewed.stripe_api.calls("POST", REFUNDS)) == 1
    assert snapshot(renewed.server) == after


def test_refunding_the_last_payment_when_it_is_the_purchase_deletes_the_server(
    client, staff, bought
):
    bought.stripe_api.reply("POST", REFUNDS, stripe_object("refund", id="re_purchase"))
    row = bought.subscription

    asked = act(client, "refund_last_payment", row).content.decode()
    response = act(client, "refund_last_payment", row, confirm=True)

    assert (
        f"<li>{label(row)}: the purchase, $9.00 paid " in asked
        and f": the server {bought.server.name} is DELETED (its data lost) and the "
        "subscription cancelled</li>"
        in asked
    )
    assert 'value="Yes, refund 1 payment and delete 1 server"' in asked
    assert messages_of(response) == [
        (levels.INFO, f"{label(row)}, the purchase: refunded $9.00 to {bought.customer.email}.")
    ]
    (call,) = bought.stripe_api.calls("POST", REFUNDS)
    assert form(call) == {"payment_intent": ["pi_1"]}
    assert Payment.objects.get(pk=bought.purchase.pk).status == Payment.Status.REFUNDED
    assert Server.objects.get(pk=bought.server.pk).status == Server.Status.DELETED
    assert jobs("servers.tasks.droplet_destroy", server_id=bought.server.pk).count() == 1
    assert jobs("billing.tasks.subscription_cancel", payment_id=bought.purchase.pk).count() == 1


def test_stripe_refusing_the_refund_is_an_error_and_changes_nothing(client, staff, renewed):
    renewed.stripe_api.error("POST", REFUNDS, code="charge_disputed", message="Disputed.")
    row = renewed.subscription
    before = snapshot(renewed.server)

    response = act(client, "refund_last_payment", row, confirm=True)

    ((level, text),) = messages_of(response)
    assert level == levels.ERROR
    assert text.startswith(f"{label(row)}, the renewal: not refunded: ")
    assert "Disputed." in text
    assert snapshot(renewed.server) == before


# -- who may -------------------------------------------------------------------------------


@pytest.fixture
def view_only_staff(client, settings):
    settings.STAFF_REQUIRE_MFA = False
    member = UserFactory(is_staff=True)
    member.user_permissions.add(
        Permission.objects.get(codename="view_subscription", content_type__app_label="billing")
    )
    client.force_login(member)
    return member


@pytest.mark.parametrize("action", ACTIONS)
def test_staff_who_may_only_view_subscriptions_cannot_run_the_actions(
    client, view_only_staff, renewed, action
):
    row = renewed.subscription
    before = snapshot(renewed.server)
    calls = len(renewed.stripe_api.calls())

    page = client.get(CHANGELIST)
    asked = act(client, action, row)
    confirmed = act(client, action, row, confirm=True)

    assert page.status_code == 200
    assert row.stripe_subscription_id in page.content.decode()
    assert f'value="{action}"' not in page.content.decode()
    assert "Left as they are" not in asked.content.decode()
    assert 'name="confirm"' not in asked.content.decode()
    assert not any("suspended;" in text or "refunded" in text for _, text in messages_of(confirmed))
    assert snapshot(renewed.server) == before
    assert len(renewed.stripe_api.calls()) == calls


@pytest.mark.parametrize("action", ACTIONS)
def test_customers_cannot_run_the_actions(client, renewed, action):
    client.force_login(renewed.customer)
    before = snapshot(renewed.server)

    response = act(client, action, renewed.subscription, confirm=True)

    assert response.status_code == 302 and "/login/" in response.url
    assert snapshot(renewed.server) == before


# -- the screens ------------------------------------------------------------------------------


def test_the_list_costs_the_same_queries_for_one_row_or_many_and_offers_the_actions(client, staff):
    suspended = {"suspended_by_staff": True, "suspended_at": timezone.now()}
    subscription_row(0, **suspended)
    with CaptureQueriesContext(connection) as one:
        first = client.get(CHANGELIST)
    rows = [subscription_row(n, **suspended) for n in range(1, 5)]
    with CaptureQueriesContext(connection) as five:
        page = client.get(CHANGELIST)

    assert first.status_code == page.status_code == 200
    assert len(five) == len(one)
    content = page.content.decode()
    for action in ACTIONS:
        assert f'value="{action}"' in content
    assert "?stripe_subscription_id=sub_row_4" in content
    assert f'<a href="{admin_url(rows[-1].server)}">{rows[-1].server.name}</a>' in content
    assert "column-suspended_by_staff" in content and "column-canceled_at" in content


def test_the_detail_shows_the_failure_the_suspension_and_links_to_the_payments(
    client, staff, renewed
):
    row = renewed.subscription
    Subscription.objects.filter(pk=row.pk).update(failure_reason="Card <declined>.")
    other = PaymentFactory(stripe_subscription_id="sub_someone_else")

    content = client.get(admin_url(row)).content.decode()
    payments = client.get(f"{admin_url(Payment, 'changelist')}?stripe_subscription_id=sub_1")

    assert "Card &lt;declined&gt;." in content
    assert "Suspended by staff" in content and "Canceled at" in content
    assert f'href="{admin_url(Payment, "changelist")}?stripe_subscription_id=sub_1"' in content
    assert payments.status_code == 200
    listed = payments.content.decode()
    assert admin_url(renewed.purchase) in listed and admin_url(renewed.renewal) in listed
    assert admin_url(other) not in listed
