"""The scale data (`manage.py seed_scale`, hosting/scale_data.py): what it makes, that a
second run adds nothing and a larger one only the difference, and the logged-in sample
the benchmark drives."""

import io
from datetime import timedelta

import pytest
from allauth.account.models import EmailAddress
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.db.models import F
from django.utils import timezone

from accounts.models import AuditEvent, User
from billing.models import Payment, PaymentKind, Plan, Subscription
from hosting.scale_data import scale_customers_sample, scale_numbers, seed_scale
from hosting.scale_shapes import STAFF_EMAILS, Context, batch_build
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

pytestmark = pytest.mark.django_db

MODELS = [
    User,
    EmailAddress,
    Payment,
    Server,
    Subscription,
    Deployment,
    DeploymentLogLine,
    ServerEvent,
    ServerAction,
    Domain,
    Ticket,
    TicketMessage,
    AuditEvent,
]


def table_counts() -> dict[str, int]:
    return {model._meta.db_table: model.objects.count() for model in MODELS}


def constraints_checked() -> None:
    """The foreign keys are checked at commit, which a test never reaches: check now."""
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")


def test_twenty_customers_fill_every_table_with_servers_in_every_state():
    report = seed_scale(20)
    constraints_checked()

    assert (report.customers, report.added) == (20, 20)
    counts = table_counts()
    # The report says what was made: here, everything there is.
    assert dict(report.rows) == counts
    assert all(counts.values()), counts
    assert scale_numbers() == set(range(20))
    assert set(Server.objects.values_list("status", flat=True)) == set(ServerStatus.values)
    # About 20 deployments per server that ever ran, with about 10 log lines each.
    ran = Server.objects.exclude(status__in=[ServerStatus.PROVISIONING, ServerStatus.FAILED])
    assert 15 * ran.count() <= counts["servers_deployment"] <= 25 * ran.count()
    assert 6 * counts["servers_deployment"] <= counts["servers_deploymentlogline"]
    assert counts["servers_deploymentlogline"] <= 11 * counts["servers_deployment"]
    statuses = set(Deployment.objects.values_list("status", flat=True))
    assert {DeploymentStatus.SUCCESS, DeploymentStatus.FAILED} <= statuses


def test_rows_follow_the_app_flows():
    seed_scale(20)

    # Every server was bought by a paid purchase of its owner, and has its subscription.
    servers = Server.objects.select_related("payment")
    assert all(s.payment.kind == PaymentKind.PURCHASE for s in servers)
    assert all(s.payment.user_id == s.user_id and s.payment.paid_at for s in servers)
    assert Subscription.objects.count() == Server.objects.count()
    # Renewals point at a server of the same customer.
    renewals = Payment.objects.filter(kind=PaymentKind.RENEWAL)
    assert renewals.exists()
    assert not renewals.exclude(renews__user_id=F("user_id")).exists()
    # A server that could not be built had its payment refunded.
    failed = Server.objects.filter(status=ServerStatus.FAILED).select_related("payment")
    assert failed and all(s.payment.status == Payment.Status.REFUNDED for s in failed)
    # The suspended customer sees the past-due banner.
    assert User.objects.filter(payment_overdue_since__isnull=False).exists()
    # Rows belong to the customer whose server they are about.
    assert not Deployment.objects.exclude(user_id=F("server__user_id")).exists()
    assert not Domain.objects.exclude(user_id=F("server__user_id")).exists()
    # The search trigger saw every ticket's replies.
    replied = Ticket.objects.filter(messages__internal=False).distinct()
    assert replied and not replied.filter(search_document__isnull=True).exists()
    # Staff answer the tickets; customers cannot log in by form.
    assert set(User.objects.filter(is_staff=True).values_list("email", flat=True)) == set(
        STAFF_EMAILS
    )
    assert not any(user.has_usable_password() for user in User.objects.all())
    assert EmailAddress.objects.filter(verified=True, primary=True).count() == User.objects.count()


def test_a_second_run_adds_nothing_and_a_larger_one_the_difference():
    seed_scale(20)
    before = table_counts()

    again = seed_scale(20)
    assert (again.customers, again.added, sum(again.rows.values())) == (20, 0, 0)
    assert table_counts() == before

    more = seed_scale(30, batch=4)
    constraints_checked()
    assert (more.customers, more.added) == (30, 10)
    assert scale_numbers() == set(range(30))
    after = table_counts()
    assert {table: after[table] - before[table] for table in after} == dict(more.rows)


@pytest.mark.django_db(transaction=True)
def test_batches_commit_side_by_side_on_their_own_connections():
    """Outside a transaction the batches run in threads, each committed on its own
    connection: the foreign keys (checked at commit) hold, and nothing is counted twice
    or lost."""
    report = seed_scale(30, batch=7, workers=3)

    assert (report.customers, report.added) == (30, 30)
    assert scale_numbers() == set(range(30))
    assert dict(report.rows) == table_counts()


def test_a_customer_is_the_same_wherever_it_is_made():
    context = Context(
        now=timezone.now(),
        plans=Plan.objects.in_bulk(field_name="slug"),
        staff=[User(email=email) for email in STAFF_EMAILS],
        password="!",
        grace=timedelta(days=settings.BILLING_GRACE_DAYS),
    )

    def servers(numbers):
        batch = batch_build(context, numbers)
        return [(s.user.email, s.uuid, s.status, s.name) for s in batch.servers]

    alone = servers([7])
    assert alone == [row for row in servers(range(5, 10)) if row[0] == "scale7@example.com"]


def test_the_sample_is_spread_logged_in_and_points_at_the_customers_own_rows(client):
    seed_scale(40)

    sample = scale_customers_sample(5)

    assert len({row["email"] for row in sample}) == 5
    assert [row["email"] for row in scale_customers_sample(5)] == [r["email"] for r in sample]
    numbers = sorted(int(row["email"][5:].split("@")[0]) for row in sample)
    assert numbers[-1] - numbers[0] >= 20  # spread over all of them, not the first five
    for row in sample:
        server = Server.objects.get(uuid=row["server"])
        assert server.status == ServerStatus.RUNNING and server.user.email == row["email"]
        deployment = Deployment.objects.get(uuid=row["deployment"])
        assert deployment.server == server and deployment.lines.exists()
        assert Ticket.objects.get(uuid=row["ticket"]).user == server.user
        assert Payment.objects.get(uuid=row["payment"]).user == server.user

        client.cookies[settings.SESSION_COOKIE_NAME] = row["cookie"]
        log = client.get(f"/servers/{row['server']}/deployments/{row['deployment']}/log/")
        assert log.status_code == 200
        assert b"HEAD is now at" in log.content
        assert client.get(f"/support/tickets/{row['ticket']}/").status_code == 200


def test_the_sample_says_when_there_are_too_few_customers():
    seed_scale(3)
    with pytest.raises(ValueError, match="run seed_scale with more"):
        scale_customers_sample(50)


def test_the_command_prints_what_it_made():
    out = io.StringIO()
    call_command("seed_scale", "--customers", "4", stdout=out)
    assert "Scale data: 4 customers (4 added)" in out.getvalue()
    assert "servers_deployment: " in out.getvalue()
