from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import AuditAction, User
from accounts.services import audit_event_record
from hosting.jobs import defer
from support.models import Ticket, TicketMessage, TicketPriority, TicketStatus

SUBJECT_MAX_LENGTH = 200
BODY_MAX_LENGTH = 10_000


class TicketRefused(Exception):
    """The change is not allowed; the message is for the customer (or staff member)."""


# -- status rules ------------------------------------------------------------------------

EVENTS = ("staff_reply", "customer_reply", "staff_note", "resolve", "close", "reopen", "autoclose")
CLOSED_MESSAGE = "This ticket is closed; open a new one."


def ticket_status_after(*, status: str, event: str) -> str:
    """The status a ticket in `status` has after `event`; TicketRefused when the event
    is not allowed. Every status rule of a ticket lives here:

    - a reply (staff or customer) on a closed ticket is refused;
    - a staff reply moves an open ticket to in progress;
    - a customer reply to a resolved ticket reopens it;
    - staff notes never change the status;
    - staff resolve an open or in-progress ticket;
    - the customer (or staff) may close any ticket not already closed, and reopen a
      resolved or closed one;
    - autoclose closes a resolved ticket and leaves any other alone.
    """
    if event not in EVENTS:
        raise ValueError(f"Unknown ticket event {event!r}")
    closed = status == TicketStatus.CLOSED
    if event in ("staff_reply", "customer_reply") and closed:
        raise TicketRefused(CLOSED_MESSAGE)
    if event == "staff_reply":
        return TicketStatus.IN_PROGRESS if status == TicketStatus.OPEN else status
    if event == "customer_reply":
        return TicketStatus.OPEN if status == TicketStatus.RESOLVED else status
    if event == "staff_note":
        return status
    if event == "resolve":
        if status not in (TicketStatus.OPEN, TicketStatus.IN_PROGRESS):
            raise TicketRefused("Only an open or in-progress ticket can be resolved.")
        return TicketStatus.RESOLVED
    if event == "close":
        if closed:
            raise TicketRefused("This ticket is already closed.")
        return TicketStatus.CLOSED
    if event == "reopen":
        if status not in (TicketStatus.RESOLVED, TicketStatus.CLOSED):
            raise TicketRefused("This ticket is already open.")
        return TicketStatus.OPEN
    # autoclose
    return TicketStatus.CLOSED if status == TicketStatus.RESOLVED else status


def _status_audit(ticket: Ticket, *, before: str, event: str, actor, request=None) -> None:
    """Audit a change of status: a customer's as TICKET_STATUS, a staff member's as a
    staff action (as the admin's actions are)."""
    if ticket.status == before:
        return
    metadata = {"action": "ticket_status", "before": before, "after": ticket.status}
    if actor is not None and actor.pk == ticket.user_id:
        action = AuditAction.TICKET_STATUS
        metadata = {"before": before, "after": ticket.status, "event": event}
    else:
        action = AuditAction.STAFF_ACTION
        if event != "set":
            metadata["event"] = event
    audit_event_record(
        action=action, actor=actor, request=request, target=ticket, metadata=metadata
    )


# -- limits ------------------------------------------------------------------------------


def _check_length(value: str, *, limit: int, what: str) -> str:
    value = value.strip()
    if not value:
        raise TicketRefused(f"Write the {what}.")
    if len(value) > limit:
        raise TicketRefused(f"The {what} is too long (at most {limit:,} characters).")
    return value


def _check_rate(user) -> None:
    """At most SUPPORT_RATE_LIMIT tickets and replies per customer per hour. The user's
    row is locked so two requests at once cannot both take the last slot."""
    limit = settings.SUPPORT_RATE_LIMIT
    User.objects.select_for_update().filter(pk=user.pk).values_list("pk").first()
    since = timezone.now() - timedelta(hours=1)
    sent = (
        Ticket.objects.filter(user=user, created_at__gte=since).count()
        + TicketMessage.objects.filter(author=user, created_at__gte=since).count()
    )
    if sent >= limit:
        raise TicketRefused(
            f"You have sent {limit} tickets and replies in the last hour; "
            "please wait a while before sending more."
        )


# -- customers ---------------------------------------------------------------------------


def ticket_create(
    *, user, subject: str, description: str, priority: str = TicketPriority.MEDIUM, server=None
) -> Ticket:
    """Open a ticket; staff are emailed by the worker. The job is written in the same
    transaction as the ticket, so it exists if and only if the ticket does. TicketRefused
    past the hourly limit or with an empty or too long subject or description."""
    from support.tasks import ticket_notify_staff

    subject = _check_length(subject, limit=SUBJECT_MAX_LENGTH, what="subject")
    description = _check_length(description, limit=BODY_MAX_LENGTH, what="description")
    if server is not None and server.user_id != user.pk:
        raise TicketRefused("Choose one of your servers.")
    with transaction.atomic():
        _check_rate(user)
        now = timezone.now()
        ticket = Ticket.objects.create(
            user=user,
            subject=subject,
            description=description,
            priority=priority,
            server=server,
            created_at=now,
            last_activity_at=now,
            customer_seen_at=now,
        )
        defer(ticket_notify_staff, ticket_id=ticket.pk)
    return ticket


def ticket_reply_by_customer(*, ticket_id: int, user, body: str, request=None) -> TicketMessage:
    """The customer's reply on their ticket: refused on a closed ticket and past the
    hourly limit; reopens a resolved ticket (audited)."""
    body = _check_length(body, limit=BODY_MAX_LENGTH, what="reply")
    with transaction.atomic():
        ticket = Ticket.objects.select_for_update().get(pk=ticket_id, user=user)
        before = ticket.status
        ticket.status = ticket_status_after(status=before, event="customer_reply")
        _check_rate(user)
        now = timezone.now()
        message = TicketMessage.objects.create(
            ticket=ticket, author=user, body=body, created_at=now
        )
        ticket.last_activity_at = ticket.customer_seen_at = now
        ticket.save(update_fields=["status", "last_activity_at", "customer_seen_at", "updated_at"])
        _status_audit(ticket, before=before, event="customer_reply", actor=user, request=request)
    return message


def _customer_status_event(*, ticket_id: int, user, event: str, request=None) -> Ticket:
    with transaction.atomic():
        ticket = Ticket.objects.select_for_update().get(pk=ticket_id, user=user)
        before = ticket.status
        ticket.status = ticket_status_after(status=before, event=event)
        ticket.save(update_fields=["status", "updated_at"])
        _status_audit(ticket, before=before, event=event, actor=user, request=request)
    return ticket


def ticket_close_by_customer(*, ticket_id: int, user, request=None) -> Ticket:
    """The customer closes their ticket (audited); refused when it already is."""
    return _customer_status_event(ticket_id=ticket_id, user=user, event="close", request=request)


def ticket_reopen_by_customer(*, ticket_id: int, user, request=None) -> Ticket:
    """The customer reopens their resolved or closed ticket (audited)."""
    return _customer_status_event(ticket_id=ticket_id, user=user, event="reopen", request=request)


def ticket_seen_by_customer(*, ticket_id: int, user) -> None:
    """The customer viewed their ticket: staff replies so far are read. One UPDATE."""
    with transaction.atomic():
        Ticket.objects.filter(pk=ticket_id, user=user).update(customer_seen_at=timezone.now())


# -- staff -------------------------------------------------------------------------------


def ticket_reply_by_staff(
    *, ticket: Ticket, author, body: str, internal: bool = False, request=None
):
    """A staff reply (or, `internal`, a note only staff see) on the ticket's page. A reply
    moves an open ticket to in progress (audited); a closed ticket takes notes only."""
    event = "staff_note" if internal else "staff_reply"
    with transaction.atomic():
        ticket = Ticket.objects.select_for_update().get(pk=ticket.pk)
        before = ticket.status
        ticket.status = ticket_status_after(status=before, event=event)
        now = timezone.now()
        message = TicketMessage.objects.create(
            ticket=ticket, author=author, body=body, internal=internal, created_at=now
        )
        fields = ["status", "updated_at"]
        if not internal:
            ticket.last_activity_at = now
            fields.append("last_activity_at")
        ticket.save(update_fields=fields)
        _status_audit(ticket, before=before, event=event, actor=author, request=request)
    return message


def ticket_status_set_by_staff(*, ticket: Ticket, status: str, actor, request=None) -> bool:
    """Staff move a ticket to `status`; audited. False when it already was."""
    with transaction.atomic():
        ticket = Ticket.objects.select_for_update().get(pk=ticket.pk)
        if ticket.status == status:
            return False
        before = ticket.status
        ticket.status = status
        ticket.save(update_fields=["status", "updated_at"])
        _status_audit(ticket, before=before, event="set", actor=actor, request=request)
    return True


def ticket_assign(*, ticket: Ticket, assignee, actor, request=None) -> bool:
    """Give the ticket to a staff member; audited. False when it already was theirs."""
    with transaction.atomic():
        ticket = Ticket.objects.select_for_update().get(pk=ticket.pk)
        if ticket.assignee_id == assignee.pk:
            return False
        ticket.assignee = assignee
        ticket.save(update_fields=["assignee", "updated_at"])
        audit_event_record(
            action=AuditAction.STAFF_ACTION,
            actor=actor,
            request=request,
            target=ticket,
            metadata={"action": "ticket_assign", "assignee": assignee.email},
        )
    return True
