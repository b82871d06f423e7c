"""The public pages and the error pages: content, markup rules, links, query counts, and
the static files they load as production serves them."""

import re

import pytest
from django.contrib import messages
from django.contrib.auth.models import AnonymousUser
from django.contrib.messages.storage import default_storage
from django.contrib.sessions.backends.db import SessionStore
from django.core.management import call_command
from django.template.loader import render_to_string
from django.test import Client

from accounts.tests.factories import StaffFactory, UserFactory
from billing.models import Plan
from hosting import settings as production_settings
from hosting import tenant, views
from hosting.templatetags.money import cents
from hosting.tests.markup import Page, assert_csp_clean, page_text, unresolved_links
from servers.tests.factories import DeploymentFactory, ServerFactory

SEEDED_SLUGS = ["basic", "pro", "premium"]

# An anonymous visitor costs one query, the plans (no session cookie, so no session row),
# and the tenant scope set and cleared.
LANDING_QUERIES = 1 + tenant.SCOPE_QUERIES


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

    # The error page itself reads nothing: only the request's tenant scope is set and cleared.
    with django_assert_num_queries(tenant.SCOPE_QUERIES):
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


def test_markup_check_catches_what_the_csp_blocks():
    page = Page(
        '<script>alert(1)</script><script src="/x.js"></script><p style="color:red">'
        '<button onclick="x()">x</button><style>p{}</style>'
    )
    assert len(page.csp_problems) == 5


# ---- links ----


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/", "/pricing/"])
@pytest.mark.parametrize("visitor", ["anonymous", "customer", "staff"])
def test_every_link_on_the_public_pages_leads_to_a_route(client, url, visitor):
    if visitor != "anonymous":
        client.force_login(StaffFactory() if visitor == "staff" else UserFactory())

    response = client.get(url)

    assert response.status_code == 200
    page = Page.of(response)
    links = page.links(url)
    assert "/billing/checkout/basic/" in links and "/pricing/" in links  # the check sees them
    assert unresolved_links(page, url) == []


def test_the_link_check_finds_dead_links_and_skips_what_is_not_ours():
    page = Page(
        '<a href="/no-such-page/">x</a><a href="https://example.com/nope/">x</a>'
        '<a href="#plans">x</a><a href="mailto:a@example.com">x</a>'
        '<link rel="stylesheet" href="/static/css/site.css"><form method="post"></form>'
        '<form action="/nowhere/"></form><a href="relative/">x</a>'
    )
    assert page.links("/pricing/") == [
        "/no-such-page/",
        "/pricing/relative/",
        "/pricing/",  # a form without action posts to its own page
        "/nowhere/",
    ]
    dead = unresolved_links(page, "/pricing/")
    assert dead == ["/no-such-page/", "/pricing/relative/", "/nowhere/"]


# ---- static files as production serves them ----


@pytest.mark.django_db
def test_collectstatic_gives_hashed_compressed_files_that_whitenoise_serves(settings, tmp_path):
    # The root conftest switches every test to plain storage; this one puts back the
    # production storage (hosting/settings.py) and collects into a fresh STATIC_ROOT.
    settings.STORAGES = production_settings.STORAGES
    settings.STATIC_ROOT = tmp_path / "staticfiles"
    call_command("collectstatic", "--noinput", verbosity=0)

    # A new client loads the middleware afresh: whitenoise indexes STATIC_ROOT then.
    client = Client()
    page = Page.of(client.get("/"))
    [stylesheet] = [link["href"] for link in page.find("link", rel="stylesheet")]
    hashed = re.fullmatch(r"/static/css/site\.([0-9a-f]{12})\.css", stylesheet)
    assert hashed, stylesheet

    response = client.get(stylesheet)
    assert response.status_code == 200
    served = b"".join(response.streaming_content)
    assert served == (settings.STATIC_ROOT / "css" / f"site.{hashed[1]}.css").read_bytes()
    assert served == (settings.BASE_DIR / "static" / "css" / "site.css").read_bytes()
    assert "max-age=315360000" in response["Cache-Control"]
    assert "immutable" in response["Cache-Control"]

    for encoding, suffix in [("br", ".br"), ("gzip", ".gz")]:
        compressed = settings.STATIC_ROOT / "css" / f"site.{hashed[1]}.css{suffix}"
        assert compressed.is_file()
        response = client.get(stylesheet, HTTP_ACCEPT_ENCODING=encoding)
        assert response["Content-Encoding"] == encoding
        assert b"".join(response.streaming_content) == compressed.read_bytes()
