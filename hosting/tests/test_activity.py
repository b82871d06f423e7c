"""The customer's one timeline (/activity/, hosting/activity.py): payments, refunds,
server events, deployments and ticket events, newest first, each linking to its page;
never another customer's rows nor staff's internal notes; paginated by ?page= with one
query for the rows, whatever their number."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.tests.factories import StaffFactory, UserFactory
from billing.models import Payment
from billing.tests.factories import PaymentFactory
from hosting import activity, tenant
from hosting.tests.markup import Page, assert_csp_clean, page_text, unresolved_links
from servers.models import ServerEvent, ServerEventKind
from servers.tests.factories import DeploymentFactory, ServerFactory
from support.tests.factories import TicketFactory, TicketMessageFactory

pytestmark = pytest.mark.django_db

URL = "/activity/"
# Logged in: the session, the user, then the one UNION ALL query for the page's rows.
# (and the tenant scope set and cleared)
ACTIVITY_QUERIES = 3 + tenant.SCOPE_QUERIES


@pytest.fixture
def customer(client):
    user = UserFactory()
    client.force_login(user)
    return user


def ago(minutes: int):
    return timezone.now() - timedelta(minutes=minutes)


def event(server, kind, message, at):
    return ServerEvent.objects.create(server=server, kind=kind, message=message, created_at=at)


def staff_reply(ticket, body="We are on it.", at=None, internal=False):
    return TicketMessageFactory(
        ticket=ticket,
        author=StaffFactory(),
        body=body,
        internal=internal,
        created_at=at or timezone.now(),
    )


def rows(response):
    return response.context["rows"]


def texts(response):
    return [row.text for row in rows(response)]


# -- access ------------------------------------------------------------------------------


def test_activity_requires_login(client):
    response = client.get(URL)

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/activity/"


def test_the_nav_links_to_activity_and_marks_it_current(client, customer):
    page = Page.of(client.get("/dashboard/"))
    assert page.find("a", href=URL) == [{"href": URL}]

    page = Page.of(client.get(URL))
    assert page.find("a", href=URL, **{"aria-current": "page"})


# -- what the rows say and where they lead ------------------------------------------------


def test_every_kind_of_row_appears_with_its_link(client, customer):
    server = ServerFactory(user=customer, name="web-prod")
    paid = PaymentFactory(user=customer, paid_at=ago(90))
    refunded = PaymentFactory(
        user=customer,
        status=Payment.Status.REFUNDED,
        paid_at=ago(80),
        refunded_at=ago(70),
    )
    event(server, ServerEventKind.READY, "The server is ready.", ago(60))
    event(server, ServerEventKind.DOMAIN_ADDED, "shop.example.com", ago(55))
    with_commit = DeploymentFactory(server=server, commit="abc1234def5678", created_at=ago(50))
    without_commit = DeploymentFactory(
        server=server, branch="release", commit="", status="pending", created_at=ago(45)
    )
    ticket = TicketFactory(user=customer, subject="Mail is down", created_at=ago(40))
    staff_reply(ticket, at=ago(30))
    response = client.get(URL)

    assert response.status_code == 200
    html = page_text(response)
    plan = paid.plan.name
    expected = {
        f"/billing/payments/{paid.uuid}/": f"Payment of {paid.amount_display} for {plan} received",
        f"/billing/payments/{refunded.uuid}/": (
            f"Payment of {refunded.amount_display} for {plan} refunded"
        ),
        f"/servers/{server.uuid}/": "The server is ready.",
        f"/servers/{server.uuid}/domains/": "shop.example.com",
        f"/servers/{server.uuid}/deployments/{with_commit.uuid}/": "Deployment of abc1234 started",
        f"/servers/{server.uuid}/deployments/{without_commit.uuid}/": (
            "Deployment of release started"
        ),
        f"/support/tickets/{ticket.uuid}/": "Ticket opened: Mail is down",
    }
    for href, text in expected.items():
        assert f'<a href="{href}">{text}</a>' in html, (href, text)
    assert f'<a href="/support/tickets/{ticket.uuid}/">Support answered: Mail is down</a>' in html
    # A refunded payment was paid first: both facts, each on its own row.
    assert html.count(f'href="/billing/payments/{refunded.uuid}/"') == 2
    # A deployment says how it went.
    assert '<span class="badge badge-success">Succeeded</span>' in html
    assert '<span class="badge badge-pending">Pending</span>' in html
    assert "Ready · web-prod" in html
    assert len(rows(response)) == 9
    page = Page.of(response)
    assert unresolved_links(page, URL) == []
    assert_csp_clean(response)


def test_server_events_that_repeat_another_row_are_left_out(client, customer):
    """The ticket, deployment and payment rows say these (with a better link); the server
    page's own timeline still has them."""
    server = ServerFactory(user=customer)
    ticket = TicketFactory(user=customer, server=server, subject="Disk full")
    staff_reply(ticket)
    deployment = DeploymentFactory(server=server, commit="abc1234")
    for kind, message in [
        (ServerEventKind.TICKET_OPENED, "“Disk full”"),
        (ServerEventKind.TICKET_ANSWERED, "“Disk full”"),
        (ServerEventKind.DEPLOYED, "Deployed abc1234 from main."),
        (ServerEventKind.DEPLOY_FAILED, "The build failed."),
        (ServerEventKind.PAYMENT_CONFIRMED, "Payment of $9.00 for Basic received."),
        (ServerEventKind.REFUND_ISSUED, "$9.00 refunded."),
    ]:
        event(server, kind, message, timezone.now())

    response = client.get(URL)

    assert sorted(texts(response)) == [
        "Deployment of abc1234 started",
        "Support answered: Disk full",
        "Ticket opened: Disk full",
    ]
    assert f"/servers/{server.uuid}/deployments/{deployment.uuid}/" in page_text(response)


def test_rows_are_newest_first(client, customer):
    server = ServerFactory(user=customer)
    event(server, ServerEventKind.STOPPED, "second", ago(20))
    TicketFactory(user=customer, subject="newest", created_at=ago(1))
    event(server, ServerEventKind.STARTED, "first", ago(30))
    DeploymentFactory(server=server, branch="third", created_at=ago(10))

    response = client.get(URL)

    assert texts(response) == [
        "Ticket opened: newest",
        "Deployment of third started",
        "second",
        "first",
    ]
    at = [row.at for row in rows(response)]
    assert at == sorted(at, reverse=True)


def test_a_subject_with_markup_is_shown_as_text(client, customer):
    ticket = TicketFactory(user=customer, subject="<script>alert(1)</script>")
    staff_reply(ticket)

    response = client.get(URL)

    html = page_text(response)
    assert "<script>alert(1)</script>" not in html
    assert html.count("Ticket opened: &lt;script&gt;alert(1)&lt;/script&gt;") == 1
    assert html.count("Support answered: &lt;script&gt;alert(1)&lt;/script&gt;") == 1
    assert_csp_clean(response)


def test_nothing_yet_shows_the_empty_state(client, customer):
    response = client.get(URL)

    assert response.status_code == 200
    html = page_text(response)
    assert "<h1" in html and "Activity</h1>" in html
    assert 'data-testid="activity-empty"' in html
    assert "will show up here" in html
    assert "Older" not in html and "Newer" not in html
    assert_csp_clean(response)


# -- whose rows ----------------------------------------------------------------------------


def test_another_customers_rows_never_appear(client, customer):
    other = UserFactory()
    server = ServerFactory(user=other, name="their-server")
    PaymentFactory(user=other, status=Payment.Status.REFUNDED, refunded_at=timezone.now())
    event(server, ServerEventKind.READY, "their event", timezone.now())
    DeploymentFactory(server=server, branch="their-branch")
    ticket = TicketFactory(user=other, subject="their ticket")
    staff_reply(ticket, body="their answer")
    mine = TicketFactory(user=customer, subject="my ticket")

    response = client.get(URL)

    assert texts(response) == ["Ticket opened: my ticket"]
    html = page_text(response)
    for theirs in ("their-server", "their event", "their-branch", "their ticket", str(ticket.uuid)):
        assert theirs not in html
    assert f"/support/tickets/{mine.uuid}/" in html
    # And the other customer sees theirs, not mine.
    client.force_login(other)
    assert "Ticket opened: my ticket" not in texts(client.get(URL))
    assert len(rows(client.get(URL))) == 6


def test_internal_notes_and_the_customers_own_replies_are_not_support_answers(client, customer):
    ticket = TicketFactory(user=customer, subject="Slow site")
    staff_reply(ticket, body="Secret: looks like their fault", internal=True)
    TicketMessageFactory(ticket=ticket, author=customer, body="Any news?")

    response = client.get(URL)

    assert texts(response) == ["Ticket opened: Slow site"]
    assert "Secret" not in page_text(response)

    staff_reply(ticket, body="Fixed it.")
    assert texts(client.get(URL)) == ["Support answered: Slow site", "Ticket opened: Slow site"]


# -- pages ---------------------------------------------------------------------------------


def test_pages_split_the_rows_with_older_and_newer_links(client, customer):
    server = ServerFactory(user=customer)
    # Ten share one instant: the tie-break keeps them in one order across pages.
    same = ago(100)
    for n in range(60):
        event(server, ServerEventKind.REBOOTED, f"reboot {n}", same if n < 10 else ago(n))

    first = client.get(URL)
    second = client.get(URL, {"page": "2"})

    assert len(rows(first)) == activity.PAGE_SIZE == 50
    assert len(rows(second)) == 10
    seen = texts(first) + texts(second)
    assert sorted(seen) == sorted(f"reboot {n}" for n in range(60))
    assert texts(first)[0] == "reboot 10"
    first_page = Page.of(first)
    assert first_page.find("a", href="/activity/?page=2", rel="next")
    assert "Newer" not in page_text(first)
    second_page = Page.of(second)
    assert second_page.find("a", href="/activity/", rel="prev")
    assert "Older" not in page_text(second)


def test_exactly_one_page_of_rows_has_no_older_link(client, customer):
    server = ServerFactory(user=customer)
    ServerEvent.objects.bulk_create(
        ServerEvent(server=server, kind=ServerEventKind.REBOOTED, message=f"{n}", created_at=ago(n))
        for n in range(activity.PAGE_SIZE)
    )

    response = client.get(URL)

    assert len(rows(response)) == 50
    assert "Older" not in page_text(response)


def test_page_three_links_back_to_page_two(client, customer):
    server = ServerFactory(user=customer)
    ServerEvent.objects.bulk_create(
        ServerEvent(server=server, kind=ServerEventKind.REBOOTED, message=f"{n}", created_at=ago(n))
        for n in range(120)
    )

    response = client.get(URL, {"page": "3"})

    assert texts(response) == [str(n) for n in range(100, 120)]
    assert Page.of(response).find("a", href="/activity/?page=2", rel="prev")


@pytest.mark.parametrize(
    "value",
    ["", "abc", "0", "-1", "1.5", "2e3", " 2", "٢", "10001", "9" * 40, "1" * 400, "\x00"],
)
def test_a_bad_or_huge_page_number_is_page_one(client, customer, value):
    TicketFactory(user=customer, subject="Only ticket")

    response = client.get(URL, {"page": value})

    assert response.status_code == 200
    assert response.context["page"] == 1
    assert texts(response) == ["Ticket opened: Only ticket"]


def test_a_page_past_the_end_is_empty_and_leads_back(client, customer):
    TicketFactory(user=customer, subject="Only ticket")

    response = client.get(URL, {"page": str(activity.MAX_PAGE)})

    assert response.status_code == 200
    assert rows(response) == []
    html = page_text(response)
    assert "Nothing on this page" in html
    assert f'href="/activity/?page={activity.MAX_PAGE - 1}"' in html


@pytest.mark.parametrize(
    "value, expected",
    [("1", 1), ("2", 2), ("0002", 2), ("10000", 10_000), ("10001", 1), (None, 1), ("x", 1)],
)
def test_page_number(value, expected):
    assert activity.page_number(value) == expected


# -- the cost of the page --------------------------------------------------------------------


def two_hundred_rows(user):
    """200 rows of every kind: 20 refunded payments (paid and refunded: 40 rows), and 40
    server events, deployments, tickets and staff replies each; plus what must not show:
    internal notes, the customer's replies, mirrored events, another customer's rows."""
    server = ServerFactory(user=user)
    for n in range(20):
        PaymentFactory(
            user=user, status=Payment.Status.REFUNDED, paid_at=ago(n + 1), refunded_at=ago(n)
        )
    ServerEvent.objects.bulk_create(
        ServerEvent(server=server, kind=kind, message=f"event {n}", created_at=ago(n))
        for n in range(40)
        for kind in [ServerEventKind.REBOOTED, ServerEventKind.DEPLOYED]
    )
    DeploymentFactory.create_batch(40, server=server)
    staff = StaffFactory()
    for n in range(40):
        ticket = TicketFactory(user=user, created_at=ago(n))
        TicketMessageFactory(ticket=ticket, author=staff, created_at=ago(n))
        TicketMessageFactory(ticket=ticket, author=staff, internal=True)
        TicketMessageFactory(ticket=ticket, author=user)
    other = ServerFactory()
    event(other, ServerEventKind.READY, "not mine", timezone.now())


@pytest.mark.parametrize("size", [0, 200])
def test_the_query_count_is_pinned(client, customer, django_assert_num_queries, size):
    if size:
        two_hundred_rows(customer)

    with django_assert_num_queries(ACTIVITY_QUERIES):
        first = client.get(URL)
    with django_assert_num_queries(ACTIVITY_QUERIES):
        last = client.get(URL, {"page": "4"})

    assert len(rows(first)) == min(size, 50)
    assert len(rows(last)) == min(max(size - 150, 0), 50)
    if size:
        assert first.context["older_page"] == 2
        assert last.context["older_page"] is None
        shown = sum(len(rows(client.get(URL, {"page": str(n)}))) for n in range(1, 5))
        assert shown == 200


def test_the_rows_are_one_union_all_query_with_a_limit_and_no_count(client, customer):
    TicketFactory(user=customer)

    with CaptureQueriesContext(connection) as queries:
        client.get(URL, {"page": "2"})

    (rows_query,) = [q["sql"] for q in queries if "UNION ALL" in q["sql"]]
    assert rows_query.count("UNION ALL") == 5
    assert rows_query.rstrip().endswith("LIMIT 51 OFFSET 50")
    assert "COUNT(" not in rows_query.upper()
