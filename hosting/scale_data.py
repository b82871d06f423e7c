"""Scale data for the benchmarks and the backup drill (`manage.py seed_scale`): thousands
of customers shaped like real ones (hosting/scale_shapes.py), and logged-in sessions of
a spread of them for the load generator (`scale_customers_sample`).

Written with bulk inserts, 500 customers per transaction, three transactions at a time:
no COPY, which PostgreSQL refuses for a table under forced row-level security unless the
role bypasses it (the app's role does not). Parents go through bulk_create; the most
numerous rows (deployments, server events, audit events) are tuples sent as arrays to
one INSERT ... SELECT FROM unnest() each; the rows that follow from a deployment (its
log lines, the timeline event it writes) are made by PostgreSQL from the deployments
just saved, with one INSERT ... SELECT each: two million log lines as Python objects
would cost more than everything else together.

Adds the customers missing up to the number asked for (scale0@example.com,
scale1@example.com, ...), so running it again adds nothing and a larger number adds the
difference.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import timedelta

import psycopg
from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.hashers import make_password
from django.contrib.sessions.backends.db import SessionStore
from django.db import connection, transaction
from django.db.models import Exists, JSONField, Model, OuterRef
from django.utils import timezone

from accounts.middleware import LOGIN_AT_SESSION_KEY
from accounts.models import AuditEvent, User
from billing.models import Payment, Plan, Subscription
from hosting.scale_shapes import (
    AUDIT_EVENT_FIELDS,
    DEPLOYMENT_FIELDS,
    EMAIL_PATTERN,
    SERVER_EVENT_FIELDS,
    STAFF_EMAILS,
    Batch,
    Context,
    batch_build,
)
from hosting.scale_texts import log_templates
from servers.models import (
    Deployment,
    DeploymentLogLine,
    DeploymentStatus,
    Domain,
    Server,
    ServerAction,
    ServerEvent,
    ServerStatus,
)
from support.models import Ticket, TicketMessage

BATCH = 500  # customers per transaction
# Transactions at a time, each in a thread with its own connection: Python builds one
# batch while PostgreSQL writes the others. 10,000 customers on the 2-core machine,
# shared with other work: 67 s with two, 48 s with three.
WORKERS = 3
TICKET_DOCUMENTS = frozenset({"search_document", "staff_search_document"})
BACKEND = "django.contrib.auth.backends.ModelBackend"

# The lines are timed across the run: line k of a finished run at k/12 of its duration.
LOG_LINES_SQL = """
INSERT INTO {lines} (deployment_id, number, text, created_at)
SELECT d.id, t.number,
       replace(replace(t.text, '{{branch}}', d.branch), '{{short}}', left(d.commit, 7)),
       coalesce(d.started_at, d.created_at)
           + coalesce(d.finished_at - d.started_at, interval '10 seconds') * (t.number / 12.0)
FROM unnest(%s::bigint[], %s::int[]) AS s(server_id, stack)
JOIN {deployments} d ON d.server_id = s.server_id
JOIN unnest(%s::int[], %s::text[], %s::int[], %s::text[]) AS t(stack, status, number, text)
  ON t.stack = s.stack AND t.status = d.status
"""

# What deployment_finish writes on the server's timeline (servers/deployments.py).
DEPLOY_EVENTS_SQL = """
INSERT INTO {events} (server_id, kind, message, created_at)
SELECT server_id,
       CASE status WHEN 'success' THEN 'deployed' ELSE 'deploy_failed' END,
       CASE status WHEN 'success' THEN 'Deployed ' || left(commit, 7) || ' from ' || branch || '.'
                   ELSE failure_reason END,
       finished_at
FROM {deployments}
WHERE server_id = ANY(%s::bigint[]) AND status IN ('success', 'failed')
"""


@dataclass
class ScaleReport:
    customers: int  # scale customers in the database now
    added: int
    seconds: float
    rows: Counter = field(default_factory=Counter)  # rows made, by table

    def lines(self) -> list[str]:
        made = [f"  {table}: {count}" for table, count in sorted(self.rows.items())]
        return [
            f"Scale data: {self.customers} customers ({self.added} added), "
            f"{sum(self.rows.values())} rows in {self.seconds:.1f} s",
            *made,
        ]


def scale_numbers() -> set[int]:
    """The n of every scale customer (scale{n}@example.com) in the database."""
    pattern = re.compile(EMAIL_PATTERN)
    emails = User.objects.filter(email__regex=EMAIL_PATTERN).values_list("email", flat=True)
    return {int(pattern.match(email)[1]) for email in emails}


def seed_scale(
    customers: int,
    *,
    batch: int = BATCH,
    workers: int = WORKERS,
    say: Callable[[str], object] = lambda line: None,
) -> ScaleReport:
    """Adds the scale customers missing among the first `customers`, `batch` per
    transaction, `workers` transactions at a time (one when called inside a transaction:
    a thread's connection would not see it); says how far it got after each."""
    started = time.monotonic()
    have = scale_numbers()
    missing = [n for n in range(customers) if n not in have]
    report = ScaleReport(customers=len(have), added=0, seconds=0.0)
    if missing:
        context = _context(report.rows)
        chunks = [missing[start : start + batch] for start in range(0, len(missing), batch)]

        def done(rows: Counter, numbers: list[int]) -> None:
            report.rows.update(rows)
            report.added += len(numbers)
            say(f"  {report.added}/{len(missing)} customers, {time.monotonic() - started:.1f} s")

        if workers > 1 and len(chunks) > 1 and not connection.in_atomic_block:
            # Each thread's connection is closed when its batch is saved.
            with ThreadPoolExecutor(max_workers=workers) as pool:
                futures = {pool.submit(_batch_seed, context, numbers, True): numbers
                           for numbers in chunks}  # fmt: skip
                try:
                    for future in as_completed(futures):
                        done(future.result(), futures[future])
                except BaseException:
                    # The batches committed stay (a run again adds the rest); the others
                    # are not started.
                    pool.shutdown(cancel_futures=True)
                    raise
        else:
            for numbers in chunks:
                done(_batch_seed(context, numbers, False), numbers)
    report.customers += report.added
    report.seconds = time.monotonic() - started
    return report


def _batch_seed(context: Context, numbers: list[int], own_connection: bool) -> Counter:
    rows: Counter = Counter()
    try:
        with transaction.atomic():
            _batch_save(batch_build(context, numbers), rows)
    finally:
        if own_connection:
            connection.close()
    return rows


def _context(rows: Counter) -> Context:
    # Unusable ("!" and random text): no hashing, and nobody logs in with it.
    password = make_password(None)
    staff = []
    for k, email in enumerate(STAFF_EMAILS):
        member, created = User.objects.get_or_create(
            email=email,
            defaults={"name": f"Support {k + 1}", "is_staff": True, "password": password},
        )
        if created:
            EmailAddress.objects.create(user=member, email=email, verified=True, primary=True)
            rows[User._meta.db_table] += 1
            rows[EmailAddress._meta.db_table] += 1
        staff.append(member)
    return Context(
        now=timezone.now(),
        plans=Plan.objects.in_bulk(field_name="slug"),
        staff=staff,
        password=password,
        grace=timedelta(days=settings.BILLING_GRACE_DAYS),
    )


def _batch_save(batch: Batch, rows: Counter) -> None:
    """Saves the rows in foreign-key order. The parents' primary keys are taken from
    their sequences first (users and servers get theirs from bulk_create), so a row
    saved later finds its parent's."""

    def save(model, objects) -> None:
        model.objects.bulk_create(objects)
        rows[model._meta.db_table] += len(objects)

    def insert(model, fields, tuples) -> None:
        rows[model._meta.db_table] += _rows_insert(model, fields, tuples)

    def insert_objects(model, objects, exclude=frozenset()) -> None:
        rows[model._meta.db_table] += _objects_insert(model, objects, exclude)

    payments = batch.purchases + batch.renewals
    for payment, pk in zip(payments, _ids_reserve(Payment, len(payments)), strict=True):
        payment.pk = pk
    for ticket, pk in zip(batch.tickets, _ids_reserve(Ticket, len(batch.tickets)), strict=True):
        ticket.pk = pk

    save(User, batch.users)
    insert_objects(EmailAddress, batch.email_addresses)
    insert_objects(Payment, batch.purchases)
    # bulk_create: it encrypts the SSH passwords (EncryptedTextField).
    save(Server, batch.servers)
    insert_objects(Payment, batch.renewals)
    insert_objects(Subscription, batch.subscriptions)
    insert(Deployment, DEPLOYMENT_FIELDS, batch.deployments)
    insert(ServerEvent, SERVER_EVENT_FIELDS, batch.server_events)
    insert_objects(ServerAction, batch.server_actions)
    insert_objects(Domain, batch.domains)
    # A message's trigger rewrites its ticket's search documents, once per message: saved
    # before their tickets (the foreign key is checked at commit) the messages find no
    # ticket to rewrite, and each ticket's own insert trigger reads all of its messages
    # once. The search columns are the trigger's to write.
    insert_objects(TicketMessage, batch.ticket_messages)
    insert_objects(Ticket, batch.tickets, exclude=TICKET_DOCUMENTS)
    audit = [
        (*row[:4], str(row[4].pk) if row[4] is not None else "", *row[5:])
        for row in batch.audit_events
    ]
    insert(AuditEvent, AUDIT_EVENT_FIELDS, audit)

    stacks = [[server.pk for server, _ in batch.server_stacks], [s for _, s in batch.server_stacks]]
    templates = log_templates()
    with connection.cursor() as cursor:
        cursor.execute(
            LOG_LINES_SQL.format(
                lines=DeploymentLogLine._meta.db_table, deployments=Deployment._meta.db_table
            ),
            [*stacks, *map(list, zip(*templates, strict=True))],
        )
        rows[DeploymentLogLine._meta.db_table] += cursor.rowcount
        cursor.execute(
            DEPLOY_EVENTS_SQL.format(
                events=ServerEvent._meta.db_table, deployments=Deployment._meta.db_table
            ),
            [stacks[0]],
        )
        rows[ServerEvent._meta.db_table] += cursor.rowcount


def _objects_insert(model, objects: list, exclude=frozenset()) -> int:
    """Model instances through `_rows_insert`, their values as they stand: every
    concrete field's but `exclude` (and the pk unless set). Unlike bulk_create, no
    field prepares its value (no auto_now, no encryption): only for models whose values
    need none."""
    if not objects:
        return 0
    fields = [
        f
        for f in model._meta.concrete_fields
        if f.name not in exclude and not (f.primary_key and objects[0].pk is None)
    ]
    # A relation's instance (from the cache: no query) stands for its pk.
    names = [f.name if f.is_relation else f.attname for f in fields]
    tuples = [tuple(getattr(obj, name) for name in names) for obj in objects]
    return _rows_insert(model, tuple(f.name for f in fields), tuples)


def _rows_insert(model, fields: tuple[str, ...], tuples: list[tuple]) -> int:
    """INSERT ... SELECT FROM unnest(one array per column): what bulk_create sends on
    PostgreSQL, from tuples of ready values (a model instance standing for its pk)
    instead of a model instance per row, and with the arrays sent in binary (%b), which
    costs psycopg a sixth of quoting each value into text. Returns the number of rows."""
    if not tuples:
        return 0
    columns = [model._meta.get_field(name) for name in fields]
    arrays = [
        [value.pk if isinstance(value, Model) else value for value in column]
        for column in zip(*tuples, strict=True)
    ]
    quote = connection.ops.quote_name
    # Array types without their length (varchar[], not varchar(64)[]): a cast would cut
    # a value that is too long, where the column refuses it. JSON arrives as its text.
    placeholders = [
        "%b::text[]::jsonb[]"
        if isinstance(f, JSONField)
        else f"%b::{f.db_type(connection).split('(')[0]}[]"
        for f in columns
    ]
    sql = "INSERT INTO {} ({}) SELECT * FROM unnest({})".format(  # noqa: S608 (names from models)
        quote(model._meta.db_table),
        ", ".join(quote(f.column) for f in columns),
        ", ".join(placeholders),
    )
    connection.ensure_connection()
    # A plain psycopg cursor on Django's connection (so in its transaction): Django's
    # own binds parameters on the client, as text.
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, arrays)
        return cursor.rowcount


def _ids_reserve(model, count: int) -> list[int]:
    """`count` new primary keys from the table's own sequence."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [model._meta.db_table, model._meta.pk.column, count],
        )
        return [pk for (pk,) in cursor.fetchall()]


def scale_customers_sample(count: int) -> list[dict]:
    """`count` different scale customers, spread evenly over all of them (the same ones
    every time for the same data), each with a running server that has finished
    deployments, a ticket and a payment, and a new logged-in session for each:
    [{"cookie", "email", "server", "deployment", "ticket", "payment"}] (uuids as
    strings; "deployment" is the uuid the deployment pages and the log partial take,
    with the server's). Raises ValueError when there are fewer such customers."""
    finished = [DeploymentStatus.SUCCESS, DeploymentStatus.FAILED]
    eligible = list(
        Server.objects.filter(status=ServerStatus.RUNNING, user__email__regex=EMAIL_PATTERN)
        .filter(
            Exists(Deployment.objects.filter(server=OuterRef("pk"), status__in=finished)),
            Exists(Ticket.objects.filter(user=OuterRef("user_id"))),
            Exists(Payment.objects.filter(user=OuterRef("user_id"))),
        )
        .order_by("user_id")
        .values_list("pk", "user_id", "uuid")
    )
    if count > len(eligible):
        raise ValueError(
            f"{count} customers asked for, {len(eligible)} scale customers have a running "
            "server with deployments, a ticket and a payment (run seed_scale with more)"
        )
    chosen = [eligible[i * len(eligible) // count] for i in range(count)]
    server_ids = [server_id for server_id, _, _ in chosen]
    user_ids = [user_id for _, user_id, _ in chosen]

    def newest(queryset, key: str) -> dict:
        rows = queryset.order_by(key, "-created_at", "-pk").distinct(key).values_list(key, "uuid")
        return dict(rows)

    deployments = newest(
        Deployment.objects.filter(server_id__in=server_ids, status__in=finished), "server_id"
    )
    tickets = newest(Ticket.objects.filter(user_id__in=user_ids), "user_id")
    payments = newest(Payment.objects.filter(user_id__in=user_ids), "user_id")
    users = User.objects.in_bulk(user_ids)
    now = timezone.now()
    sample = []
    for server_id, user_id, server_uuid in chosen:
        user = users[user_id]
        store = SessionStore()
        store[SESSION_KEY] = str(user.pk)
        store[BACKEND_SESSION_KEY] = BACKEND
        store[HASH_SESSION_KEY] = user.get_session_auth_hash()
        store[LOGIN_AT_SESSION_KEY] = now.timestamp()
        store.create()
        sample.append(
            {
                "cookie": store.session_key,
                "email": user.email,
                "server": str(server_uuid),
                "deployment": str(deployments[server_id]),
                "ticket": str(tickets[user_id]),
                "payment": str(payments[user_id]),
            }
        )
    return sample
