"""The purchase against Stripe and DigitalOcean faked at the HTTP layer (the real SDKs run):
checkout, signed events in any order, duplicated and concurrent, provisioning with its
retries and adoption, refunds from staff and from Stripe."""

import itertools
import threading
from unittest import mock

import pytest
from django.core import mail
from django.db import connection
from django.test import Client
from procrastinate.contrib.django.models import ProcrastinateJob

from accounts.tests.factories import UserFactory
from billing import services
from billing.models import Payment, StripeEvent
from billing.tests.factories import plan
from billing.tests.flow import deliver, start_checkout
from billing.tests.stripe_fakes import form, invoice_payment, stripe_list, stripe_object
from hosting.testing import run_jobs
from servers.models import Server, ServerEvent
from servers.providers.digitalocean import DigitalOceanProvider
from servers.services import (
    _credentials_ensure,
    _droplet_spec,
    droplet_destroy_for,
    server_provision_fail,
)
from servers.tests.do_fakes import FakeDigitalOcean, write_panel_key


@pytest.fixture
def cloud(settings, stripe_api, tmp_path):
    """Stripe and DigitalOcean, both faked on one `responses` mock."""
    settings.PANEL_SSH_KEY_FILE = str(write_panel_key(tmp_path)[0])
    settings.DIGITALOCEAN_TOKEN = "dop_v1_test_token"
    settings.PROVISION_POLL_SECONDS = 0
    settings.PROVISION_RETRY_SECONDS = 0
    for slug in ("basic", "pro", "premium"):
        type(plan(slug)).objects.filter(slug=slug).update(stripe_price_id=f"price_{slug}")
    do = FakeDigitalOcean(stripe_api.mock)
    return stripe_api, do


def session_created(stripe_api, session_id="cs_test_a1"):
    stripe_api.reply(
        "POST",
        "/v1/checkout/sessions",
        stripe_object(
            "checkout.session", id=session_id, url=f"https://checkout.stripe.com/c/{session_id}"
        ),
    )


def invoice_paid_with(stripe_api, invoice_id="in_1", pi="pi_1", charge="ch_1"):
    stripe_api.reply(
        "GET",
        "/v1/invoice_payments",
        stripe_list(
            [invoice_payment(invoice_id, pi, charge)],
            "/v1/invoice_payments",
        ),
        query={"invoice": invoice_id},
    )


EVENT_IDS = itertools.count(1)


def event(event_type, obj):
    return stripe_object(
        "event", id=f"evt_test_{next(EVENT_IDS)}", type=event_type, data={"object": obj}
    )


def session_completed(payment, *, session_id="cs_test_a1", paid=True, invoice="in_1"):
    return event(
        "checkout.session.completed",
        stripe_object(
            "checkout.session",
            id=session_id,
            mode="subscription",
            status="complete",
            payment_status="paid" if paid else "unpaid",
            client_reference_id=str(payment.uuid),
            metadata={"payment_uuid": str(payment.uuid)},
            customer="cus_1",
            subscription="sub_1",
            invoice=invoice,
        ),
    )


def invoice_paid(payment, *, invoice_id="in_1"):
    return event(
        "invoice.paid",
        stripe_object(
            "invoice",
            id=invoice_id,
            billing_reason="subscription_create",
            status="paid",
            amount_paid=payment.amount_cents,
            customer="cus_1",
            parent={
                "type": "subscription_details",
                "subscription_details": {
                    "subscription": "sub_1",
                    "metadata": {"payment_uuid": str(payment.uuid)},
                },
            },
        ),
    )


def charge_refunded(charge="ch_1", pi="pi_1"):
    return event(
        "charge.refunded",
        stripe_object("charge", id=charge, payment_intent=pi, refunded=True, amount_refunded=900),
    )


def server_running(payment):
    def check():
        server = Server.objects.filter(payment=payment).first()
        return server is not None and server.status == Server.Status.RUNNING

    return check


def jobs_settled():
    return not ProcrastinateJob.objects.filter(status__in=["todo", "doing"]).exists()


@pytest.mark.django_db(transaction=True)
def test_happy_path_checkout_webhook_droplet_running_mail(client, cloud):
    stripe_api, do = cloud
    session_created(stripe_api)
    invoice_paid_with(stripe_api)
    customer = UserFactory()

    payment = start_checkout(client, customer, "basic")

    (create,) = stripe_api.calls("POST", "/v1/checkout/sessions")
    params = form(create)
    assert params["mode"] == ["subscription"]
    assert params["line_items[0][price]"] == ["price_basic"]
    assert params["client_reference_id"] == [str(payment.uuid)]
    assert params["subscription_data[metadata][payment_uuid]"] == [str(payment.uuid)]
    assert create.request.headers["Idempotency-Key"] == f"checkout-{payment.uuid}"
    assert payment.checkout_url == "https://checkout.stripe.com/c/cs_test_a1"

    assert deliver(client, session_completed(payment)).status_code == 200
    assert deliver(client, invoice_paid(payment)).status_code == 200
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    assert (payment.stripe_customer_id, payment.stripe_subscription_id) == ("cus_1", "sub_1")
    assert (payment.stripe_invoice_id, payment.stripe_payment_intent_id) == ("in_1", "pi_1")
    assert payment.stripe_charge_id == "ch_1"

    run_jobs(until=server_running(payment))

    server = Server.objects.get(payment=payment)
    (body,) = do.creates
    assert body["tags"] == [f"server-{server.uuid}"]
    assert body["size"] == "s-1vcpu-1gb"
    assert body["user_data"].startswith("#cloud-config")
    assert server.ssh_password not in body["user_data"]
    assert server.ssh_host_key.split()[1] in body["user_data"]
    assert len(body["ssh_keys"]) == 1  # the panel's key: DigitalOcean emails no password
    assert server.provider_id == str(next(iter(do.droplets)))
    assert server.ip_address.startswith("198.51.100.")
    kinds = list(ServerEvent.objects.filter(server=server).values_list("kind", flat=True))
    assert kinds == ["payment_confirmed", "droplet_requested", "droplet_active", "ready"]
    run_jobs(until=jobs_settled)
    assert sorted(m.subject for m in mail.outbox) == [
        "[Hosting] Payment received: Basic",
        f"[Hosting] Your server {server.name} is ready",
    ]


@pytest.mark.django_db(transaction=True)
def test_the_same_event_twenty_times_at_once_makes_one_server_and_one_droplet(cloud):
    stripe_api, do = cloud
    session_created(stripe_api)
    customer = UserFactory()
    payment = start_checkout(Client(), customer)
    completed = session_completed(payment)
    barrier = threading.Barrier(20)
    statuses = []

    def post():
        try:
            barrier.wait()
            statuses.append(deliver(Client(), completed).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert statuses == [200] * 20
    assert StripeEvent.objects.get().attempts == 1
    assert Payment.objects.get(pk=payment.pk).status == Payment.Status.SUCCEEDED
    assert Server.objects.filter(user=customer).count() == 1
    run_jobs(until=server_running(payment))
    assert len(do.creates) == 1


@pytest.mark.django_db(transaction=True)
def test_a_retried_job_adopts_the_droplet_an_earlier_attempt_created(cloud):
    """An attempt that created the droplet and died before recording it leaves exactly
    this: a droplet with the server's tag, and no provider id on the server."""
    stripe_api, do = cloud
    session_created(stripe_api)
    payment = start_checkout(Client(), UserFactory())
    deliver(Client(), session_completed(payment))
    server = _credentials_ensure(Server.objects.get(payment=payment))
    provider = DigitalOceanProvider(token="dop_v1_test_token")
    earlier = provider.create(_droplet_spec(server, provider))

    run_jobs(until=server_running(payment))

    server.refresh_from_db()
    assert len(do.creates) == 1
    assert server.provider_id == earlier.id
    requested = ServerEvent.objects.get(server=server, kind="droplet_requested")
    assert "earlier attempt" in requested.message


@pytest.mark.django_db(transaction=True)
def test_a_create_that_failed_with_500_is_retried_by_the_job_not_by_the_sdk(cloud):
    stripe_api, do = cloud
    do.fail_creates = 1
    session_created(stripe_api)
    payment = start_checkout(Client(), UserFactory())
    deliver(Client(), session_completed(payment))

    run_jobs(until=server_running(payment))

    assert len(do.creates) == 2  # one per job attempt, none by azure-core's retry policy
    assert len(do.droplets) == 1
    server = Server.objects.get(payment=payment)
    retrying = ServerEvent.objects.get(server=server, kind="retrying")
    assert "Attempt 1 failed" in retrying.message


@pytest.mark.django_db(transaction=True)
def test_two_completed_sessions_for_one_customer_make_one_server_and_one_refund(
    client, cloud, settings
):
    stripe_api, do = cloud
    customer = UserFactory()
    first = Payment.objects.create(
        user=customer, plan=plan("basic"), amount_cents=900, stripe_checkout_session_id="cs_1"
    )
    second = Payment.objects.create(
        user=customer, plan=plan("pro"), amount_cents=2900, stripe_checkout_session_id="cs_2"
    )
    invoice_paid_with(stripe_api, "in_2", "pi_2", "ch_2")
    stripe_api.reply("POST", "/v1/refunds", stripe_object("refund", id="re_2"))
    stripe_api.reply("DELETE", "/v1/subscriptions/sub_2", stripe_object("subscription"))

    deliver(client, session_completed(first, session_id="cs_1", invoice="in_1"))
    second_event = session_completed(second, session_id="cs_2", invoice="in_2")
    second_event["data"]["object"]["subscription"] = "sub_2"
    deliver(client, second_event)
    run_jobs(
        until=lambda: (
            Payment.objects.get(pk=second.pk).status == Payment.Status.REFUNDED and jobs_settled()
        )
    )

    assert Server.objects.filter(user=customer).count() == 1
    assert Server.objects.get(user=customer).payment_id == first.pk
    (refund,) = stripe_api.calls("POST", "/v1/refunds")
    assert form(refund) == {"payment_intent": ["pi_2"]}
    assert refund.request.headers["Idempotency-Key"] == f"refund-{second.uuid}"
    assert len(stripe_api.calls("DELETE", "/v1/subscriptions/sub_2")) == 1
    assert Payment.objects.get(pk=first.pk).status == Payment.Status.SUCCEEDED
    assert len(do.creates) == 1
    refund_mail = [m for m in mail.outbox if "Refund issued" in m.subject]
    assert len(refund_mail) == 1 and "already have a server" in refund_mail[0].body


def paid_server_pending(stripe_api, client):
    """A paid payment whose server is waiting for its provisioning job."""
    session_created(stripe_api)
    invoice_paid_with(stripe_api)
    payment = start_checkout(client, UserFactory())
    deliver(client, session_completed(payment))
    deliver(client, invoice_paid(payment))
    return Payment.objects.get(pk=payment.pk), Server.objects.get(payment=payment)


def paid_server(stripe_api, client):
    """A customer whose payment went through and whose server is running."""
    payment, server = paid_server_pending(stripe_api, client)
    Server.objects.filter(pk=server.pk).update(status=Server.Status.RUNNING, provider_id="3164001")
    return payment, server


def staff_refund(payment):
    return services.payment_refund(
        payment_id=payment.pk, kind=services.RefundKind.STAFF, actor=UserFactory(is_staff=True)
    )


@pytest.mark.django_db
@pytest.mark.parametrize("order", ["staff_first", "stripe_first"])
def test_refund_from_staff_and_from_stripe_in_both_orders_twice_each(client, cloud, order):
    stripe_api, _ = cloud
    payment, server = paid_server(stripe_api, client)
    stripe_api.reply("POST", "/v1/refunds", stripe_object("refund", id="re_1"))
    steps = [lambda: staff_refund(payment), lambda: deliver(client, charge_refunded())]
    if order == "stripe_first":
        steps.reverse()
    for step in steps * 2:
        step()

    payment.refresh_from_db()
    server.refresh_from_db()
    assert payment.status == Payment.Status.REFUNDED
    assert server.status == Server.Status.DELETED
    assert len(stripe_api.calls("POST", "/v1/refunds")) == (1 if order == "staff_first" else 0)
    assert ServerEvent.objects.filter(server=server, kind="refund_issued").count() == 1
    destroy_jobs = ProcrastinateJob.objects.filter(task_name="servers.tasks.droplet_destroy")
    assert destroy_jobs.count() == 1
    assert (
        ProcrastinateJob.objects.filter(task_name="billing.tasks.payment_notify")
        .filter(args__kind__startswith="refunded:")
        .count()
        == 1
    )


@pytest.mark.django_db
def test_a_failure_between_the_two_writes_leaves_neither(client, cloud):
    stripe_api, _ = cloud
    payment, server = paid_server(stripe_api, client)
    stripe_api.reply("POST", "/v1/refunds", stripe_object("refund", id="re_1"))

    with (
        mock.patch("servers.services.server_delete", side_effect=RuntimeError("disk full")),
        pytest.raises(RuntimeError),
    ):
        staff_refund(payment)

    payment.refresh_from_db()
    server.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    assert payment.stripe_refund_id == ""
    assert server.status == Server.Status.RUNNING
    assert not ProcrastinateJob.objects.filter(task_name="servers.tasks.droplet_destroy").exists()
    # Done again once the fault is gone: the same idempotency key, so still one refund.
    assert staff_refund(payment) is True
    keys = {c.request.headers["Idempotency-Key"] for c in stripe_api.calls("POST", "/v1/refunds")}
    assert keys == {f"refund-{payment.uuid}"}


@pytest.mark.django_db(transaction=True)
def test_provisioning_that_always_fails_refunds_once_and_giving_up_again_changes_nothing(
    client, cloud, settings
):
    stripe_api, do = cloud
    settings.PROVISION_ATTEMPTS = 2
    do.fail_creates = 99
    payment, _ = paid_server_pending(stripe_api, client)
    stripe_api.reply("POST", "/v1/refunds", stripe_object("refund", id="re_1"))
    stripe_api.reply("DELETE", "/v1/subscriptions/sub_1", stripe_object("subscription"))

    run_jobs(
        until=lambda: (
            Payment.objects.get(pk=payment.pk).status == Payment.Status.REFUNDED and jobs_settled()
        )
    )
    server = Server.objects.get(payment=payment)
    assert server.status == Server.Status.FAILED
    assert len(do.creates) == 2  # one per attempt

    assert server_provision_fail(server_id=server.pk, reason="again") is False
    run_jobs(until=jobs_settled)

    (refund,) = stripe_api.calls("POST", "/v1/refunds")
    assert refund.request.headers["Idempotency-Key"] == f"refund-{payment.uuid}"
    assert form(refund) == {"payment_intent": ["pi_1"]}
    assert Payment.objects.get(pk=payment.pk).stripe_refund_id == "re_1"
    told = [m for m in mail.outbox if m.to == [payment.user.email]]
    assert [m.subject for m in told if "could not be built" in m.subject] == [
        "[Hosting] Your server could not be built: refunded"
    ]
    assert not any("Refund issued" in m.subject for m in told)  # one mail says both
    assert ServerEvent.objects.filter(server=server, kind="failed").count() == 1
    assert ServerEvent.objects.filter(server=server, kind="refund_issued").count() == 1


def refund_replies(stripe_api):
    stripe_api.reply("POST", "/v1/refunds", stripe_object("refund", id="re_1"))
    stripe_api.reply("DELETE", "/v1/subscriptions/sub_1", stripe_object("subscription"))


@pytest.mark.django_db(transaction=True)
def test_a_refunded_servers_droplet_is_destroyed_once(client, cloud):
    stripe_api, do = cloud
    payment, server = paid_server_pending(stripe_api, client)
    refund_replies(stripe_api)
    run_jobs(until=server_running(payment))
    (droplet_id,) = do.droplets

    staff_refund(payment)
    run_jobs(until=jobs_settled)

    assert do.destroyed == [droplet_id]
    assert droplet_destroy_for(server_id=server.pk) is False  # the job run again
    assert do.destroyed == [droplet_id]
    assert ServerEvent.objects.filter(server=server, kind="destroyed").count() == 1
    assert len(stripe_api.calls("DELETE", "/v1/subscriptions/sub_1")) == 1


@pytest.mark.django_db(transaction=True)
def test_a_build_that_times_out_destroys_the_droplet_it_started(client, cloud, settings):
    stripe_api, do = cloud
    do.boot_polls = 10**6  # never boots
    settings.PROVISION_TIMEOUT = 1
    payment, server = paid_server_pending(stripe_api, client)
    refund_replies(stripe_api)

    run_jobs(
        until=lambda: (
            Payment.objects.get(pk=payment.pk).status == Payment.Status.REFUNDED and jobs_settled()
        )
    )

    server.refresh_from_db()
    assert server.status == Server.Status.FAILED
    assert len(do.creates) == 1 and do.destroyed == [int(server.provider_id)]
    failed = ServerEvent.objects.get(server=server, kind="failed")
    assert failed.message == "The server was not ready after 1 s."
