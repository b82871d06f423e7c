"""The customer's one timeline (/activity/): payments, refunds, server events,
deployments and ticket events in one list, newest first, one query per page whatever
the number of rows.

The rows come from a UNION ALL of one SELECT per source, each filtered by the customer,
each giving the same columns (below); PostgreSQL sorts and cuts the page, and each row
becomes an `ActivityRow` with its link in Python (reverse() costs no query). No COUNT:
the page asks for one row more than it shows to know whether an older page exists."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import (
    BigIntegerField,
    CharField,
    DateTimeField,
    F,
    IntegerField,
    TextField,
    UUIDField,
    Value,
)
from django.db.models.functions import Cast
from django.urls import reverse

from billing.models import Payment
from hosting.money import format_cents
from servers.models import Deployment, DeploymentStatus, ServerEvent, ServerEventKind
from support.models import Ticket, TicketMessage

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

# Every branch of the UNION gives these columns, annotated in this order.
COLUMNS = {
    "row_kind": CharField(),
    "row_at": DateTimeField(),
    "row_id": BigIntegerField(),  # the source row's id: with row_kind, the tie-break
    "row_code": CharField(),  # a server event's kind, a deployment's status
    "row_text": TextField(),  # message, subject, branch or plan name
    "row_commit": CharField(),
    "row_server_name": CharField(),
    "row_amount": IntegerField(),
    "row_currency": CharField(),
    "row_server": UUIDField(),
    "row_object": UUIDField(),  # the payment, deployment or ticket the row links to
}


def _branch(queryset, **columns):
    """One SELECT of the UNION: `columns` as given, every other column a typed NULL, so
    each branch has the same columns with the same types in the same order."""
    annotations = {
        name: columns[name] if name in columns else Cast(Value(None), output_field=field)
        for name, field in COLUMNS.items()
    }
    # order_by(): a branch's default ordering means nothing inside a UNION.
    return queryset.order_by().annotate(**annotations).values(*COLUMNS)


def _rows_query(user):
    payments = Payment.objects.filter(user=user)
    payment_columns = {
        "row_id": F("pk"),
        "row_code": F("status"),
        "row_text": F("plan__name"),
        "row_amount": F("amount_cents"),
        "row_currency": F("currency"),
        "row_object": F("uuid"),
    }
    paid = _branch(
        payments.filter(paid_at__isnull=False),
        row_kind=Value(PAYMENT_PAID),
        row_at=F("paid_at"),
        **payment_columns,
    )
    refunded = _branch(
        payments.filter(refunded_at__isnull=False),
        row_kind=Value(PAYMENT_REFUNDED),
        row_at=F("refunded_at"),
        **payment_columns,
    )
    events = _branch(
        ServerEvent.objects.filter(server__user=user).exclude(kind__in=MIRRORED_EVENT_KINDS),
        row_kind=Value(SERVER_EVENT),
        row_at=F("created_at"),
        row_id=F("pk"),
        row_code=F("kind"),
        row_text=F("message"),
        row_server_name=F("server__name"),
        row_server=F("server__uuid"),
    )
    deployments = _branch(
        Deployment.objects.filter(user=user, server__user=user),
        row_kind=Value(DEPLOYMENT),
        # When the customer started it: a deployment still waiting for a worker (or
        # cancelled before one took it) is on the list too.
        row_at=F("created_at"),
        row_id=F("pk"),
        row_code=F("status"),
        row_text=F("branch"),
        row_commit=F("commit"),
        row_server_name=F("server__name"),
        row_server=F("server__uuid"),
        row_object=F("uuid"),
    )
    tickets = _branch(
        Ticket.objects.filter(user=user),
        row_kind=Value(TICKET_OPENED),
        row_at=F("created_at"),
        row_id=F("pk"),
        row_text=F("subject"),
        row_object=F("uuid"),
    )
    # Staff's replies as the ticket page tells them: written by someone other than the
    # customer, never an internal note.
    answers = _branch(
        TicketMessage.objects.filter(ticket__user=user, internal=False).exclude(
            author_id=F("ticket__user_id")
        ),
        row_kind=Value(TICKET_ANSWERED),
        row_at=F("created_at"),
        row_id=F("pk"),
        row_text=F("ticket__subject"),
        row_object=F("ticket__uuid"),
    )
    return paid.union(refunded, events, deployments, tickets, answers, all=True).order_by(
        "-row_at", "row_kind", "-row_id"
    )


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
        url = reverse("servers:domains", args=[row["row_server"]])
    elif kind in DEPLOY_EVENT_KINDS:
        url = reverse("servers:deployments", args=[row["row_server"]])
    else:
        url = reverse("servers:detail", args=[row["row_server"]])
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
            url=reverse("billing:payment_detail", args=[row["row_object"]]),
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
            url=reverse("servers:deployment", args=[row["row_server"], row["row_object"]]),
            kind="deployment",
            status=status,
            status_display=DeploymentStatus(status).label,
        )
    answered = source == TICKET_ANSWERED
    return ActivityRow(
        at=row["row_at"],
        label="Support",
        text=f"{'Support answered' if answered else 'Ticket opened'}: {row['row_text']}",
        url=reverse("support:ticket", args=[row["row_object"]]),
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
    rows = list(_rows_query(user)[offset : offset + PAGE_SIZE + 1])
    return {
        "rows": [_activity_row(row) for row in rows[:PAGE_SIZE]],
        "page": page,
        "older_page": page + 1 if len(rows) > PAGE_SIZE else None,
        "newer_page": page - 1 if page > 1 else None,
    }
