"""The staff admin as a whole: every model's pages open, read-only records stay read-only,
changelists cost a fixed number of queries, related rows link to each other
(hosting/admin_links.py). What one app's admin does is tested in that app's
tests/test_admin.py."""

import html
import re

import pytest
from django.apps import apps
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import AuditEvent
from accounts.tests.factories import StaffFactory, UserFactory
from billing.models import StripeEvent
from billing.tests.factories import PaymentFactory, plan
from hosting.admin_links import admin_url
from servers.tests.factories import DeploymentFactory, DomainFactory, ServerFactory
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


def server_action():
    from servers.models import ServerAction

    return ServerAction.objects.create(
        server=paid_server(), kind="reboot", status="failed", reason="The provider said no."
    )


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
    "servers.serveraction": server_action,
    "support.ticket": ticket,
    "support.ticketmessage": TicketMessageFactory,
}
# Records staff read but never edit: written by their flows only.
READ_ONLY = {
    "accounts.auditevent",
    "billing.stripeevent",
    "servers.deployment",
    "servers.domain",
    "servers.serveraction",
    "support.ticketmessage",
}
# Servers exist because a payment went through, tickets because a customer opened one:
# never added by hand.
NO_ADD = READ_ONLY | {"servers.server", "support.ticket"}


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
def test_add_page_opens_unless_adding_is_not_for_staff(admin_client, kind):
    response = admin_client.get(admin_url(apps.get_model(kind), "add"))
    assert response.status_code == (403 if kind in NO_ADD else 200)


@pytest.mark.parametrize("kind", sorted(READ_ONLY))
def test_read_only_records_cannot_be_changed_or_deleted(admin_client, kind):
    obj = ROWS[kind]()
    assert admin_client.post(admin_url(obj), {}).status_code == 403
    assert admin_client.get(admin_url(obj, "delete")).status_code == 403


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
