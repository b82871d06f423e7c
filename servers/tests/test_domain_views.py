"""The domains page (`servers/views/domains.py`): the add form, each domain's state with
the DNS record to create while it is not verified, the list polling itself only while a
check is pending, "Check now", removal behind a confirmation page, a fixed number of
queries, and a 404 for another customer's server or domain on every URL and method.

Rendering, 404 and query-count tests build rows with DomainFactory and need nothing of
the services; the tests that add, check or remove go through `servers.domains`."""

import re
import uuid
from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from hosting import tenant
from hosting.tests.markup import Page, assert_csp_clean, page_text, unresolved_links
from servers import domains as domain_services
from servers.models import Domain
from servers.tests.factories import DomainFactory, ServerFactory

pytestmark = pytest.mark.django_db

IP = "203.0.113.7"
POLL = 'hx-trigger="every 3s"'


@pytest.fixture
def server(settings):
    settings.DIGITALOCEAN_TOKEN = ""
    return ServerFactory(name="web-prod", ip_address=IP)


@pytest.fixture
def customer(client, server):
    client.force_login(server.user)
    return client


def page_of(server) -> str:
    return f"/servers/{server.uuid}/domains/"


def get_page(client, server):
    response = client.get(page_of(server))
    assert response.status_code == 200
    return response


def item_of(html: str, name: str) -> str:
    """The markup of one domain's card."""
    start = html.index(f'data-domain="{name}"')
    return html[start : html.index("</li>", start)]


def between(html: str, start: str, end: str) -> str:
    begin = html.index(start)
    return html[begin : html.index(end, begin)]


def text_of(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


# -- rendering each state ------------------------------------------------------------------


def test_a_pending_domain_shows_the_a_record_to_create_with_copy_buttons(customer, server):
    domain = DomainFactory(server=server, name="shop.example.com")

    response = get_page(customer, server)

    html = page_text(response)
    item = item_of(html, "shop.example.com")
    assert (
        '<span class="badge badge-pending" data-testid="verification-status">Pending</span>' in item
    )
    record = Page(item).find("table", **{"data-testid": "dns-record"})
    assert len(record) == 1
    assert text_of(between(item, "<tbody>", "</tbody>")) == (
        f"A shop.example.com Copy name {IP} Copy value"
    )
    assert text_of(between(item, "<thead>", "</thead>")) == "Type Name Value"
    assert f'<code id="record-name-{domain.uuid}">shop.example.com</code>' in item
    assert f'<code id="record-value-{domain.uuid}">{IP}</code>' in item
    buttons = Page(item).find("button", type="button")
    assert [b["data-copy"] for b in buttons] == [
        f"record-name-{domain.uuid}",
        f"record-value-{domain.uuid}",
    ]
    assert all("hidden" in b for b in buttons)  # copy.js reveals them
    assert "AAAA" not in html  # no IPv6 on our servers
    assert "not yet" in item  # never checked
    assert "once the DNS record is verified" in item
    assert "js/copy.js" in html
    assert_csp_clean(response)


def test_a_failed_domain_shows_its_reason_and_still_the_record(customer, server):
    DomainFactory(
        server=server,
        name="blog.example.org",
        verification_status="failed",
        verification_reason="blog.example.org points to 198.51.100.9, not to 203.0.113.7.",
        checked_at=datetime(2025, 3, 4, 10, 15, tzinfo=UTC),
        check_attempts=6,
    )

    item = item_of(page_text(get_page(customer, server)), "blog.example.org")

    assert (
        '<span class="badge badge-failed" data-testid="verification-status">Failed</span>' in item
    )
    assert "points to 198.51.100.9, not to 203.0.113.7." in item
    assert "Mar 4, 10:15 UTC" in item
    assert 'data-testid="dns-record"' in item


def test_a_verified_domain_with_https_shows_its_expiry_and_no_record(customer, server):
    DomainFactory(
        server=server,
        name="www.example.com",
        verification_status="verified",
        ssl_status="active",
        checked_at=datetime(2025, 3, 1, 9, 0, tzinfo=UTC),
        ssl_checked_at=datetime(2025, 3, 2, 8, 30, tzinfo=UTC),
        ssl_expires_at=datetime(2025, 5, 31, 8, 0, tzinfo=UTC),
    )

    item = item_of(page_text(get_page(customer, server)), "www.example.com")

    assert (
        '<span class="badge badge-verified" data-testid="verification-status">Verified</span>'
        in item
    )
    assert '<span class="badge badge-active" data-testid="ssl-status">Active</span>' in item
    assert "May 31, 2025" in item and "Certificate expires" in item
    assert "Mar 2, 08:30 UTC" in item
    assert 'data-testid="dns-record"' not in item


def test_a_failed_certificate_shows_its_error(customer, server):
    DomainFactory(
        server=server,
        name="api.example.com",
        verification_status="verified",
        ssl_status="failed",
        ssl_error="The certificate served is for other.example.net.",
    )

    item = item_of(page_text(get_page(customer, server)), "api.example.com")

    assert '<span class="badge badge-failed" data-testid="ssl-status">Failed</span>' in item
    assert "The certificate served is for other.example.net." in item


def test_domains_are_listed_by_name_with_check_and_remove(customer, server):
    b = DomainFactory(server=server, name="b.example.com")
    a = DomainFactory(server=server, name="a.example.com")

    response = get_page(customer, server)

    page = Page.of(response)
    html = page_text(response)
    assert html.index('data-domain="a.example.com"') < html.index('data-domain="b.example.com"')
    actions = {form["action"] for form in page.find("form", method="post")}
    for domain in (a, b):
        assert f"/servers/{server.uuid}/domains/{domain.uuid}/check/" in actions
        assert f'href="/servers/{server.uuid}/domains/{domain.uuid}/remove/"' in html
    assert unresolved_links(page, page_of(server)) == []


def test_without_domains_the_page_says_so_and_does_not_poll(customer, server):
    html = page_text(get_page(customer, server))

    assert "No domains yet." in html
    assert POLL not in html
    assert '<form method="post" action="/servers/' in html and 'name="name"' in html


def test_a_simulated_server_says_which_names_resolve(customer, server, settings):
    note = (
        "This server is simulated: names ending in .test resolve to it; "
        "any other name does not exist."
    )
    assert note in page_text(get_page(customer, server))

    settings.DIGITALOCEAN_TOKEN = "dop_v1_real"
    assert note not in page_text(get_page(customer, server))


def test_the_server_page_links_to_its_domains(customer, server):
    html = page_text(customer.get(f"/servers/{server.uuid}/"))

    assert f'href="/servers/{server.uuid}/domains/">Domains</a>' in html


# -- polling ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("verification", "ssl", "polls"),
    [
        ("pending", "pending", True),
        ("verified", "pending", True),
        ("failed", "pending", False),
        ("verified", "active", False),
        ("verified", "failed", False),
    ],
)
def test_the_list_polls_only_while_a_check_is_pending(customer, server, verification, ssl, polls):
    DomainFactory(
        server=server, name="done.example.com", verification_status="verified", ssl_status="active"
    )
    DomainFactory(server=server, verification_status=verification, ssl_status=ssl)
    partial_url = f"/servers/{server.uuid}/domains/list/"

    for url in (page_of(server), partial_url):
        response = customer.get(url)
        assert response.status_code == 200
        section = Page.of(response).find("section", id="domain-list")
        assert len(section) == 1, url
        if polls:
            assert section[0]["hx-get"] == partial_url
            assert section[0]["hx-trigger"] == "every 3s"
            assert section[0]["hx-swap"] == "outerHTML"
        else:
            assert "hx-get" not in section[0] and "hx-trigger" not in section[0]


def test_the_partial_is_the_list_alone(customer, server):
    DomainFactory(server=server, name="shop.example.com")

    html = page_text(customer.get(f"/servers/{server.uuid}/domains/list/"))

    assert html.lstrip().startswith('<section id="domain-list"')
    assert "shop.example.com" in html and '<code id="record-value-' in html
    assert "<html" not in html and 'name="name"' not in html


# -- another customer ---------------------------------------------------------------------


def test_another_customers_server_or_domain_is_404_on_every_url_and_method(client):
    theirs = DomainFactory(name="their-secret.example.com")
    mine = ServerFactory()
    my_domain = DomainFactory(server=mine, name="mine.example.com")
    client.force_login(mine.user)
    their_server = f"/servers/{theirs.server.uuid}/domains/"
    crossed = f"/servers/{mine.uuid}/domains/{theirs.uuid}/"  # my server, their domain
    inverted = f"/servers/{theirs.server.uuid}/domains/{my_domain.uuid}/"  # and the reverse
    unknown = f"/servers/{mine.uuid}/domains/{uuid.uuid4()}/"
    for method in ("get", "post"):
        for path in [
            their_server,
            f"{their_server}list/",
            f"{their_server}{theirs.uuid}/check/",
            f"{their_server}{theirs.uuid}/remove/",
            f"{crossed}check/",
            f"{crossed}remove/",
            f"{inverted}check/",
            f"{inverted}remove/",
            f"{unknown}check/",
            f"{unknown}remove/",
            f"/servers/{uuid.uuid4()}/domains/",
            f"/servers/{uuid.uuid4()}/domains/list/",
        ]:
            data = {"name": "grab.example.com"} if method == "post" else None
            response = getattr(client, method)(path, data)
            assert response.status_code == 404, (method, path)
            assert b"their-secret" not in response.content
    assert set(Domain.objects.values_list("name", flat=True)) == {
        "their-secret.example.com",
        "mine.example.com",
    }


def test_logged_out_visitors_are_sent_to_log_in(client):
    domain = DomainFactory()
    for path in [
        f"/servers/{domain.server.uuid}/domains/",
        f"/servers/{domain.server.uuid}/domains/list/",
        f"/servers/{domain.server.uuid}/domains/{domain.uuid}/remove/",
    ]:
        response = client.get(path)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_check_now_is_a_post(customer, server):
    domain = DomainFactory(server=server)

    response = customer.get(f"/servers/{server.uuid}/domains/{domain.uuid}/check/")

    assert response.status_code == 405


# -- queries ------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 15])
@pytest.mark.parametrize(
    ("path", "queries"),
    [
        ("domains/", 4),  # session, user, server, domains
        ("domains/list/", 4),
        ("domains/{uuid}/remove/", 3),  # session, user, domain with its server
    ],
)
def test_pages_cost_a_fixed_number_of_queries(customer, server, count, path, queries):
    states = [("pending", "pending"), ("verified", "active"), ("failed", "pending")] * 5
    made = [
        DomainFactory(server=server, verification_status=status, ssl_status=ssl)
        for status, ssl in states[:count]
    ]
    url = f"/servers/{server.uuid}/" + path.format(uuid=made[0].uuid)

    with CaptureQueriesContext(connection) as captured:
        response = customer.get(url)

    assert response.status_code == 200
    # (and the tenant scope set and cleared)
    assert len(captured) == queries + tenant.SCOPE_QUERIES, [q["sql"][:120] for q in captured]
    if path != "domains/{uuid}/remove/":
        assert page_text(response).count('data-testid="domain"') == count


# -- the form -----------------------------------------------------------------------------


def test_an_empty_name_is_refused_by_the_form(customer, server):
    response = customer.post(page_of(server), {"name": "   "})

    assert response.status_code == 400
    assert "This field is required." in page_text(response)
    assert not Domain.objects.exists()


def test_a_refusal_is_shown_on_the_form_with_what_was_typed(customer, server, monkeypatch):
    def refuse(*, server_id, name):
        raise domain_services.DomainRefused("That domain is already attached to a server.")

    monkeypatch.setattr(domain_services, "domain_add", refuse)

    response = customer.post(page_of(server), {"name": "taken.example.com"})

    assert response.status_code == 400
    html = page_text(response)
    assert '<ul class="errorlist" id="id_name_error"><li>That domain is already attached' in html
    assert 'value="taken.example.com"' in html
    assert_csp_clean(response)


# -- through the services -----------------------------------------------------------------


def test_adding_a_domain_stores_it_pending_and_shows_the_record(customer, server):
    response = customer.post(page_of(server), {"name": "  Shop.Example.COM. "}, follow=True)

    assert response.redirect_chain == [(page_of(server), 302)]
    domain = Domain.objects.get()
    assert (domain.server, domain.user, domain.name) == (server, server.user, "shop.example.com")
    assert domain.verification_status == "pending"
    html = page_text(response)
    assert "shop.example.com added." in html
    assert f'<code id="record-value-{domain.uuid}">{IP}</code>' in html
    assert POLL in html


@pytest.mark.parametrize(
    "name",
    [
        "203.0.113.7",
        "localhost",
        "a" * 290 + ".example.com",
        "shop.example.com\nevil.example.com",
        "a..b.example.com",
    ],
    ids=["ip", "localhost", "300-chars", "newline", "empty-label"],
)
def test_hostile_names_are_refused_with_a_message_and_nothing_stored(customer, server, name):
    response = customer.post(page_of(server), {"name": name})

    assert response.status_code == 400
    errors = Page.of(response).find("ul", id="id_name_error")
    assert len(errors) == 1
    assert not Domain.objects.exists()


def test_a_name_attached_elsewhere_is_refused(customer, server):
    DomainFactory(name="taken.example.com")

    response = customer.post(page_of(server), {"name": "TAKEN.example.com"})

    assert response.status_code == 400
    assert 'id="id_name_error"' in page_text(response)
    assert Domain.objects.filter(server=server).count() == 0


def test_check_now_runs_the_check_and_comes_back(customer, server):
    domain = DomainFactory(server=server, name="shop.example.com")

    response = customer.post(f"/servers/{server.uuid}/domains/{domain.uuid}/check/")

    assert response.status_code == 302
    assert response["Location"] == page_of(server)
    assert Domain.objects.filter(pk=domain.pk).exists()


def test_remove_asks_first_then_removes(customer, server):
    domain = DomainFactory(server=server, name="old.example.com")
    DomainFactory(server=server, name="kept.example.com")
    url = f"/servers/{server.uuid}/domains/{domain.uuid}/remove/"

    confirm = customer.get(url)

    assert confirm.status_code == 200
    html = page_text(confirm)
    assert "Remove old.example.com?" in html
    assert [f["action"] for f in Page.of(confirm).find("form", method="post")][-1] == url
    assert f'href="{page_of(server)}">Cancel</a>' in html
    assert_csp_clean(confirm)
    assert Domain.objects.filter(pk=domain.pk).exists()  # asking changes nothing

    response = customer.post(url, follow=True)

    assert response.redirect_chain == [(page_of(server), 302)]
    assert not Domain.objects.filter(pk=domain.pk).exists()
    assert list(Domain.objects.values_list("name", flat=True)) == ["kept.example.com"]
    assert "old.example.com removed." in page_text(response)
