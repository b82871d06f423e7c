"""Reads for the customer's support pages: each a fixed number of queries, whatever the
number of tickets or messages. Another customer's ticket is a 404."""

from django.contrib.postgres.search import SearchQuery, SearchRank
from django.db.models import F
from django.http import Http404
from django.shortcuts import get_object_or_404

from hosting.db import instances, json_document
from servers.models import Server
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


# The ticket page in one query: the customer's ticket, the name of the server it is about
# and the conversation the customer may read (never staff's internal notes).
TICKET_PAGE_SQL = """
WITH ticket AS (
    SELECT id, uuid, user_id, subject, description, priority, status, created_at,
           last_activity_at, customer_seen_at, server_id
    FROM support_ticket WHERE uuid = %(ticket)s AND user_id = %(user)s
)
SELECT json_build_object(
    'ticket', (SELECT row_to_json(ticket) FROM ticket),
    'server', (
        SELECT row_to_json(s) FROM (
            SELECT id, uuid, name FROM servers_server WHERE id = (SELECT server_id FROM ticket)
        ) s
    ),
    'conversation', (
        SELECT coalesce(json_agg(m ORDER BY m.created_at, m.id), '[]') FROM (
            SELECT id, author_id, body, created_at FROM support_ticketmessage
            WHERE ticket_id = (SELECT id FROM ticket) AND NOT internal
        ) m
    )
)::text
"""


def ticket_page_for(user, ticket_uuid) -> dict:
    """The ticket with its server's name and the conversation the customer may read:
    one query (TICKET_PAGE_SQL). Another customer's ticket is a 404."""
    document = json_document(TICKET_PAGE_SQL, {"ticket": str(ticket_uuid), "user": user.pk})
    if document["ticket"] is None:
        raise Http404("No such ticket.")
    (ticket,) = instances(Ticket, [document["ticket"]])
    if document["server"] is not None:
        (ticket.server,) = instances(Server, [document["server"]])
    conversation = instances(TicketMessage, document["conversation"])
    for message in conversation:
        message.from_customer = message.author_id == ticket.user_id
    return {"ticket": ticket, "conversation": conversation}
