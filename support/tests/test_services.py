"""The status rules (`ticket_status_after`) as a table, and the services that use them."""

import pytest

from accounts.models import AuditEvent
from accounts.tests.factories import StaffFactory
from support import services
from support.models import TicketStatus
from support.services import TicketRefused, ticket_status_after
from support.tests.factories import TicketFactory

OPEN, IN_PROGRESS, RESOLVED, CLOSED = "open", "in_progress", "resolved", "closed"
REFUSED = "refused"

RULES = {
    "staff_reply": {
        OPEN: IN_PROGRESS,
        IN_PROGRESS: IN_PROGRESS,
        RESOLVED: RESOLVED,
        CLOSED: REFUSED,
    },
    "customer_reply": {OPEN: OPEN, IN_PROGRESS: IN_PROGRESS, RESOLVED: OPEN, CLOSED: REFUSED},
    "staff_note": {OPEN: OPEN, IN_PROGRESS: IN_PROGRESS, RESOLVED: RESOLVED, CLOSED: CLOSED},
    "resolve": {OPEN: RESOLVED, IN_PROGRESS: RESOLVED, RESOLVED: REFUSED, CLOSED: REFUSED},
    "close": {OPEN: CLOSED, IN_PROGRESS: CLOSED, RESOLVED: CLOSED, CLOSED: REFUSED},
    "reopen": {OPEN: REFUSED, IN_PROGRESS: REFUSED, RESOLVED: OPEN, CLOSED: OPEN},
    "autoclose": {OPEN: OPEN, IN_PROGRESS: IN_PROGRESS, RESOLVED: CLOSED, CLOSED: CLOSED},
}


def test_every_status_and_event_is_covered():
    assert set(RULES) == set(services.EVENTS)
    assert all(set(row) == set(TicketStatus.values) for row in RULES.values())


@pytest.mark.parametrize(
    ("event", "status", "after"),
    [(e, s, a) for e, row in RULES.items() for s, a in row.items()],
)
def test_status_rules(event, status, after):
    if after == REFUSED:
        with pytest.raises(TicketRefused):
            ticket_status_after(status=status, event=event)
    else:
        assert ticket_status_after(status=status, event=event) == after


def test_an_unknown_event_is_a_bug():
    with pytest.raises(ValueError):
        ticket_status_after(status=OPEN, event="teleport")


@pytest.mark.django_db
def test_staff_cannot_reply_on_a_closed_ticket_but_can_note():
    ticket = TicketFactory(status=CLOSED)
    staff = StaffFactory()
    with pytest.raises(TicketRefused):
        services.ticket_reply_by_staff(ticket=ticket, author=staff, body="hi")
    services.ticket_reply_by_staff(ticket=ticket, author=staff, body="note", internal=True)
    assert list(ticket.messages.values_list("body", flat=True)) == ["note"]
    assert not AuditEvent.objects.exists()


@pytest.mark.django_db
def test_a_customer_cannot_close_twice():
    ticket = TicketFactory(status=CLOSED)
    with pytest.raises(TicketRefused):
        services.ticket_close_by_customer(ticket_id=ticket.pk, user=ticket.user)
    assert not AuditEvent.objects.exists()
