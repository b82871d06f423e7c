"""The customer's one timeline (/activity/): payments, refunds, server events,
deployments and ticket events in one list, newest first, one query per page whatever
the number of rows.

The rows come from a UNION ALL of one SELECT per source, each filtered by the customer,
each giving the same columns (below); PostgreSQL sorts and cuts the page, and each row
becomes an `ActivityRow` with its link in Python (no query). No COUNT:
the page asks for one row more than it shows to know whether an older page exists."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import connection

from hosting.links import uuid_link
from hosting.money import format_cents
from servers.models import DeploymentStatus, ServerEventKind

PAGE_SIZE = 50
# Past this, a page number is not one we serve (it is page 1): the OFFSET stays a number
# PostgreSQL takes, and nobody has 500,000 rows of activity.
MAX_PAGE = 10_000

# Server events that repeat a fact another source already gives with a better link: the
# ticket rows (ticket page; a ticket without a server has no event at all), the
# deployment rows (deployment page; their status badge says how the deployment ended)
# and the payment rows (payment page). The events stay on the server page's timeline.
MIRRORED_EVENT_KINDS = (
    ServerEventKind.TICKET_OPENED,
    ServerEventKind.TICKET_ANSWERED,
    ServerEventKind.DEPLOYED,
    ServerEventKind.DEPLOY_FAILED,
    ServerEventKind.PAYMENT_CONFIRMED,
    ServerEventKind.REFUND_ISSUED,
)
DOMAIN_EVENT_KINDS = frozenset(
    {
        ServerEventKind.DOMAIN_ADDED,
        ServerEventKind.DOMAIN_VERIFIED,
        ServerEventKind.HTTPS_ACTIVE,
        ServerEventKind.HTTPS_FAILED,
        ServerEventKind.DOMAIN_REMOVED,
    }
)
DEPLOY_EVENT_KINDS = frozenset({ServerEventKind.DEPLOYED, ServerEventKind.DEPLOY_FAILED})

# The source of a row (the `row_kind` column).
PAYMENT_PAID = "payment_paid"
PAYMENT_REFUNDED = "payment_refunded"
SERVER_EVENT = "server_event"
DEPLOYMENT = "deployment"
TICKET_OPENED = "ticket_opened"
TICKET_ANSWERED = "ticket_answered"

# One SELECT per source, each filtered by the customer, each giving the same columns:
# row_kind (the source), row_at, row_id (the source row's id: with row_kind, the
# tie-break), row_code (a server event's kind, a payment's or deployment's status),
# row_text (message, subject, branch or plan name), row_commit, row_server_name,
# row_amount, row_currency, row_server (its uuid) and row_object (the payment, deployment
# or ticket the row links to). Written as SQL, not as an ORM union: building that
# union cost more than the database took to answer it.
ROWS_SQL = """
SELECT 'payment_paid' AS row_kind, pay.paid_at AS row_at, pay.id AS row_id,
       pay.status AS row_code, plan.name AS row_text, NULL::varchar AS row_commit,
       NULL::varchar AS row_server_name, pay.amount_cents AS row_amount,
       pay.currency AS row_currency, NULL::uuid AS row_server, pay.uuid AS row_object
FROM billing_payment pay JOIN billing_plan plan ON plan.id = pay.plan_id
WHERE pay.user_id = %(user)s AND pay.paid_at IS NOT NULL
UNION ALL
SELECT 'payment_refunded', pay.refunded_at, pay.id, pay.status, plan.name, NULL, NULL,
       pay.amount_cents, pay.currency, NULL, pay.uuid
FROM billing_payment pay JOIN billing_plan plan ON plan.id = pay.plan_id
WHERE pay.user_id = %(user)s AND pay.refunded_at IS NOT NULL
UNION ALL
SELECT 'server_event', event.created_at, event.id, event.kind, event.message, NULL,
       server.name, NULL, NULL, server.uuid, NULL
FROM servers_serverevent event JOIN servers_server server ON server.id = event.server_id
WHERE server.user_id = %(user)s AND NOT event.kind = ANY(%(mirrored)s)
UNION ALL
-- When the customer started it: a deployment still waiting for a worker (or cancelled
-- before one took it) is on the list too.
SELECT 'deployment', deployment.created_at, deployment.id, deployment.status,
       deployment.branch, deployment."commit", server.name, NULL, NULL, server.uuid,
       deployment.uuid
FROM servers_deployment deployment JOIN servers_server server ON server.id = deployment.server_id
WHERE deployment.user_id = %(user)s AND server.user_id = %(user)s
UNION ALL
SELECT 'ticket_opened', ticket.created_at, ticket.id, NULL, ticket.subject, NULL, NULL, NULL,
       NULL, NULL, ticket.uuid
FROM support_ticket ticket
WHERE ticket.user_id = %(user)s
UNION ALL
-- Staff's replies as the ticket page tells them: written by someone other than the
-- customer, never an internal note.
SELECT 'ticket_answered', message.created_at, message.id, NULL, ticket.subject, NULL, NULL,
       NULL, NULL, NULL, ticket.uuid
FROM support_ticketmessage message JOIN support_ticket ticket ON ticket.id = message.ticket_id
WHERE ticket.user_id = %(user)s AND NOT message.internal AND message.author_id <> ticket.user_id
ORDER BY row_at DESC, row_kind, row_id DESC
LIMIT %(limit)s OFFSET %(offset)s
"""


def _rows(user, offset: int, limit: int) -> list[dict]:
    """Rows `offset` to `offset + limit` of the customer's activity, as dicts: one query."""
    params = {
        "user": user.pk,
        "mirrored": list(MIRRORED_EVENT_KINDS),
        "limit": limit,
        "offset": offset,
    }
    with connection.cursor() as cursor:
        cursor.execute(ROWS_SQL, params)
        names = [column.name for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


@dataclass(frozen=True)
class ActivityRow:
    at: datetime
    label: str
    text: str
    url: str
    # A CSS modifier for the timeline dot and, for deployments, the status badge.
    kind: str
    status: str = ""
    status_display: str = ""


def _server_event_row(row) -> ActivityRow:
    kind = row["row_code"]
    if kind in DOMAIN_EVENT_KINDS:
        url = uuid_link("servers:domains", row["row_server"])
    elif kind in DEPLOY_EVENT_KINDS:
        url = uuid_link("servers:deployments", row["row_server"])
    else:
        url = uuid_link("servers:detail", row["row_server"])
    label = ServerEventKind(kind).label if kind in ServerEventKind.values else kind
    return ActivityRow(
        at=row["row_at"],
        label=f"{label} · {row['row_server_name']}",
        text=row["row_text"],
        url=url,
        kind=kind,
    )


def _activity_row(row) -> ActivityRow:
    source = row["row_kind"]
    if source in (PAYMENT_PAID, PAYMENT_REFUNDED):
        amount = format_cents(row["row_amount"], row["row_currency"])
        paid = source == PAYMENT_PAID
        return ActivityRow(
            at=row["row_at"],
            label="Payment" if paid else "Refund",
            text=f"Payment of {amount} for {row['row_text']} "
            + ("received" if paid else "refunded"),
            url=uuid_link("billing:payment_detail", row["row_object"]),
            kind=source,
        )
    if source == SERVER_EVENT:
        return _server_event_row(row)
    if source == DEPLOYMENT:
        commit = row["row_commit"]
        status = row["row_code"]
        return ActivityRow(
            at=row["row_at"],
            label=f"Deployment · {row['row_server_name']}",
            text=f"Deployment of {commit[:7] if commit else row['row_text']} started",
            url=uuid_link("servers:deployment", row["row_server"], row["row_object"]),
            kind="deployment",
            status=status,
            status_display=DeploymentStatus(status).label,
        )
    answered = source == TICKET_ANSWERED
    return ActivityRow(
        at=row["row_at"],
        label="Support",
        text=f"{'Support answered' if answered else 'Ticket opened'}: {row['row_text']}",
        url=uuid_link("support:ticket", row["row_object"]),
        kind=source,
    )


def page_number(value: str | None) -> int:
    """`?page=` as the page to show: anything but a whole number from 1 to MAX_PAGE
    is page 1."""
    if value and value.isascii() and value.isdigit() and len(value) <= len(str(MAX_PAGE)):
        number = int(value)
        if 1 <= number <= MAX_PAGE:
            return number
    return 1


def activity_page_for(user, page: int = 1) -> dict:
    """One page of the customer's activity, newest first: one query, whatever the
    numbers. A page past the end is empty (it still says where the newest rows are)."""
    page = min(max(page, 1), MAX_PAGE)
    offset = (page - 1) * PAGE_SIZE
    rows = _rows(user, offset, PAGE_SIZE + 1)
    return {
        "rows": [_activity_row(row) for row in rows[:PAGE_SIZE]],
        "page": page,
        "older_page": page + 1 if len(rows) > PAGE_SIZE else None,
        "newer_page": page - 1 if page > 1 else None,
    }
