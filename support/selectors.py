"""Reads for the customer's support pages: each a fixed number of queries, whatever the
number of tickets or messages. Another customer's ticket is a 404."""

from django.contrib.postgres.search import SearchQuery, SearchRank
from django.db.models import F
from django.shortcuts import get_object_or_404

from support.models import Ticket, TicketMessage, TicketStatus

TICKETS_SHOWN = 200
STATUS_FILTERS = ("open", "closed")


SEARCH_MAX_LENGTH = 200


def search_text(value: str) -> str:
    """What a search box sent, as PostgreSQL can take it: no NUL, at most 200 characters."""
    return value.replace("\x00", "").strip()[:SEARCH_MAX_LENGTH]


def tickets_page_for(user, status_filter: str = "", search: str = "") -> dict:
    """The customer's tickets, latest activity first: one query. `status_filter` "open"
    is every ticket not closed, "closed" the closed ones; anything else, all. `search`
    keeps the tickets whose words (subject, description, replies; never staff's notes)
    match, best match first."""
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
    order = ["-last_activity_at", "-id"]
    search = search_text(search)
    if search:
        query = SearchQuery(search, search_type="websearch", config="english")
        tickets = tickets.filter(search_document=query).annotate(
            rank=SearchRank(F("search_document"), query)
        )
        order.insert(0, "-rank")
    tickets = list(tickets.order_by(*order)[:TICKETS_SHOWN])
    return {"tickets": tickets, "status_filter": status_filter, "search": search}


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
