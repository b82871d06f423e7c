from django.db import transaction

from support.models import Ticket, TicketPriority


def ticket_create(
    *, user, subject: str, description: str, priority: str = TicketPriority.MEDIUM, server=None
) -> Ticket:
    """Open a ticket; staff are emailed by the worker once the row is committed."""
    from support.tasks import ticket_notify_staff

    with transaction.atomic():
        ticket = Ticket.objects.create(
            user=user, subject=subject, description=description, priority=priority, server=server
        )
        transaction.on_commit(lambda: ticket_notify_staff.defer(ticket_id=ticket.pk))
    return ticket
