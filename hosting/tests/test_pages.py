"""The public pages, the dashboard and the error pages: content, markup rules, query counts."""

from html.parser import HTMLParser

import pytest
from django.contrib import messages
from django.contrib.auth.models import AnonymousUser
from django.contrib.messages.storage import default_storage
from django.contrib.sessions.backends.db import SessionStore
from django.template.loader import render_to_string
from django.test import Client

from accounts.tests.factories import StaffFactory, UserFactory
from billing.models import Plan
from hosting import views
from hosting.templatetags.money import cents
from servers.tests.factories import DeploymentFactory, DomainFactory, ServerFactory

SEEDED_SLUGS = ["basic", "pro", "premium"]

# An anonymous visitor costs one query: the plans. No session cookie, so no session row.
LANDING_QUERIES = 1
# Logged in: session, user, then the dashboard selector's server, deployments, domains.
DASHBOARD_QUERIES = 5


class MarkupAudit(HTMLParser):
    """Collects what the Content-Security-Policy would block: inline scripts, <style>
    elements, style= and on*= attributes."""

    def __init__(self):
        super().__init__()
        self.problems = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        names = [name for name, _ in attrs]
        if tag == "script":
            self._in_script = True
            if "src" not in names:
                self.problems.append("<script> without src")
        if tag == "style":
            self.problems.append("<style> element")
        for name in names:
            if name == "style":
                self.problems.append(f"style= on <{tag}>")
            if name.startswith("on"):
                self.problems.append(f"{name}= on <{tag}>")

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.problems.append(f"inline script: {data.strip()[:40]!r}")


def assert_csp_clean(response):
    audit = MarkupAudit()
    audit.feed(response.content.decode())
    assert audit.problems == []


def page_text(response) -> str:
    return response.content.decode()


def seeded_plans():
    return list(Plan.objects.filter(slug__in=SEEDED_SLUGS).order_by("sort_order"))


# ---- landing and pricing ----


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/", "/pricing/"])
def test_public_page_shows_every_seeded_plan_with_its_price(client, url):
    plans = seeded_plans()
    assert [plan.slug for plan in plans] == SEEDED_SLUGS

    response = client.get(url)

    assert response.status_code == 200
    html = page_text(response)
    assert html.count('data-testid="plan-card"') == 3
    for plan in plans:
        assert plan.name in html
        assert f"{cents(plan.price_cents, plan.currency)} <span" in html
        assert f'action="/billing/checkout/{plan.slug}/"' in html
        assert f"Choose {plan.name}" in html
    assert "$9.00" in html  # basic, as seeded


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/", "/pricing/"])
def test_inactive_plan_is_not_shown(client, url):
    Plan.objects.filter(slug="pro").update(is_active=False)

    html = page_text(client.get(url))

    assert html.count('data-testid="plan-card"') == 2
    assert "Choose Pro" not in html
    assert "/billing/checkout/pro/" not in html


@pytest.mark.django_db
def test_pricing_page_has_heading_and_faq(client):
    html = page_text(client.get("/pricing/"))

    assert "<h1>Pricing</h1>" in html
    assert "Monthly" in html
    assert "One server per account" in html
    assert "refunded" in html


@pytest.mark.django_db
def test_landing_query_count_is_pinned(client, django_assert_num_queries):
    with django_assert_num_queries(LANDING_QUERIES):
        response = client.get("/")
    assert response.status_code == 200


@pytest.mark.django_db
def test_anonymous_nav_offers_login_and_signup(client):
    html = page_text(client.get("/"))

    assert 'href="/accounts/login/"' in html
    assert 'href="/accounts/signup/"' in html
    assert "Log out" not in html
    assert 'href="/admin/"' not in html


@pytest.mark.django_db
def test_logged_in_nav_has_dashboard_account_and_logout_form(client):
    client.force_login(UserFactory())

    html = page_text(client.get("/"))

    assert 'href="/dashboard/"' in html
    assert 'href="/accounts/"' in html
    assert 'method="post" action="/accounts/logout/"' in html
    assert 'href="/accounts/login/"' not in html
    assert 'href="/admin/"' not in html


@pytest.mark.django_db
def test_staff_nav_links_to_admin(client):
    client.force_login(StaffFactory())

    assert 'href="/admin/"' in page_text(client.get("/"))


@pytest.mark.django_db
def test_test_mode_banner_follows_the_simulators(client, settings):
    settings.STRIPE_SECRET_KEY = ""
    assert "Test mode:" in page_text(client.get("/"))

    settings.STRIPE_SECRET_KEY = "sk_test_x"
    settings.DIGITALOCEAN_TOKEN = "dop_v1_x"
    assert "Test mode:" not in page_text(client.get("/"))


@pytest.mark.django_db
def test_messages_are_announced_by_level(rf):
    request = rf.get("/")
    request.user = AnonymousUser()
    request.session = SessionStore()
    request._messages = default_storage(request)
    messages.success(request, "Server started.")
    messages.error(request, "Deployment failed.")

    html = render_to_string("hosting/pricing.html", {"plans": []}, request=request)

    assert '<li class="message message-success" role="status">Server started.</li>' in html
    assert '<li class="message message-error" role="alert">Deployment failed.</li>' in html


# ---- the cents filter ----


@pytest.mark.parametrize(
    ("value", "currency", "expected"),
    [
        (900, "usd", "$9.00"),
        (2900, "USD", "$29.00"),
        (123456, "usd", "$1,234.56"),
        (5, "usd", "$0.05"),
        (900, "eur", "9.00 EUR"),
        (123456, "gbp", "1,234.56 GBP"),
        (None, "usd", ""),
    ],
)
def test_cents_filter(value, currency, expected):
    assert cents(value, currency) == expected


def test_cents_filter_defaults_to_usd():
    assert cents(900) == "$9.00"


# ---- dashboard ----


@pytest.mark.django_db
def test_dashboard_requires_login(client):
    response = client.get("/dashboard/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


@pytest.mark.django_db
def test_dashboard_without_server_shows_empty_state_and_plans(client):
    client.force_login(UserFactory())

    response = client.get("/dashboard/")

    assert response.status_code == 200
    html = page_text(response)
    assert "You don't have a server yet" in html
    assert html.count('data-testid="plan-card"') == 3
    assert_csp_clean(response)


@pytest.mark.django_db
def test_dashboard_ignores_an_ended_server(client):
    server = ServerFactory(status="deleted")
    client.force_login(server.user)

    html = page_text(client.get("/dashboard/"))

    assert "You don't have a server yet" in html
    assert server.name not in html


@pytest.mark.django_db
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


@pytest.mark.django_db
def test_dashboard_server_without_ip_or_history_shows_placeholders(client):
    server = ServerFactory(status="provisioning", ip_address=None)
    client.force_login(server.user)

    html = page_text(client.get("/dashboard/"))

    assert '<span class="badge badge-provisioning">Provisioning</span>' in html
    assert "assigning…" in html
    assert "No deployments yet" in html
    assert "No domains yet" in html


@pytest.mark.django_db
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


# ---- error pages ----


@pytest.mark.django_db
def test_unknown_path_gets_the_styled_404(client, settings):
    settings.DEBUG = False

    response = client.get("/no-such-page/")

    assert response.status_code == 404
    html = page_text(response)
    assert "Page not found" in html
    assert 'class="brand"' in html
    assert 'href="/pricing/"' in html
    assert "/static/css/site.css" in html
    assert_csp_clean(response)


@pytest.mark.django_db
@pytest.mark.urls("hosting.tests.urls_boom")
def test_server_error_is_styled_and_touches_no_database(django_assert_num_queries):
    client = Client(raise_request_exception=False)

    with django_assert_num_queries(0):
        response = client.get("/boom/")

    assert response.status_code == 500
    html = page_text(response)
    assert "Something went wrong" in html
    assert 'class="brand"' in html
    assert "/static/css/site.css" in html
    assert "Traceback" not in html
    assert "RuntimeError" not in html
    assert_csp_clean(response)


@pytest.mark.django_db
@pytest.mark.urls("hosting.tests.urls_boom")
def test_server_error_nav_is_static_for_a_logged_in_user():
    client = Client(raise_request_exception=False)
    user = UserFactory()
    client.force_login(user)

    response = client.get("/boom/")

    assert response.status_code == 500
    html = page_text(response)
    assert "Log out" not in html
    assert user.email not in html
    assert 'href="/dashboard/"' in html


@pytest.mark.django_db
def test_csrf_failure_gets_the_styled_403_with_a_hint():
    client = Client(enforce_csrf_checks=True)

    response = client.post("/pricing/")

    assert response.status_code == 403
    html = page_text(response)
    assert "Access denied" in html
    assert "could not be verified" in html
    assert_csp_clean(response)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("handler", "status", "heading"),
    [
        ("bad_request", 400, "Bad request"),
        ("permission_denied", 403, "Access denied"),
    ],
)
def test_other_error_handlers_are_styled(rf, handler, status, heading):
    request = rf.get("/")
    request.user = AnonymousUser()
    response = getattr(views, handler)(request)

    assert response.status_code == status
    html = page_text(response)
    assert heading in html
    assert "could not be verified" not in html
    assert_csp_clean(response)


# ---- markup rules ----


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/", "/pricing/", "/no-such-page/"])
def test_public_pages_have_no_inline_script_or_style(client, url):
    assert_csp_clean(client.get(url))


@pytest.mark.django_db
def test_logged_in_pages_have_no_inline_script_or_style(client):
    server = ServerFactory()
    DeploymentFactory(server=server)
    client.force_login(server.user)

    for url in ["/", "/pricing/", "/dashboard/"]:
        assert_csp_clean(client.get(url))


def test_markup_audit_catches_what_the_csp_blocks():
    audit = MarkupAudit()
    audit.feed(
        '<script>alert(1)</script><script src="/x.js"></script><p style="color:red">'
        '<button onclick="x()">x</button><style>p{}</style>'
    )
    assert len(audit.problems) == 5


@pytest.mark.django_db
def test_dashboard_says_when_the_last_server_could_not_be_built(client):
    server = ServerFactory(status="failed", name="basic-0badf00d")
    client.force_login(server.user)

    html = page_text(client.get("/dashboard/"))

    assert "We could not build your server basic-0badf00d" in html
    assert f'href="/servers/{server.uuid}/"' in html
    assert html.count('data-testid="plan-card"') == 3  # and they may buy again


@pytest.mark.django_db
def test_dashboard_says_nothing_of_an_older_failure_once_replaced(client):
    failed = ServerFactory(status="failed", name="basic-0badf00d")
    ServerFactory(user=failed.user, status="deleted")
    client.force_login(failed.user)

    assert "could not build" not in page_text(client.get("/dashboard/"))
