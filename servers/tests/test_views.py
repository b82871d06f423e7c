"""The server page and the status partial it polls, and the dashboard's link to it: what
the customer sees of a server in each state, for their own servers only, at a fixed cost
in queries."""

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.tests.factories import UserFactory
from billing.models import Payment
from billing.tests.factories import PaymentFactory
from hosting import tenant
from servers.models import Server, ServerEvent, ServerEventKind
from servers.tests.factories import ServerFactory

pytestmark = pytest.mark.django_db

PASSWORD = "s3cret-root-password"  # ServerFactory's
# session, user, then the server with its plan, payment and events in one query.
# (and the tenant scope set and cleared)
PAGE_QUERIES = 3 + tenant.SCOPE_QUERIES


@pytest.fixture
def customer(client):
    user = UserFactory()
    client.force_login(user)
    return user


def timeline(server, *messages):
    for message in messages:
        ServerEvent.objects.create(server=server, kind=ServerEventKind.RETRYING, message=message)


def page(client, server, suffix=""):
    response = client.get(f"/servers/{server.uuid}/{suffix}")
    assert response.status_code == 200
    return response.content.decode()


def test_server_page_shows_status_plan_region_ip_and_timeline(client, customer):
    server = ServerFactory(user=customer, ip_address="203.0.113.77", region="ams3")
    ServerEvent.objects.create(
        server=server, kind=ServerEventKind.PAYMENT_CONFIRMED, message="Payment of $9.00 received."
    )
    ServerEvent.objects.create(
        server=server, kind=ServerEventKind.READY, message="Log in with ssh deploy@203.0.113.77."
    )

    content = page(client, server)

    assert f"<h1>{server.name}</h1>" in content
    assert '<span class="badge badge-running" data-testid="server-status">Running</span>' in (
        content
    )
    assert "Basic · 1 vCPU, 1 GB memory, 25 GB disk" in content
    assert "<dd>ams3</dd>" in content
    assert '<code data-testid="server-ip">203.0.113.77</code>' in content
    assert "<strong>Payment confirmed</strong> <span>Payment of $9.00 received.</span>" in content
    assert "<strong>Ready</strong> <span>Log in with ssh deploy@203.0.113.77.</span>" in content
    # Oldest first.
    assert content.index("Payment confirmed") < content.index("<strong>Ready</strong>")


@pytest.mark.parametrize("suffix", ["", "status/"])
def test_a_provisioning_server_polls_its_partial(client, customer, suffix):
    server = ServerFactory(user=customer, status=Server.Status.PROVISIONING, ip_address=None)
    content = page(client, server, suffix)
    assert f'hx-get="/servers/{server.uuid}/status/"' in content
    assert 'hx-trigger="every 2s"' in content
    assert 'hx-swap="outerHTML"' in content
    assert "assigned when the server boots" in content


@pytest.mark.parametrize("suffix", ["", "status/"])
def test_a_running_server_stops_polling(client, customer, suffix):
    server = ServerFactory(user=customer)
    content = page(client, server, suffix)
    assert 'data-status="running"' in content
    assert "hx-get=" not in content.split('id="server-status"', 1)[1]
    assert "every 2s" not in content


def test_the_partial_is_only_the_status_section(client, customer):
    server = ServerFactory(user=customer)
    content = page(client, server, "status/")
    assert content.lstrip().startswith('<section id="server-status"')
    assert "<html" not in content


@pytest.mark.parametrize("suffix", ["", "status/"])
def test_another_customers_server_and_an_unknown_uuid_are_404(client, customer, suffix):
    theirs = ServerFactory()
    assert client.get(f"/servers/{theirs.uuid}/{suffix}").status_code == 404
    assert client.get(f"/servers/{uuid.uuid4()}/{suffix}").status_code == 404


@pytest.mark.parametrize("suffix", ["", "status/"])
def test_logged_out_goes_to_login(client, suffix):
    server = ServerFactory()
    response = client.get(f"/servers/{server.uuid}/{suffix}")
    assert response.status_code == 302
    assert response.url == f"/accounts/login/?next=/servers/{server.uuid}/{suffix}"


def _queries(client, url) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


@pytest.mark.parametrize("suffix", ["", "status/"])
@pytest.mark.parametrize("status", [Server.Status.PROVISIONING, Server.Status.FAILED])
def test_page_and_partial_cost_a_pinned_number_of_queries(client, customer, suffix, status):
    payment = PaymentFactory(user=customer)  # the page reads it: no query of its own
    server = ServerFactory(user=customer, payment=payment, status=status)
    url = f"/servers/{server.uuid}/{suffix}"
    timeline(server, "first")
    one = _queries(client, url)
    timeline(server, *(f"step {n}" for n in range(19)))
    twenty = _queries(client, url)
    assert server.events.count() == 20
    assert one == twenty == PAGE_QUERIES


def test_a_failed_server_says_the_payment_was_refunded_and_stops_polling(client, customer):
    payment = PaymentFactory(
        user=customer, status=Payment.Status.REFUNDED, refunded_at=timezone.now()
    )
    server = ServerFactory(
        user=customer, payment=payment, status=Server.Status.FAILED, ip_address=None
    )
    ServerEvent.objects.create(
        server=server, kind=ServerEventKind.FAILED, message="No capacity in nyc3."
    )
    for suffix in ("", "status/"):
        content = page(client, server, suffix)
        assert "We could not build this server" in content
        assert "Your payment of $9.00 was refunded." in content
        assert "No capacity in nyc3." in content
        assert "hx-trigger" not in content


def test_a_failed_server_whose_refund_is_on_its_way_says_so_and_keeps_polling(client, customer):
    payment = PaymentFactory(user=customer)
    server = ServerFactory(user=customer, payment=payment, status=Server.Status.FAILED)
    content = page(client, server)
    assert "Your payment of $9.00 is being refunded." in content
    assert "was refunded" not in content
    # Polls until the refund lands, so the page can say it was refunded.
    assert f'hx-get="/servers/{server.uuid}/status/"' in content
    assert 'hx-trigger="every 2s"' in content


def test_dashboard_links_to_the_server_page(client, customer):
    server = ServerFactory(user=customer)
    response = client.get("/dashboard/")
    assert response.status_code == 200
    content = response.content.decode()
    assert f'<a href="/servers/{server.uuid}/">{server.name}</a>' in content
    assert f'<a class="btn btn-primary" href="/servers/{server.uuid}/">Manage server</a>' in content


def test_the_ssh_password_never_appears(client, customer):
    server = ServerFactory(user=customer)
    assert server.ssh_password == PASSWORD
    for content in (page(client, server), page(client, server, "status/")):
        assert PASSWORD not in content
    assert PASSWORD not in client.get("/dashboard/").content.decode()
