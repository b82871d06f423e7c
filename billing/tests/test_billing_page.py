"""The customer's /billing/ page through the real views: the subscription card (plan, price,
renewal or end, past due with the reason and where to pay, suspended, ended), the invoices,
the past-due banner every page shows from the user row, "Update payment method" (Stripe's
billing portal) and "Cancel at period end" / "Resume" with their confirmation, against
Stripe faked at the HTTP layer."""

import copy
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.contrib.messages import get_messages
from django.db import connection
from django.template.loader import render_to_string
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext
from django.utils.functional import SimpleLazyObject

from accounts.models import AuditEvent, User
from accounts.tests.factories import UserFactory
from billing.models import Payment, PaymentKind, Subscription
from billing.tests.factories import PaymentFactory, plan
from billing.tests.stripe_fakes import form, stripe_object
from hosting import tenant
from servers.models import Server
from servers.tests.factories import ServerFactory

pytestmark = pytest.mark.django_db

START = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
PERIOD_END = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
# What Stripe answers after a change: a period end our row did not have yet.
STRIPE_PERIOD_END = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)

# session, user, and the page's one query (the subscription with its plan and server, the
# payments with their plans and servers): whatever the number of payments, and with or
# without the past-due banner (and the tenant scope set and cleared).
BILLING_PAGE_QUERIES = 3 + tenant.SCOPE_QUERIES

BANNER = '<div class="banner-overdue" role="alert">'
SITE_PROCESSOR = "hosting.context_processors.site"


@pytest.fixture(autouse=True)
def clock(settings):
    settings.BILLING_GRACE_DAYS = 7
    settings.DELETION_GRACE_DAYS = 14
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


@pytest.fixture
def customer(client):
    user = UserFactory()
    client.force_login(user)
    return user


def subscribed(
    user, *, sub_id="sub_1", plan_slug="pro", server_status=Server.Status.RUNNING, **fields
):
    """The customer's server, bought with its first payment, and its subscription row."""
    purchase = PaymentFactory(
        user=user,
        plan=plan(plan_slug),
        stripe_subscription_id=sub_id,
        stripe_customer_id=f"cus_{sub_id}",
        created_at=START - timedelta(days=30),
    )
    server = ServerFactory(user=user, plan=purchase.plan, payment=purchase, status=server_status)
    fields = {
        "status": Subscription.Status.ACTIVE,
        "current_period_end": PERIOD_END,
        "stripe_customer_id": f"cus_{sub_id}",
        **fields,
    }
    return Subscription.objects.create(
        server=server, user=user, plan=purchase.plan, stripe_subscription_id=sub_id, **fields
    )


def overdue(user, since):
    User.objects.filter(pk=user.pk).update(payment_overdue_since=since)


def renewal(subscription, **fields) -> Payment:
    return PaymentFactory(
        user=subscription.user,
        plan=subscription.plan,
        kind=PaymentKind.RENEWAL,
        renews=subscription.server,
        stripe_checkout_session_id="",
        **fields,
    )


def main(response) -> str:
    """The page's own content, without the header's nav."""
    return response.content.decode().split("<main", 1)[1]


def message_texts(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def stripe_subscription(*, cancel_at_period_end, status="active", period_end=STRIPE_PERIOD_END):
    return stripe_object(
        "subscription",
        id="sub_1",
        customer="cus_sub_1",
        status=status,
        cancel_at_period_end=cancel_at_period_end,
        items={
            "object": "list",
            "data": [
                stripe_object("subscription_item", current_period_end=int(period_end.timestamp()))
            ],
        },
    )


def renewal_url(subscription) -> str:
    return f"/billing/subscriptions/{subscription.pk}/renewal/"


def audits():
    return list(AuditEvent.objects.filter(action=AuditEvent.Action.SUBSCRIPTION_CHANGE))


# --- the subscription card ----------------------------------------------------------------


def test_page_shows_plan_price_status_next_renewal_and_server(client, customer):
    subscription = subscribed(customer)

    response = client.get("/billing/")

    assert response.status_code == 200
    content = main(response)
    assert "<title>Billing · Hosting</title>" in response.content.decode()
    assert "<h1>Billing</h1>" in content
    assert "Pro, $29.00/month" in content
    assert '<span class="badge badge-active">Active</span>' in content
    assert "Next renewal" in content
    assert '<time datetime="2026-12-01T12:00:00+00:00">Dec 1, 2026</time>, $29.00' in content
    assert f'href="/servers/{subscription.server.uuid}/"' in content
    assert (
        f'<a class="btn btn-danger" href="{renewal_url(subscription)}">Cancel at period end</a>'
        in content
    )
    assert ">Resume</a>" not in content
    assert '<form class="nav-form" method="post" action="/billing/payment-method/">' in content
    assert "Update payment method" in content
    assert BANNER not in content


def test_page_shows_ends_on_and_resume_when_cancel_at_period_end(client, customer):
    subscription = subscribed(customer, cancel_at_period_end=True)

    content = main(client.get("/billing/"))

    assert "Ends on" in content and "Dec 1, 2026" in content
    assert "Next renewal" not in content
    assert f'<a class="btn" href="{renewal_url(subscription)}">Resume</a>' in content
    assert "Cancel at period end" not in content


def test_past_due_shows_the_reason_and_pay_now(client, customer):
    subscribed(
        customer,
        status=Subscription.Status.PAST_DUE,
        past_due_since=START - timedelta(days=1),
        failure_reason="Your renewal payment of $29.00 did not go through.",
        pay_url="https://invoice.stripe.com/i/in_2",
    )

    content = main(client.get("/billing/"))

    assert '<span class="badge badge-failed">Past due</span>' in content
    assert (
        "Your renewal payment of $29.00 did not go through. Pay it by "
        '<time datetime="2026-11-07T12:00:00+00:00">Nov 7, 2026 12:00 UTC</time> or your '
        "server will be suspended." in content
    )
    assert (
        '<a class="btn btn-primary" href="https://invoice.stripe.com/i/in_2">Pay now</a>' in content
    )


def test_past_due_without_a_pay_url_has_no_pay_now_link(client, customer):
    subscribed(
        customer,
        status=Subscription.Status.PAST_DUE,
        failure_reason="The card was declined.",
        pay_url="javascript:alert(1)",
    )

    content = main(client.get("/billing/"))

    assert "The card was declined." in content
    assert "Pay now" not in content
    assert "javascript:" not in content


def test_failure_reason_is_escaped(client, customer):
    subscribed(
        customer,
        status=Subscription.Status.PAST_DUE,
        failure_reason='<script>alert("x")</script><b>bold</b>',
    )

    content = main(client.get("/billing/"))

    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&lt;b&gt;bold&lt;/b&gt;" in content
    assert "<script>alert" not in content
    assert "<b>bold</b>" not in content


def test_suspended_by_staff_says_so(client, customer):
    subscribed(
        customer,
        server_status=Server.Status.SUSPENDED,
        suspended_at=START - timedelta(days=2),
        suspended_by_staff=True,
    )

    content = main(client.get("/billing/"))

    assert "Your server is suspended</strong>" in content
    assert "Oct 30, 2026</time>, by our staff." in content
    assert 'href="/support/"' in content


def test_suspended_for_an_unpaid_renewal_says_until_paid(client, customer):
    subscribed(
        customer,
        server_status=Server.Status.SUSPENDED,
        status=Subscription.Status.PAST_DUE,
        past_due_since=START - timedelta(days=9),
        suspended_at=START - timedelta(days=2),
    )

    content = main(client.get("/billing/"))

    assert "Your server is suspended</strong>" in content
    assert "until the overdue payment is made." in content
    assert "by our staff" not in content
    assert "or your server will be suspended" not in content  # it already is


def test_ended_subscription_says_when_the_server_is_deleted_and_offers_no_changes(client, customer):
    subscription = subscribed(
        customer,
        server_status=Server.Status.SUSPENDED,
        status=Subscription.Status.CANCELED,
        canceled_at=START - timedelta(days=1),
        suspended_at=START - timedelta(days=1),
        delete_after=START + timedelta(days=13),
    )

    content = main(client.get("/billing/"))

    assert '<span class="badge badge-deleted">Canceled</span>' in content
    assert "This subscription ended on Oct 31, 2026." in content
    assert "will be deleted, with all its data, on" in content
    assert ">Nov 14, 2026</time>" in content
    assert renewal_url(subscription) not in content
    assert "Update payment method" not in content
    assert "Next renewal" not in content


def test_the_live_servers_subscription_is_shown_not_an_older_ended_one(client, customer):
    old = subscribed(
        customer,
        sub_id="sub_old",
        plan_slug="premium",
        server_status=Server.Status.DELETED,
        status=Subscription.Status.CANCELED,
        canceled_at=START - timedelta(days=60),
    )
    current = subscribed(customer, sub_id="sub_new", plan_slug="basic")
    # The ended one is the newer row: it must still lose to the live server's.
    Subscription.objects.filter(pk=old.pk).update(created_at=START)
    Subscription.objects.filter(pk=current.pk).update(created_at=START - timedelta(days=10))

    content = main(client.get("/billing/")).split('id="invoices-title"')[0]

    assert "Basic, $9.00/month" in content
    assert "Premium" not in content


def test_customer_without_a_subscription_or_payments_gets_the_empty_state(client, customer):
    content = main(client.get("/billing/"))

    assert "No payments yet" in content
    assert 'data-testid="subscription"' not in content
    assert "Update payment method" not in content


def test_anonymous_is_sent_to_log_in(client):
    response = client.get("/billing/")
    assert (response.status_code, response.url) == (302, "/accounts/login/?next=/billing/")
    response = client.post("/billing/payment-method/")
    assert response.url == "/accounts/login/?next=/billing/payment-method/"
    response = client.get("/billing/subscriptions/1/renewal/")
    assert response.url == "/accounts/login/?next=/billing/subscriptions/1/renewal/"


# --- invoices -------------------------------------------------------------------------------


def test_invoices_list_purchases_and_renewals_with_their_server_and_state(client, customer):
    subscription = subscribed(customer)
    purchase = subscription.server.payment
    paid = renewal(subscription, created_at=START - timedelta(days=1))
    refunded = renewal(
        subscription,
        status=Payment.Status.REFUNDED,
        refunded_at=START - timedelta(hours=1),
        created_at=START - timedelta(days=2),
    )
    disputed = renewal(
        subscription, disputed_at=START - timedelta(hours=2), created_at=START - timedelta(days=3)
    )
    PaymentFactory(plan=plan("premium"))  # another customer's

    content = main(client.get("/billing/"))

    assert "Pro, first month" in content
    assert content.count("Pro renewal") == 3
    assert content.count(f'href="/servers/{subscription.server.uuid}/"') == 1 + 4  # card + rows
    for payment in (purchase, paid, refunded, disputed):
        assert f'href="/billing/payments/{payment.uuid}/"' in content
    assert (
        '<span class="badge badge-refunded">Refunded</span> <span class="muted">Nov 1, 2026</span>'
        in content
    )
    assert (
        '<span class="badge badge-failed">Disputed</span> <span class="muted">Nov 1, 2026</span>'
        in content
    )
    assert "Premium" not in content


def test_receipt_of_a_renewal_names_its_kind_and_server(client, customer):
    subscription = subscribed(customer)
    payment = renewal(subscription)

    content = main(client.get(f"/billing/payments/{payment.uuid}/"))

    assert "Renewal: another month of Pro" in content
    assert (
        f'<a href="/servers/{subscription.server.uuid}/">{subscription.server.name}</a>' in content
    )


def test_receipt_of_a_purchase_names_its_kind_and_server(client, customer):
    subscription = subscribed(customer)

    content = main(client.get(f"/billing/payments/{subscription.server.payment.uuid}/"))

    assert "Purchase: Pro, first month" in content
    assert f'<a href="/servers/{subscription.server.uuid}/">' in content


def _billing_page(client, django_assert_num_queries):
    with django_assert_num_queries(BILLING_PAGE_QUERIES):
        response = client.get("/billing/")
    assert response.status_code == 200
    return main(response)


def test_billing_page_query_count_is_pinned_with_1_and_30_payments(
    client, customer, django_assert_num_queries
):
    subscription = subscribed(customer)
    overdue(customer, START - timedelta(days=1))

    one = _billing_page(client, django_assert_num_queries)
    assert one.count("Receipt<span") == 1

    for n in range(29):
        if n % 3 == 0:
            renewal(subscription, status=Payment.Status.REFUNDED, refunded_at=START)
        elif n % 3 == 1:
            renewal(subscription, disputed_at=START)
        else:
            PaymentFactory(user=customer, status=Payment.Status.FAILED, paid_at=None)

    thirty = _billing_page(client, django_assert_num_queries)
    assert thirty.count("Receipt<span") == 30
    assert BANNER in thirty


def test_billing_page_and_receipts_decrypt_no_server_secret(client, customer, monkeypatch):
    """Every payment row joins the servers it bought and renews: their SSH password,
    host key and TLS token stay in the database, undecrypted."""
    from hosting import crypto

    subscription = subscribed(customer)
    purchase = subscription.server.payment
    paid_renewal = renewal(subscription)
    Server.objects.filter(pk=subscription.server.pk).update(
        ssh_host_private_key="key", tls_token="token"
    )
    decrypted = []
    real_decrypt = crypto.decrypt
    monkeypatch.setattr(
        crypto, "decrypt", lambda token: decrypted.append(token) or real_decrypt(token)
    )

    for url in (
        "/billing/",
        f"/billing/payments/{purchase.uuid}/",
        f"/billing/payments/{paid_renewal.uuid}/",
    ):
        assert client.get(url).status_code == 200, url
    assert decrypted == []


# --- the past-due banner --------------------------------------------------------------------


def _without_site_processor(settings):
    templates = copy.deepcopy(settings.TEMPLATES)
    processors = templates[0]["OPTIONS"]["context_processors"]
    processors.remove(SITE_PROCESSOR)
    settings.TEMPLATES = templates


def _queries(client, url) -> tuple[int, str]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries), response.content.decode()


@pytest.mark.parametrize("url", ["/dashboard/", "/billing/", "/support/"])
def test_past_due_banner_on_every_page_says_when_the_server_is_suspended(client, customer, url):
    subscribed(customer, status=Subscription.Status.PAST_DUE)
    overdue(customer, START - timedelta(days=1))

    content = main(client.get(url))

    banner = content.split(BANNER, 1)[1].split("</div>", 1)[0]
    assert "<strong>Your renewal payment did not go through.</strong>" in banner
    assert "Your server will be suspended on" in banner
    assert ">Nov 7, 2026 12:00 UTC</time>" in banner
    assert '<a href="/billing/">Go to Billing</a>' in banner


def test_past_due_banner_after_the_grace_says_suspended(client, customer):
    overdue(customer, START - timedelta(days=7, seconds=1))

    content = main(client.get("/dashboard/"))

    banner = content.split(BANNER, 1)[1].split("</div>", 1)[0]
    assert "Your renewal payment did not go through." in banner
    assert "Your server is suspended until it is paid." in banner
    assert "will be suspended on" not in content


def test_no_banner_for_a_paid_customer_or_anonymous(client, customer):
    subscribed(customer)

    assert BANNER not in client.get("/dashboard/").content.decode()
    assert BANNER not in client.get("/billing/").content.decode()
    assert BANNER not in Client().get("/pricing/").content.decode()


@pytest.mark.parametrize("url", ["/dashboard/", "/billing/"])
def test_the_banner_costs_no_query(client, customer, settings, django_assert_num_queries, url):
    subscribed(customer, status=Subscription.Status.PAST_DUE)
    overdue(customer, START - timedelta(days=1))
    original = settings.TEMPLATES
    assert SITE_PROCESSOR in original[0]["OPTIONS"]["context_processors"]

    _without_site_processor(settings)
    without, content = _queries(client, url)
    assert BANNER not in content

    settings.TEMPLATES = original
    with django_assert_num_queries(without):
        response = client.get(url)
    assert BANNER in response.content.decode()


def test_anonymous_pages_cost_no_query_for_the_banner(settings, django_assert_num_queries):
    anonymous = Client()
    session = anonymous.session  # a session cookie, as a visitor who looked around has
    session["seen_pricing"] = True
    session.save()
    original = settings.TEMPLATES

    _without_site_processor(settings)
    without, _ = _queries(anonymous, "/pricing/")

    settings.TEMPLATES = original
    with django_assert_num_queries(without):
        response = anonymous.get("/pricing/")
    assert BANNER not in response.content.decode()


def test_the_500_page_never_looks_at_the_user_for_the_banner(django_assert_num_queries):
    request = RequestFactory().get("/boom/")
    request.user = SimpleLazyObject(lambda: pytest.fail("the 500 page loaded the user"))

    with django_assert_num_queries(0):
        html = render_to_string("500.html", request=request)

    assert "Something went wrong" in html
    assert "banner-overdue" not in html


@pytest.mark.urls("hosting.tests.urls_boom")
def test_the_500_page_has_no_banner_for_an_overdue_customer():
    client = Client(raise_request_exception=False)
    user = UserFactory()
    overdue(user, START - timedelta(days=1))
    client.force_login(user)

    response = client.get("/boom/")

    assert response.status_code == 500
    assert "banner-overdue" not in response.content.decode()


# --- update payment method ------------------------------------------------------------------


def test_update_payment_method_goes_to_stripes_portal(client, customer, stripe_api, settings):
    settings.SITE_URL = "https://panel.example.com"
    subscribed(customer)
    stripe_api.reply(
        "POST",
        "/v1/billing_portal/sessions",
        stripe_object(
            "billing_portal.session", id="bps_1", url="https://billing.stripe.com/p/session/1"
        ),
    )

    response = client.post("/billing/payment-method/")

    assert response.status_code == 303
    assert response["Location"] == "https://billing.stripe.com/p/session/1"
    (call,) = stripe_api.calls("POST", "/v1/billing_portal/sessions")
    assert form(call) == {
        "customer": ["cus_sub_1"],
        "return_url": ["https://panel.example.com/billing/"],
    }


def test_update_payment_method_when_stripe_fails_says_so(client, customer, stripe_api):
    subscribed(customer)
    stripe_api.error("POST", "/v1/billing_portal/sessions", status=400, message="No such customer")

    response = client.post("/billing/payment-method/")

    assert (response.status_code, response.url) == (302, "/billing/")
    assert message_texts(response) == [
        "We could not reach our payment provider, so nothing was changed. "
        "Try again in a few minutes."
    ]


def test_update_payment_method_without_a_subscription_is_a_message(client, customer, stripe_api):
    response = client.post("/billing/payment-method/")

    assert (response.status_code, response.url) == (302, "/billing/")
    assert message_texts(response) == [
        "You have no subscription yet, so there is no payment method to update."
    ]
    assert stripe_api.calls() == []


def test_update_payment_method_is_post_only(client, customer):
    subscribed(customer)
    assert client.get("/billing/payment-method/").status_code == 405


# --- cancel at period end / resume ----------------------------------------------------------


def test_cancel_confirmation_says_what_happens_and_changes_nothing(client, customer, stripe_api):
    subscription = subscribed(customer)

    response = client.get(renewal_url(subscription))

    assert response.status_code == 200
    content = main(response)
    assert "Cancel at the end of the period?" in content
    assert f"<strong>{subscription.server.name}</strong> keeps running until" in content
    assert ">Dec 1, 2026</time>" in content
    assert "Then it is suspended" in content
    assert "14 days later it is deleted, with all its data." in content
    assert "Back up your data" in content
    assert f'<form method="post" action="{renewal_url(subscription)}">' in content
    assert '<input type="hidden" name="cancel" value="1">' in content
    assert '<a href="/billing/">Keep it as it is</a>' in content
    assert stripe_api.calls() == []
    subscription.refresh_from_db()
    assert subscription.cancel_at_period_end is False
    assert audits() == []


def test_resume_confirmation_says_when_and_how_much(client, customer, stripe_api):
    subscription = subscribed(customer, cancel_at_period_end=True)

    content = main(client.get(renewal_url(subscription)))

    assert "Resume your subscription?" in content
    assert "renews on <strong><time" in content and ">Dec 1, 2026</time>" in content
    assert "for <strong>$29.00</strong>" in content
    assert '<input type="hidden" name="cancel" value="0">' in content
    assert stripe_api.calls() == []


def test_cancel_tells_stripe_mirrors_its_answer_and_audits_once(client, customer, stripe_api):
    subscription = subscribed(customer)
    stripe_api.reply(
        "POST", "/v1/subscriptions/sub_1", stripe_subscription(cancel_at_period_end=True)
    )

    response = client.post(renewal_url(subscription), {"cancel": "1"}, follow=True)
    again = client.post(renewal_url(subscription), {"cancel": "1"}, follow=True)

    assert response.redirect_chain == again.redirect_chain == [("/billing/", 302)]
    assert (
        "Your subscription will end on Dec 2, 2026. Your server keeps running until then, "
        "and you can resume the subscription before that." in main(response)
    )
    assert "Your subscription was already set that way: nothing changed." in main(again)
    assert "Your subscription will end on" not in main(again)
    (call,) = stripe_api.calls("POST", "/v1/subscriptions/sub_1")
    assert form(call) == {"cancel_at_period_end": ["true"]}
    subscription.refresh_from_db()
    assert subscription.cancel_at_period_end is True
    assert subscription.current_period_end == STRIPE_PERIOD_END
    assert subscription.synced_at == START
    (audit,) = audits()
    assert (audit.actor, audit.target_type, audit.target_id) == (
        customer,
        "billing.subscription",
        str(subscription.pk),
    )
    assert audit.metadata == {"change": "cancel_at_period_end"}
    page = main(client.get("/billing/"))
    assert "Ends on" in page and ">Resume</a>" in page


def test_resume_tells_stripe_and_renews_again(client, customer, stripe_api):
    subscription = subscribed(customer, cancel_at_period_end=True)
    stripe_api.reply(
        "POST", "/v1/subscriptions/sub_1", stripe_subscription(cancel_at_period_end=False)
    )

    response = client.post(renewal_url(subscription), {"cancel": "0"})

    assert message_texts(response) == ["Your subscription renews again on Dec 2, 2026 for $29.00."]
    (call,) = stripe_api.calls("POST", "/v1/subscriptions/sub_1")
    assert form(call) == {"cancel_at_period_end": ["false"]}
    subscription.refresh_from_db()
    assert (subscription.cancel_at_period_end, subscription.current_period_end) == (
        False,
        STRIPE_PERIOD_END,
    )
    (audit,) = audits()
    assert audit.metadata == {"change": "resume"}


def test_stripe_refusing_the_change_leaves_everything_as_it_was(client, customer, stripe_api):
    subscription = subscribed(customer)
    before = Subscription.objects.values().get(pk=subscription.pk)
    stripe_api.error(
        "POST", "/v1/subscriptions/sub_1", status=400, message="This subscription is locked"
    )

    response = client.post(renewal_url(subscription), {"cancel": "1"})

    assert (response.status_code, response.url) == (302, "/billing/")
    assert message_texts(response) == [
        "We could not change your subscription at our payment provider, so nothing was "
        "changed. Try again in a few minutes."
    ]
    assert len(stripe_api.calls("POST", "/v1/subscriptions/sub_1")) == 1
    assert Subscription.objects.values().get(pk=subscription.pk) == before
    assert audits() == []


@pytest.mark.parametrize("value", ["", "yes", "2"])
def test_a_bad_choice_changes_nothing(client, customer, stripe_api, value):
    subscription = subscribed(customer)

    response = client.post(renewal_url(subscription), {"cancel": value})

    assert (response.status_code, response.url) == (302, "/billing/")
    assert message_texts(response) == ["Choose to cancel at the end of the period or to resume."]
    assert stripe_api.calls() == []
    assert Subscription.objects.get(pk=subscription.pk).cancel_at_period_end is False
    assert audits() == []


def test_an_ended_subscription_cannot_be_cancelled_or_resumed(client, customer, stripe_api):
    subscription = subscribed(
        customer, status=Subscription.Status.CANCELED, canceled_at=START - timedelta(days=1)
    )

    shown = client.get(renewal_url(subscription), follow=True)
    posted = client.post(renewal_url(subscription), {"cancel": "1"}, follow=True)

    for response in (shown, posted):
        assert response.redirect_chain == [("/billing/", 302)]
        assert main(response).count("This subscription has already ended: nothing to change.") == 1
    assert stripe_api.calls() == []
    assert audits() == []


@pytest.mark.parametrize("method", ["get", "post"])
def test_another_customers_subscription_is_404(client, customer, stripe_api, method):
    theirs = subscribed(UserFactory(), sub_id="sub_theirs")

    response = getattr(client, method)(renewal_url(theirs), {"cancel": "1"})
    missing = getattr(client, method)(f"/billing/subscriptions/{theirs.pk + 1000}/renewal/")

    assert response.status_code == missing.status_code == 404
    assert stripe_api.calls() == []
    assert Subscription.objects.get(pk=theirs.pk).cancel_at_period_end is False
    assert audits() == []
