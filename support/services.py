from django.db import transaction
from django.utils import timezone

from accounts.models import AuditAction
from accounts.services import audit_event_record
from hosting.jobs import defer
from support.models import Ticket, TicketMessage, TicketPriority


def ticket_create(
    *, user, subject: str, description: str, priority: str = TicketPriority.MEDIUM, server=None
) -> Ticket:
    """Open a ticket; staff are emailed by the worker. The job is written in the same
    transaction as the ticket, so it exists if and only if the ticket does."""
    from support.tasks import ticket_notify_staff

    with transaction.atomic():
        ticket = Ticket.objects.create(
            user=user, subject=subject, description=description, priority=priority, server=server
        )
        defer(ticket_notify_staff, ticket_id=ticket.pk)
    return ticket


def ticket_reply_by_staff(*, ticket: Ticket, author, body: str, internal: bool = False):
    """A staff reply (or, `internal`, a note only staff see) on the ticket's page."""
    with transaction.atomic():
        message = TicketMessage.objects.create(
            ticket=ticket, author=author, body=body, internal=internal
        )
        Ticket.objects.filter(pk=ticket.pk).update(updated_at=timezone.now())
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
        _staff_audit(actor, request, ticket, action="ticket_status", before=before, after=status)
    return True


def ticket_assign(*, ticket: Ticket, assignee, actor, request=None) -> bool:
    """Give the ticket to a staff member; audited. False when it already was theirs."""
    with transaction.atomic():
        ticket = Ticket.objects.select_for_update().get(pk=ticket.pk)
        if ticket.assignee_id == assignee.pk:
            return False
        ticket.assignee = assignee
        ticket.save(update_fields=["assignee", "updated_at"])
        _staff_audit(actor, request, ticket, action="ticket_assign", assignee=assignee.email)
    return True


def _staff_audit(actor, request, ticket: Ticket, **metadata) -> None:
    audit_event_record(
        action=AuditAction.STAFF_ACTION,
        actor=actor,
        request=request,
        target=ticket,
        metadata=metadata,
    )
