"""The customer's support pages over HTTP: the whole journey with the status rules and
their audit rows, internal notes kept from the customer, another customer's ticket a 404
everywhere, a forged server, the hourly limit, escaping and pinned query counts."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import AuditEvent
from accounts.tests.factories import StaffFactory, UserFactory
from hosting import tenant
from servers.tests.factories import ServerFactory
from support import services
from support.models import Ticket, TicketMessage
from support.tests.factories import TicketFactory, TicketMessageFactory

pytestmark = pytest.mark.django_db


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def open_ticket(client, **data) -> Ticket:
    data = {"subject": "Site down", "description": "It is down.", "priority": "high", **data}
    response = client.post("/support/tickets/new/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    return Ticket.objects.get(uuid=response["Location"].rstrip("/").rsplit("/", 1)[1])


def reply(client, ticket, body):
    return client.post(f"/support/tickets/{ticket.uuid}/", {"body": body}, follow=True)


def status_of(ticket) -> str:
    ticket.refresh_from_db()
    return ticket.status


def test_the_whole_journey(client):
    user = UserFactory()
    server = ServerFactory(user=user)
    staff = StaffFactory()
    client.force_login(user)

    ticket = open_ticket(client, server=server.pk)
    assert (ticket.user, ticket.server, ticket.priority, ticket.status) == (
        user,
        server,
        "high",
        "open",
    )
    listing = client.get("/support/").content.decode()
    assert "Site down" in listing and 'data-testid="unread"' not in listing

    reply(client, ticket, "Still down.")
    assert status_of(ticket) == "open"

    services.ticket_reply_by_staff(ticket=ticket, author=staff, body="Looking into it.")
    assert status_of(ticket) == "in_progress"
    assert 'data-testid="unread"' in client.get("/support/").content.decode()

    page = client.get(f"/support/tickets/{ticket.uuid}/").content.decode()
    assert "Looking into it." in page and "Still down." in page
    assert 'data-testid="unread"' not in client.get("/support/").content.decode()

    services.ticket_event_by_staff(ticket=ticket, event="resolve", actor=staff)
    reply(client, ticket, "It broke again.")
    assert status_of(ticket) == "open"

    client.post(f"/support/tickets/{ticket.uuid}/close/")
    assert status_of(ticket) == "closed"
    page = client.get(f"/support/tickets/{ticket.uuid}/").content.decode()
    assert "This ticket is closed;" in page and 'name="body"' not in page

    response = reply(client, ticket, "Hello?")
    assert messages_of(response) == ["This ticket is closed; open a new one."]
    assert not TicketMessage.objects.filter(body="Hello?").exists()

    client.post(f"/support/tickets/{ticket.uuid}/reopen/")
    assert status_of(ticket) == "open"
    reply(client, ticket, "Thanks, reopening.")
    assert TicketMessage.objects.filter(body="Thanks, reopening.").exists()

    assert "Site down" in client.get("/support/?status=open").content.decode()
    assert "Site down" not in client.get("/support/?status=closed").content.decode()

    changes = [
        (e.action, e.actor, e.metadata["before"], e.metadata["after"])
        for e in AuditEvent.objects.filter(target_id=str(ticket.pk)).order_by("id")
    ]
    assert changes == [
        ("staff_action", staff, "open", "in_progress"),
        ("staff_action", staff, "in_progress", "resolved"),
        ("ticket_status", user, "resolved", "open"),
        ("ticket_status", user, "open", "closed"),
        ("ticket_status", user, "closed", "open"),
    ]


def test_internal_notes_never_reach_the_customer(client):
    ticket = TicketFactory()
    services.ticket_reply_by_staff(
        ticket=ticket, author=StaffFactory(), body="Customer is on a legacy plan", internal=True
    )
    client.force_login(ticket.user)
    page = client.get(f"/support/tickets/{ticket.uuid}/").content.decode()
    assert "legacy plan" not in page
    assert status_of(ticket) == "open"  # a note changes nothing
    assert 'data-testid="unread"' not in client.get("/support/").content.decode()


@pytest.mark.parametrize("suffix", ["", "close/", "reopen/"])
@pytest.mark.parametrize("method", ["get", "post", "put", "delete"])
def test_another_customers_ticket_is_a_404(client, suffix, method):
    ticket = TicketFactory(status="resolved")
    client.force_login(UserFactory())
    response = getattr(client, method)(f"/support/tickets/{ticket.uuid}/{suffix}", {"body": "x"})
    assert response.status_code == 404
    ticket.refresh_from_db()
    assert ticket.status == "resolved" and not ticket.messages.exists()


def test_pages_need_a_login(client):
    for url in ("/support/", "/support/tickets/new/", f"/support/tickets/{TicketFactory().uuid}/"):
        assert client.get(url).status_code == 302


def test_a_forged_server_is_a_form_error(client):
    user = UserFactory()
    client.force_login(user)
    someone_elses = ServerFactory()
    response = client.post(
        "/support/tickets/new/",
        {"subject": "s", "description": "d", "priority": "low", "server": someone_elses.pk},
    )
    assert response.status_code == 400
    assert "server" in response.context["form"].errors
    assert not Ticket.objects.exists()


def test_lengths_are_limited(client):
    user = UserFactory()
    client.force_login(user)
    response = client.post(
        "/support/tickets/new/",
        {"subject": "s" * 201, "description": "d" * 10_001, "priority": "low"},
    )
    assert response.status_code == 400
    assert set(response.context["form"].errors) == {"subject", "description"}
    ticket = TicketFactory(user=user)
    response = reply(client, ticket, "x" * 10_001)
    assert response.status_code == 400 and "body" in response.context["form"].errors
    assert not ticket.messages.exists()


def test_the_hourly_limit_refuses_tickets_and_replies(client, settings):
    settings.SUPPORT_RATE_LIMIT = 3
    user = UserFactory()
    client.force_login(user)
    ticket = open_ticket(client)
    reply(client, ticket, "one")
    reply(client, ticket, "two")  # three sent: the limit

    response = reply(client, ticket, "three")
    assert "in the last hour" in messages_of(response)[0]
    response = client.post(
        "/support/tickets/new/", {"subject": "again", "description": "d", "priority": "low"}
    )
    assert response.status_code == 400
    assert "in the last hour" in messages_of(response)[0]
    assert Ticket.objects.count() == 1 and TicketMessage.objects.count() == 2
    # Another customer has their own allowance.
    client.force_login(UserFactory())
    open_ticket(client)


def test_html_is_shown_as_text(client):
    user = UserFactory()
    client.force_login(user)
    ticket = open_ticket(client, subject="<b>bold</b>", description="<img src=x>")
    reply(client, ticket, "<script>alert(1)</script>")
    page = client.get(f"/support/tickets/{ticket.uuid}/").content.decode()
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img src=x>" not in page and "<b>bold</b>" not in page
    assert "&lt;b&gt;bold&lt;/b&gt;" in client.get("/support/").content.decode()


def test_the_nav_links_support_for_signed_in_users_only(client):
    assert 'href="/support/"' not in client.get("/pricing/").content.decode()
    client.force_login(UserFactory())
    assert 'href="/support/"' in client.get("/pricing/").content.decode()


# -- query counts ------------------------------------------------------------------------


def count_queries(client, url) -> int:
    """The page's own queries: not the tenant scope's two."""
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries) - tenant.SCOPE_QUERIES


@pytest.mark.parametrize("n", [0, 50])
def test_query_counts_are_pinned(client, n):
    user = UserFactory()
    staff = StaffFactory()
    client.force_login(user)
    tickets = TicketFactory.create_batch(max(n, 1), user=user, server=ServerFactory(user=user))
    for i in range(n):
        TicketMessageFactory(ticket=tickets[0], author=staff if i % 2 else user, body=f"m{i}")
        TicketMessageFactory(ticket=tickets[0], author=staff, internal=True)
    # session, user; the tickets
    assert count_queries(client, "/support/") == 3
    ticket_page = f"/support/tickets/{tickets[0].uuid}/"
    # session, user; the ticket with its server and messages; marking it seen (unread)
    assert count_queries(client, ticket_page) == 4
    # seen already: no write
    assert count_queries(client, ticket_page) == 3
