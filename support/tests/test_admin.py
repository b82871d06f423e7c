"""Staff work tickets through actions and the reply form, which call the support services:
status and assignee are not edited by hand, every change is audited, messages are never
edited."""

import pytest

from accounts.models import AuditEvent
from hosting.admin_links import admin_url
from support.models import Ticket, TicketMessage
from support.tests.factories import TicketFactory, TicketMessageFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _admin_without_mfa(settings):
    settings.STAFF_REQUIRE_MFA = False


def act(client, action, *tickets):
    return client.post(
        admin_url(Ticket, "changelist"),
        {"action": action, "_selected_action": [t.pk for t in tickets]},
    )


def staff_actions():
    return AuditEvent.objects.filter(action=AuditEvent.Action.STAFF_ACTION)


def test_resolving_is_an_audited_action(client, staff):
    ticket = TicketFactory(status=Ticket.Status.OPEN)

    act(client, "mark_resolved", ticket)
    act(client, "mark_resolved", ticket)  # already resolved: nothing more

    ticket.refresh_from_db()
    assert ticket.status == Ticket.Status.RESOLVED
    (event,) = staff_actions()
    assert (event.actor, event.target_type, event.target_id) == (
        staff,
        "support.ticket",
        str(ticket.pk),
    )
    assert event.metadata == {"action": "ticket_status", "before": "open", "after": "resolved"}


def test_assign_to_me(client, staff):
    ticket = TicketFactory()
    act(client, "assign_to_me", ticket)
    ticket.refresh_from_db()
    assert ticket.assignee == staff
    assert staff_actions().get().metadata == {"action": "ticket_assign", "assignee": staff.email}


def test_status_and_assignee_are_not_edited_on_the_change_page(client, staff):
    ticket = TicketFactory(status=Ticket.Status.OPEN)
    page = client.get(admin_url(ticket)).content.decode()
    assert 'name="status"' not in page and 'name="assignee"' not in page


def test_a_reply_on_the_ticket_page_goes_through_the_service(client, staff):
    ticket = TicketFactory()
    before = ticket.updated_at
    old = TicketMessageFactory(ticket=ticket, body="My disk is full.")
    response = client.post(
        admin_url(ticket),
        {
            "subject": ticket.subject,
            "server": "",
            "description": ticket.description,
            "priority": ticket.priority,
            "messages-TOTAL_FORMS": "1",
            "messages-INITIAL_FORMS": "0",
            "messages-MIN_NUM_FORMS": "0",
            "messages-MAX_NUM_FORMS": "1000",
            "messages-0-body": "Looking into it.",
            "messages-0-internal": "on",
            "messages-2-TOTAL_FORMS": "1",
            "messages-2-INITIAL_FORMS": "1",
            "messages-2-MIN_NUM_FORMS": "0",
            "messages-2-MAX_NUM_FORMS": "1000",
            "messages-2-0-id": str(old.pk),
            "messages-2-0-ticket": str(ticket.pk),
            "messages-2-0-body": "tampered",
        },
    )
    assert response.status_code == 302, response.context["errors"]
    reply = TicketMessage.objects.exclude(pk=old.pk).get(ticket=ticket)
    assert (reply.author, reply.body, reply.internal) == (staff, "Looking into it.", True)
    assert TicketMessage.objects.get(pk=old.pk).body == "My disk is full."  # never edited
    ticket.refresh_from_db()
    assert ticket.updated_at > before


def test_messages_are_read_only_on_their_own_pages(client, staff):
    message = TicketMessageFactory()
    assert client.post(admin_url(message), {"body": "x"}).status_code == 403
    assert client.get(admin_url(TicketMessage, "add")).status_code == 403


def test_a_reply_on_a_closed_ticket_is_refused_with_a_message(client, staff):
    ticket = TicketFactory(status=Ticket.Status.CLOSED)
    response = client.post(
        admin_url(ticket),
        {
            "subject": ticket.subject,
            "server": "",
            "description": ticket.description,
            "priority": ticket.priority,
            "messages-TOTAL_FORMS": "1",
            "messages-INITIAL_FORMS": "0",
            "messages-0-body": "Hello again.",
            "messages-2-TOTAL_FORMS": "0",
            "messages-2-INITIAL_FORMS": "0",
        },
        follow=True,
    )
    assert "Reply not sent: This ticket is closed" in response.content.decode()
    assert not ticket.messages.exists()
