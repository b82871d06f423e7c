"""The dashboard (servers/views.py `dashboard`): the customer's server with its recent
deployments and domains, or the plans to buy one; CSP-clean, every link leads somewhere,
and a fixed number of queries."""

import pytest

from accounts.tests.factories import UserFactory
from hosting import tenant
from hosting.tests.markup import Page, assert_csp_clean, page_text, unresolved_links
from servers.tests.factories import DeploymentFactory, DomainFactory, ServerFactory

pytestmark = pytest.mark.django_db

# Logged in: session, user, then the dashboard's one query (servers.selectors.DASHBOARD_SQL).
# (and the tenant scope set and cleared)
DASHBOARD_QUERIES = 3 + tenant.SCOPE_QUERIES


def test_dashboard_requires_login(client):
    response = client.get("/dashboard/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_dashboard_without_server_shows_empty_state_and_plans(client):
    client.force_login(UserFactory())

    response = client.get("/dashboard/")

    assert response.status_code == 200
    html = page_text(response)
    assert "You don't have a server yet" in html
    assert html.count('data-testid="plan-card"') == 3
    assert_csp_clean(response)


def test_dashboard_ignores_an_ended_server(client):
    server = ServerFactory(status="deleted")
    client.force_login(server.user)

    html = page_text(client.get("/dashboard/"))

    assert "You don't have a server yet" in html
    assert server.name not in html


def test_dashboard_with_server_shows_it_with_deployments_and_domains(client):
    server = ServerFactory(name="web-prod", ip_address="203.0.113.7")
    DeploymentFactory(server=server, git_url="https://github.com/acme/shop.git", branch="release")
    DomainFactory(server=server, name="shop.example.com", verification_status="verified")
    client.force_login(server.user)

    response = client.get("/dashboard/")

    assert response.status_code == 200
    html = page_text(response)
    assert "web-prod" in html
    assert '<span class="badge badge-running">Running</span>' in html
    assert server.plan.name in html
    assert "203.0.113.7" in html
    assert f'href="/servers/{server.uuid}/"' in html
    assert "https://github.com/acme/shop.git" in html
    assert "release" in html
    assert '<span class="badge badge-success">Succeeded</span>' in html
    assert "shop.example.com" in html
    assert '<span class="badge badge-verified">Verified</span>' in html
    assert "plan-card" not in html
    assert_csp_clean(response)


def test_dashboard_server_without_ip_or_history_shows_placeholders(client):
    server = ServerFactory(status="provisioning", ip_address=None)
    client.force_login(server.user)

    html = page_text(client.get("/dashboard/"))

    assert '<span class="badge badge-provisioning">Provisioning</span>' in html
    assert "assigning…" in html
    assert "No deployments yet" in html
    assert "No domains yet" in html


@pytest.mark.parametrize(("deployments", "domains"), [(0, 0), (1, 1), (5, 3), (8, 6)])
def test_dashboard_query_count_is_pinned(client, django_assert_num_queries, deployments, domains):
    server = ServerFactory()
    DeploymentFactory.create_batch(deployments, server=server)
    DomainFactory.create_batch(domains, server=server)
    client.force_login(server.user)

    with django_assert_num_queries(DASHBOARD_QUERIES):
        response = client.get("/dashboard/")

    assert response.status_code == 200
    assert page_text(response).count("<tr>") == min(deployments, 5) + domains + (
        (deployments > 0) + (domains > 0)  # header rows
    )


def test_dashboard_says_when_the_last_server_could_not_be_built(client):
    server = ServerFactory(status="failed", name="basic-0badf00d")
    client.force_login(server.user)

    html = page_text(client.get("/dashboard/"))

    assert "We could not build your server basic-0badf00d" in html
    assert f'href="/servers/{server.uuid}/"' in html
    assert html.count('data-testid="plan-card"') == 3  # and they may buy again


def test_dashboard_says_nothing_of_an_older_failure_once_replaced(client):
    failed = ServerFactory(status="failed", name="basic-0badf00d")
    ServerFactory(user=failed.user, status="deleted")
    client.force_login(failed.user)

    assert "could not build" not in page_text(client.get("/dashboard/"))


def dashboard_links_lead_somewhere(client) -> list[str]:
    response = client.get("/dashboard/")
    assert response.status_code == 200
    page = Page.of(response)
    assert unresolved_links(page, "/dashboard/") == []
    return page.links("/dashboard/")


def test_every_dashboard_link_leads_to_a_route_for_a_customer_with_a_server(client):
    server = ServerFactory()
    DeploymentFactory.create_batch(2, server=server)
    DomainFactory(server=server)
    client.force_login(server.user)

    links = dashboard_links_lead_somewhere(client)

    assert f"/servers/{server.uuid}/" in links
    assert f"/servers/{server.uuid}/deployments/" in links
    assert f"/servers/{server.uuid}/domains/" in links


def test_every_dashboard_link_leads_to_a_route_for_a_server_without_history(client):
    server = ServerFactory(status="provisioning", ip_address=None)
    client.force_login(server.user)

    assert f"/servers/{server.uuid}/" in dashboard_links_lead_somewhere(client)


@pytest.mark.parametrize("last_server", [None, "failed"])
def test_every_dashboard_link_leads_to_a_route_for_a_customer_without_a_server(client, last_server):
    customer = ServerFactory(status=last_server).user if last_server else UserFactory()
    client.force_login(customer)

    links = dashboard_links_lead_somewhere(client)

    assert "/billing/checkout/basic/" in links  # the plans' forms are checked too
