"""The staff admin of every app: pages open, secrets stay hidden, read-only records stay
read-only, changelists cost a fixed number of queries, staff replies are attributed."""

import html
import re

import pytest
from django.apps import apps
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import AuditEvent, User
from accounts.tests.factories import PASSWORD, StaffFactory, UserFactory
from billing.models import Payment, StripeEvent
from billing.tests.factories import PaymentFactory, plan
from hosting.admin_links import admin_url
from servers.tests.factories import DeploymentFactory, DomainFactory, ServerFactory
from support.models import TicketMessage
from support.tests.factories import TicketFactory, TicketMessageFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _admin_without_mfa(settings):
    settings.STAFF_REQUIRE_MFA = False


def audit_event():
    return AuditEvent.objects.create(
        actor=UserFactory(),
        action=AuditEvent.Action.LOGIN,
        ip_address="198.51.100.7",
        target_type="user",
        target_id="1",
        metadata={"user_agent": "pytest"},
    )


def stripe_event():
    n = StripeEvent.objects.count()
    return StripeEvent.objects.create(
        event_id=f"evt_test_{n}",
        type="checkout.session.completed",
        payload={"id": f"evt_test_{n}", "data": {"object": {"id": "cs_test"}}},
        error="boom" if n % 2 else "",
    )


def paid_server():
    payment = PaymentFactory()
    return ServerFactory(user=payment.user, payment=payment)


def payment_with_server():
    return paid_server().payment


def ticket():
    ticket = TicketFactory(server=ServerFactory(), assignee=StaffFactory())
    TicketMessageFactory(ticket=ticket)
    return ticket


# One row of each model, with its relations filled in so every column has something to show.
ROWS = {
    "accounts.user": UserFactory,
    "accounts.auditevent": audit_event,
    "billing.plan": plan,
    "billing.payment": payment_with_server,
    "billing.stripeevent": stripe_event,
    "servers.server": paid_server,
    "servers.deployment": DeploymentFactory,
    "servers.domain": DomainFactory,
    "support.ticket": ticket,
    "support.ticketmessage": TicketMessageFactory,
}
READ_ONLY = {"accounts.auditevent", "billing.stripeevent"}


@pytest.mark.parametrize("kind", ROWS)
def test_changelist_search_and_change_page_open(admin_client, kind):
    obj = ROWS[kind]()
    changelist = admin_url(type(obj), "changelist")

    response = admin_client.get(changelist)
    assert response.status_code == 200
    assert admin_url(obj) in response.content.decode()
    # Every search field is a valid lookup for a term that is not a number, IP or uuid.
    assert admin_client.get(changelist, {"q": "example"}).status_code == 200
    assert admin_client.get(admin_url(obj)).status_code == 200


@pytest.mark.parametrize("kind", ROWS)
def test_add_page_opens_unless_read_only(admin_client, kind):
    response = admin_client.get(admin_url(apps.get_model(kind), "add"))
    assert response.status_code == (403 if kind in READ_ONLY else 200)


@pytest.mark.parametrize("kind", sorted(READ_ONLY))
def test_read_only_records_cannot_be_changed_or_deleted(admin_client, kind):
    obj = ROWS[kind]()
    assert admin_client.post(admin_url(obj), {}).status_code == 403
    assert admin_client.get(admin_url(obj, "delete")).status_code == 403


def test_server_page_never_shows_the_ssh_password(admin_client):
    server = paid_server()
    for url in (admin_url(server), admin_url(type(server), "add")):
        content = admin_client.get(url).content.decode()
        assert "s3cret-root-password" not in content
        assert "ssh_password" not in content


def test_related_rows_link_to_each_other(admin_client):
    server = paid_server()
    server_page = admin_client.get(admin_url(server)).content.decode()
    payment_page = admin_client.get(admin_url(server.payment)).content.decode()
    assert admin_url(server.payment) in server_page
    assert admin_url(server) in payment_page

    # The user's and the server's pages link to changelists narrowed to them.
    for page in (admin_client.get(admin_url(server.user)).content.decode(), server_page):
        links = re.findall(r'href="([^"]*__id__exact=\d+)"', page)
        assert links
        for link in links:
            # An invalid lookup would redirect to ?e=1 instead.
            assert admin_client.get(html.unescape(link)).status_code == 200


@pytest.mark.parametrize(("status", "expected"), [("pending", 302), ("succeeded", 200)])
def test_payment_added_in_admin_cannot_claim_to_be_paid(admin_client, status, expected):
    # Only the billing flows set paid_at, which the database requires of a paid payment.
    customer = UserFactory()
    basic = plan()
    data = {"user": customer.pk, "plan": basic.pk, "amount_cents": basic.price_cents}
    response = admin_client.post(
        admin_url(Payment, "add"), {**data, "currency": "usd", "status": status}
    )
    assert response.status_code == expected
    assert Payment.objects.filter(user=customer).exists() is (expected == 302)


def _changelist_queries(client, model) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(admin_url(model, "changelist")).status_code == 200
    return len(queries)


@pytest.mark.parametrize("kind", ["billing.payment", "servers.server", "support.ticket"])
def test_changelist_query_count_does_not_grow_with_rows(admin_client, kind):
    model = apps.get_model(kind)
    ROWS[kind]()
    one_row = _changelist_queries(admin_client, model)
    for _ in range(4):
        ROWS[kind]()
    assert _changelist_queries(admin_client, model) == one_row


def test_reply_through_ticket_inline_is_authored_by_the_staff_member(admin_client, admin_user):
    ticket = TicketFactory()
    response = admin_client.post(
        admin_url(ticket),
        {
            "subject": ticket.subject,
            "user": ticket.user.pk,
            "server": "",
            "description": ticket.description,
            "priority": ticket.priority,
            "status": ticket.Status.IN_PROGRESS,
            "assignee": admin_user.pk,
            "messages-TOTAL_FORMS": "1",
            "messages-INITIAL_FORMS": "0",
            "messages-MIN_NUM_FORMS": "0",
            "messages-MAX_NUM_FORMS": "1000",
            "messages-0-body": "We are looking into it.",
            "messages-0-internal": "",
        },
    )
    assert response.status_code == 302, response.context["errors"]
    message = TicketMessage.objects.get(ticket=ticket)
    assert message.author == admin_user
    assert message.body == "We are looking into it."
    assert not message.internal


def _add_user(client, email):
    return client.post(
        admin_url(User, "add"),
        {"email": email, "password1": PASSWORD, "password2": PASSWORD},
    )


def test_user_added_in_admin_gets_a_lower_case_email_and_can_log_in(admin_client, client):
    response = _add_user(admin_client, "New.Customer@Example.COM")
    assert response.status_code == 302
    user = User.objects.get(email="new.customer@example.com")
    assert user.check_password(PASSWORD)
    assert client.login(email="new.customer@example.com", password=PASSWORD)


def test_user_with_an_existing_email_in_another_case_is_refused(admin_client):
    existing = UserFactory()
    response = _add_user(admin_client, existing.email.upper())
    assert response.status_code == 200
    assert "already exists" in response.content.decode()
    assert User.objects.filter(email__iexact=existing.email).count() == 1
