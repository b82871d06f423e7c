from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import AuditAction, User
from accounts.services import audit_event_record
from hosting.jobs import defer
from servers.models import ServerEventKind
from servers.services import server_event_record
from support.models import Ticket, TicketMessage, TicketPriority, TicketStatus

SUBJECT_MAX_LENGTH = 200
BODY_MAX_LENGTH = 10_000


class TicketRefused(Exception):
    """The change is not allowed; the message is for the customer (or staff member)."""


# -- status rules ------------------------------------------------------------------------

EVENTS = (
    "staff_reply",
    "customer_reply",
    "staff_note",
    "start",
    "resolve",
    "close",
    "reopen",
    "autoclose",
)
CLOSED_MESSAGE = "This ticket is closed; open a new one."


def ticket_status_after(*, status: str, event: str) -> str:
    """The status a ticket in `status` has after `event`; TicketRefused when the event
    is not allowed. Every status rule of a ticket lives here:

    - a reply (staff or customer) on a closed ticket is refused;
    - a staff reply moves an open ticket to in progress;
    - a customer reply to a resolved ticket reopens it;
    - staff notes never change the status;
    - staff may start work on an open ticket (in progress) without replying;
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
    if event == "start":
        if status != TicketStatus.OPEN:
            raise TicketRefused("Only an open ticket can be marked in progress.")
        return TicketStatus.IN_PROGRESS
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


def _status_apply(ticket: Ticket, *, event: str, actor, request=None) -> list[str]:
    """Move the (locked) ticket on by `event` and audit a change: a customer's or the
    system's as TICKET_STATUS, a staff member's as a staff action (as the admin's actions
    are). Returns the fields to save."""
    before = ticket.status
    ticket.status = ticket_status_after(status=before, event=event)
    if ticket.status == before:
        return []
    ticket.status_changed_at = timezone.now()
    if actor is not None and actor.pk != ticket.user_id:
        action = AuditAction.STAFF_ACTION
        metadata = {"action": "ticket_status", "before": before, "after": ticket.status}
    else:
        action = AuditAction.TICKET_STATUS
        metadata = {"before": before, "after": ticket.status}
    audit_event_record(
        action=action,
        actor=actor,
        request=request,
        target=ticket,
        metadata={**metadata, "event": event},
    )
    return ["status", "status_changed_at"]


# -- limits ------------------------------------------------------------------------------


def _check_length(value: str, *, limit: int, what: str) -> str:
    # Browsers send a textarea's line breaks as CRLF: store one kind, as mail expects.
    value = value.replace("\r\n", "\n").strip()
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
            status_changed_at=now,
        )
        if server is not None:
            server_event_record(
                server=server, kind=ServerEventKind.TICKET_OPENED, message=f"“{subject}”"
            )
        defer(ticket_notify_staff, ticket_id=ticket.pk)
    return ticket


def ticket_reply_by_customer(
    *, ticket_id: int, user, body: str, email_message_id: str = "", request=None
) -> TicketMessage:
    """The customer's reply on their ticket (on the site, or by email with its
    Message-ID): refused on a closed ticket and past the hourly limit; reopens a resolved
    ticket (audited); staff are mailed by a job."""
    body = _check_length(body, limit=BODY_MAX_LENGTH, what="reply")
    with transaction.atomic():
        ticket = Ticket.objects.select_for_update().get(pk=ticket_id, user=user)
        fields = _status_apply(ticket, event="customer_reply", actor=user, request=request)
        _check_rate(user)
        message = _message_add(ticket, author=user, body=body, email_message_id=email_message_id)
        ticket.last_activity_at = ticket.customer_seen_at = message.created_at
        ticket.waiting_on_staff = True
        ticket.save(
            update_fields=[
                *fields,
                "last_activity_at",
                "customer_seen_at",
                "waiting_on_staff",
                "updated_at",
            ]
        )
    return message


def _message_add(ticket: Ticket, *, author, body: str, internal=False, email_message_id=""):
    """Write the message and, unless it is an internal note, the job that mails it."""
    from support.tasks import ticket_message_notify

    message = TicketMessage.objects.create(
        ticket=ticket,
        author=author,
        body=body,
        internal=internal,
        email_message_id=email_message_id,
        created_at=timezone.now(),
    )
    if not internal:
        defer(ticket_message_notify, message_id=message.pk)
    return message


def _customer_status_event(*, ticket_id: int, user, event: str, request=None) -> Ticket:
    with transaction.atomic():
        ticket = Ticket.objects.select_for_update().get(pk=ticket_id, user=user)
        fields = _status_apply(ticket, event=event, actor=user, request=request)
        ticket.save(update_fields=[*fields, "updated_at"])
    return ticket


def ticket_close_by_customer(*, ticket_id: int, user, request=None) -> Ticket:
    """The customer closes their ticket (audited); refused when it already is."""
    return _customer_status_event(ticket_id=ticket_id, user=user, event="close", request=request)


def ticket_reopen_by_customer(*, ticket_id: int, user, request=None) -> Ticket:
    """The customer reopens their resolved or closed ticket (audited)."""
    return _customer_status_event(ticket_id=ticket_id, user=user, event="reopen", request=request)


def ticket_seen_by_customer(*, ticket_id: int, user) -> None:
    """The customer viewed their ticket: staff replies so far are read. One UPDATE (one
    statement: no transaction of its own to open and commit)."""
    Ticket.objects.filter(pk=ticket_id, user=user).update(customer_seen_at=timezone.now())


# -- staff -------------------------------------------------------------------------------


def ticket_reply_by_staff(
    *,
    ticket: Ticket,
    author,
    body: str,
    internal: bool = False,
    email_message_id: str = "",
    request=None,
) -> TicketMessage:
    """A staff reply (or, `internal`, a note only staff see) from the admin or by email.
    A reply moves an open ticket to in progress (audited), is mailed to the customer and
    shows on the server's timeline; a closed ticket takes notes only."""
    body = _check_length(body, limit=BODY_MAX_LENGTH, what="reply")
    event = "staff_note" if internal else "staff_reply"
    with transaction.atomic():
        ticket = Ticket.objects.select_for_update().get(pk=ticket.pk)
        fields = _status_apply(ticket, event=event, actor=author, request=request)
        message = _message_add(
            ticket, author=author, body=body, internal=internal, email_message_id=email_message_id
        )
        if not internal:
            ticket.last_activity_at = message.created_at
            ticket.waiting_on_staff = False
            fields += ["last_activity_at", "waiting_on_staff"]
            if ticket.server_id is not None:
                server_event_record(
                    server=ticket.server,
                    kind=ServerEventKind.TICKET_ANSWERED,
                    message=f"“{ticket.subject}”",
                )
        ticket.save(update_fields=[*fields, "updated_at"])
    return message


def ticket_event_by_staff(*, ticket: Ticket, event: str, actor, request=None) -> Ticket:
    """Staff start, resolve, close or reopen a ticket, by the status rules; audited.
    TicketRefused when the rules do not allow it from the ticket's status."""
    if event not in ("start", "resolve", "close", "reopen"):
        raise ValueError(f"Staff cannot {event!r} a ticket")
    with transaction.atomic():
        ticket = Ticket.objects.select_for_update().get(pk=ticket.pk)
        fields = _status_apply(ticket, event=event, actor=actor, request=request)
        ticket.save(update_fields=[*fields, "updated_at"])
    return ticket


def tickets_autoclose() -> int:
    """Close every ticket resolved more than SUPPORT_AUTOCLOSE_DAYS ago with nothing
    written since (a reply would have reopened it); audited as the system's. Returns how
    many closed. Each ticket is locked and checked again, so a reply racing the job wins."""
    due = timezone.now() - timedelta(days=settings.SUPPORT_AUTOCLOSE_DAYS)
    closed = 0
    candidates = Ticket.objects.filter(status=TicketStatus.RESOLVED, status_changed_at__lt=due)
    for ticket_id in candidates.values_list("pk", flat=True):
        with transaction.atomic():
            ticket = (
                Ticket.objects.select_for_update()
                .filter(pk=ticket_id, status=TicketStatus.RESOLVED, status_changed_at__lt=due)
                .first()
            )
            if ticket is None:
                continue
            fields = _status_apply(ticket, event="autoclose", actor=None)
            ticket.save(update_fields=[*fields, "updated_at"])
            closed += 1
    return closed


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


# -- email -------------------------------------------------------------------------------


def ticket_reply_by_email(
    *, reply_token: str, sender_email: str, body: str, email_message_id: str
) -> TicketMessage | None:
    """A reply that came by email to the ticket's reply address: from the ticket's
    customer it is theirs, from an active staff member a staff reply (never a note).
    None when this email (its Message-ID) was added already; TicketRefused for an unknown
    token, any other sender, or what the site would refuse too (closed, limits)."""
    added = TicketMessage.objects.filter(email_message_id=email_message_id)
    if email_message_id and added.exists():
        return None
    ticket = Ticket.objects.filter(reply_token=reply_token).first()
    if ticket is None:
        raise TicketRefused("No ticket has this reply address.")
    author = User.objects.filter(email__iexact=sender_email, is_active=True).first()
    if author is None or (author.pk != ticket.user_id and not author.is_staff):
        raise TicketRefused(f"{sender_email} is neither the ticket's customer nor staff.")
    try:
        if author.pk == ticket.user_id:
            return ticket_reply_by_customer(
                ticket_id=ticket.pk, user=author, body=body, email_message_id=email_message_id
            )
        return ticket_reply_by_staff(
            ticket=ticket, author=author, body=body, email_message_id=email_message_id
        )
    except IntegrityError as exc:
        if "ticketmsg_email_once" in str(exc):  # the same email, read twice at once
            return None
        raise
