"""Reads for the customer's support pages: each a fixed number of queries, whatever the
number of tickets or messages. Another customer's ticket is a 404."""

from django.shortcuts import get_object_or_404

from support.models import Ticket, TicketMessage, TicketStatus

TICKETS_SHOWN = 200
STATUS_FILTERS = ("open", "closed")


def tickets_page_for(user, status_filter: str = "") -> dict:
    """The customer's tickets, latest activity first: one query. `status_filter` "open"
    is every ticket not closed, "closed" the closed ones; anything else, all."""
    tickets = Ticket.objects.filter(user=user).only(
        "uuid",
        "subject",
        "status",
        "priority",
        "created_at",
        "last_activity_at",
        "customer_seen_at",
    )
    if status_filter == "open":
        tickets = tickets.exclude(status=TicketStatus.CLOSED)
    elif status_filter == "closed":
        tickets = tickets.filter(status=TicketStatus.CLOSED)
    else:
        status_filter = ""
    tickets = list(tickets.order_by("-last_activity_at", "-id")[:TICKETS_SHOWN])
    return {"tickets": tickets, "status_filter": status_filter}


def ticket_for(user, ticket_uuid) -> Ticket:
    """The customer's own ticket (no relations): one query."""
    return get_object_or_404(
        Ticket.objects.only("pk", "uuid", "status"), uuid=ticket_uuid, user=user
    )


def ticket_page_for(user, ticket_uuid) -> dict:
    """The ticket with its server's name and the conversation the customer may read
    (never internal notes): two queries."""
    ticket = get_object_or_404(
        Ticket.objects.select_related("server").only(
            "uuid",
            "user_id",
            "subject",
            "description",
            "priority",
            "status",
            "created_at",
            "last_activity_at",
            "customer_seen_at",
            "server__uuid",
            "server__name",
        ),
        uuid=ticket_uuid,
        user=user,
    )
    conversation = list(
        TicketMessage.objects.filter(ticket=ticket, internal=False)
        .only("author_id", "body", "created_at")
        .order_by("created_at", "id")
    )
    for message in conversation:
        message.from_customer = message.author_id == ticket.user_id
    return {"ticket": ticket, "conversation": conversation}
