"""The status rules (`ticket_status_after`) as a table, and the services that use them."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import AuditEvent
from accounts.tests.factories import StaffFactory, UserFactory
from servers.models import ServerEvent, ServerEventKind
from servers.tests.factories import ServerFactory
from support import services
from support.models import Ticket, TicketStatus
from support.services import TicketRefused, ticket_status_after
from support.tasks import tickets_autoclose
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
    "start": {OPEN: IN_PROGRESS, IN_PROGRESS: REFUSED, RESOLVED: REFUSED, CLOSED: REFUSED},
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


# -- autoclose -----------------------------------------------------------------------------


def days_ago(days):
    return timezone.now() - timedelta(days=days)


@pytest.mark.django_db
def test_a_resolved_ticket_quiet_for_the_autoclose_days_closes(settings):
    settings.SUPPORT_AUTOCLOSE_DAYS = 7
    due = TicketFactory(status=RESOLVED, status_changed_at=days_ago(8))
    recent = TicketFactory(status=RESOLVED, status_changed_at=days_ago(6))
    open_old = TicketFactory(status=OPEN, status_changed_at=days_ago(30))
    progress_old = TicketFactory(status=IN_PROGRESS, status_changed_at=days_ago(30))

    assert tickets_autoclose(timestamp=0) == 1
    assert tickets_autoclose(timestamp=0) == 0  # the next run finds nothing more

    statuses = {t.pk: t.status for t in Ticket.objects.all()}
    assert statuses == {
        due.pk: CLOSED,
        recent.pk: RESOLVED,
        open_old.pk: OPEN,
        progress_old.pk: IN_PROGRESS,
    }
    (event,) = AuditEvent.objects.all()
    assert (event.action, event.actor, event.target_id) == (
        AuditEvent.Action.TICKET_STATUS,
        None,
        str(due.pk),
    )
    assert event.metadata == {"before": RESOLVED, "after": CLOSED, "event": "autoclose"}


@pytest.mark.django_db
def test_a_customer_reply_after_resolving_restarts_the_clock(settings):
    """The reply reopens the ticket; resolved again, it has its full autoclose days."""
    settings.SUPPORT_AUTOCLOSE_DAYS = 7
    ticket = TicketFactory(status=RESOLVED, status_changed_at=days_ago(8))
    services.ticket_reply_by_customer(ticket_id=ticket.pk, user=ticket.user, body="Not fixed!")
    services.ticket_event_by_staff(ticket=ticket, event="resolve", actor=StaffFactory())

    assert tickets_autoclose(timestamp=0) == 0
    ticket.refresh_from_db()
    assert ticket.status == RESOLVED


@pytest.mark.django_db
def test_autoclose_is_a_periodic_job():
    from procrastinate.contrib.django import app

    periodic = {task.task.name: task.cron for task in app.periodic_registry.periodic_tasks.values()}
    assert periodic["support.tasks.tickets_autoclose"] == "7 * * * *"
    assert periodic["support.tasks.support_mail_fetch"] == "* * * * *"


# -- the server's timeline -----------------------------------------------------------------


@pytest.mark.django_db
def test_a_ticket_about_a_server_is_on_its_timeline_opened_and_answered():
    server = ServerFactory()
    ticket = services.ticket_create(
        user=server.user, subject="Nginx 502", description="since 10:00", server=server
    )
    services.ticket_reply_by_customer(ticket_id=ticket.pk, user=server.user, body="Still.")
    staff = StaffFactory()
    services.ticket_reply_by_staff(ticket=ticket, author=staff, body="Note", internal=True)
    services.ticket_reply_by_staff(ticket=ticket, author=staff, body="Restarted it.")

    events = list(ServerEvent.objects.filter(server=server).values_list("kind", "message"))
    assert events == [
        (ServerEventKind.TICKET_OPENED, "“Nginx 502”"),
        (ServerEventKind.TICKET_ANSWERED, "“Nginx 502”"),  # the reply, not the note
    ]


@pytest.mark.django_db
def test_a_ticket_about_no_server_writes_no_server_event():
    user = UserFactory()
    ticket = services.ticket_create(user=user, subject="Billing", description="?")
    services.ticket_reply_by_staff(ticket=ticket, author=StaffFactory(), body="Answered.")
    assert not ServerEvent.objects.exists()


@pytest.mark.django_db
def test_waiting_on_follows_who_wrote_last():
    user = UserFactory()
    ticket = services.ticket_create(user=user, subject="s", description="d")
    staff = StaffFactory()

    def waiting():
        return Ticket.objects.get(pk=ticket.pk).waiting_on_staff

    assert waiting()
    services.ticket_reply_by_staff(ticket=ticket, author=staff, body="n", internal=True)
    assert waiting()  # a note answers nobody
    services.ticket_reply_by_staff(ticket=ticket, author=staff, body="r")
    assert not waiting()
    services.ticket_reply_by_customer(ticket_id=ticket.pk, user=user, body="c")
    assert waiting()
