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
    again = act(client, "mark_resolved", ticket)  # already resolved: refused, by the rules

    ticket.refresh_from_db()
    assert ticket.status == Ticket.Status.RESOLVED
    (event,) = staff_actions()
    assert (event.actor, event.target_type, event.target_id) == (
        staff,
        "support.ticket",
        str(ticket.pk),
    )
    assert event.metadata == {
        "action": "ticket_status",
        "before": "open",
        "after": "resolved",
        "event": "resolve",
    }
    page = client.get(again.url).content.decode()
    assert "Only an open or in-progress ticket can be resolved." in page


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


def changelist(client, **params):
    response = client.get(admin_url(Ticket, "changelist"), params)
    assert response.status_code == 200
    return {ticket.pk for ticket in response.context["cl"].result_list}


def test_filters_waiting_on_staff_and_unassigned(client, staff):
    from support import services

    asked = TicketFactory()  # the customer wrote; nobody answered
    answered = TicketFactory()
    services.ticket_reply_by_staff(ticket=answered, author=staff, body="Done?")
    resolved = TicketFactory(status=Ticket.Status.RESOLVED)  # waits on nobody
    mine = TicketFactory()
    services.ticket_assign(ticket=mine, assignee=staff, actor=staff)

    assert changelist(client, waiting_on="staff") == {asked.pk, mine.pk}
    assert changelist(client, waiting_on="customer") == {answered.pk}
    assert changelist(client, assignee="none") == {asked.pk, answered.pk, resolved.pk}
    assert changelist(client, assignee="me") == {mine.pk}
    assert changelist(client, assignee=str(staff.pk)) == {mine.pk}


def test_the_list_shows_who_it_waits_on_and_age(client, staff):
    TicketFactory(subject="Waiting one")
    page = client.get(admin_url(Ticket, "changelist")).content.decode()
    assert '<td class="field-waiting">staff</td>' in page
    assert 'class="field-age' in page and 'class="field-last_activity_at' in page


def test_staff_neither_add_nor_delete_tickets_in_the_admin(client, staff):
    assert client.get(admin_url(Ticket, "add")).status_code == 403
    ticket = TicketFactory()
    assert client.post(admin_url(ticket, "delete"), {"post": "yes"}).status_code == 403
    assert Ticket.objects.filter(pk=ticket.pk).exists()


def test_the_conversation_shows_script_as_text_and_when_each_reply_was_mailed(client, staff):
    ticket = TicketFactory(description="<script>alert(1)</script>")
    TicketMessageFactory(ticket=ticket, body="<script>alert(2)</script>")
    page = client.get(admin_url(ticket)).content.decode()
    assert "<script>alert(" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in page
    assert f"support+{ticket.reply_token}@" in page
    assert "Internal note (only staff see it; not mailed)" in page


def test_a_change_page_save_does_not_undo_a_reply_that_came_meanwhile(client, staff):
    """Staff load the page, the customer replies, staff save a new priority: the save
    writes the priority only, so the customer's reply keeps the ticket waiting on staff."""
    from support import services

    ticket = TicketFactory(priority="low")
    services.ticket_reply_by_staff(ticket=ticket, author=staff, body="Try now.")
    loaded = client.get(admin_url(ticket))
    assert loaded.status_code == 200
    services.ticket_reply_by_customer(ticket_id=ticket.pk, user=ticket.user, body="Nope.")
    response = client.post(
        admin_url(ticket),
        {
            "subject": ticket.subject,
            "server": "",
            "priority": "high",
            "messages-TOTAL_FORMS": "0",
            "messages-INITIAL_FORMS": "0",
            "messages-2-TOTAL_FORMS": "0",
            "messages-2-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302
    ticket.refresh_from_db()
    assert (ticket.priority, ticket.waiting_on_staff) == ("high", True)
