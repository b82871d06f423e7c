"""What search engines read: public pages describe themselves and may be indexed; pages
behind a login (and the account pages) ask to be left out of the index."""

import pytest
from allauth.account.models import EmailAddress

from hosting.tests.markup import Page
from servers.tests.factories import DeploymentFactory, ServerFactory

pytestmark = pytest.mark.django_db

PUBLIC_PAGES = ["/", "/pricing/", "/accounts/login/", "/accounts/signup/"]


def robots(page: Page) -> list[str]:
    return [meta.get("content", "") for meta in page.find("meta", name="robots")]


def description(page: Page) -> str:
    (meta,) = page.find("meta", name="description")
    return meta.get("content", "")


@pytest.mark.parametrize("url", PUBLIC_PAGES)
def test_public_page_has_a_description_and_may_be_indexed(client, url):
    response = client.get(url)

    assert response.status_code == 200
    page = Page.of(response)
    text = description(page)
    # Search engines show about 150 characters; fewer than 50 says too little.
    assert 50 <= len(text) <= 160, text
    assert not any("noindex" in content for content in robots(page))


def test_public_pages_describe_themselves_differently(client):
    descriptions = [description(Page.of(client.get(url))) for url in PUBLIC_PAGES]

    assert len(set(descriptions)) == len(PUBLIC_PAGES)


@pytest.mark.parametrize("url", ["/", "/pricing/"])
def test_public_page_may_be_indexed_for_a_logged_in_visitor_too(client, url):
    server = ServerFactory()
    client.force_login(server.user)

    assert robots(Page.of(client.get(url))) == []


def test_customer_pages_are_kept_out_of_the_index(client):
    server = ServerFactory()
    DeploymentFactory(server=server)
    user = server.user
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    client.force_login(user)
    urls = [
        "/dashboard/",
        f"/servers/{server.uuid}/",
        f"/servers/{server.uuid}/deployments/",
        "/billing/",
        "/accounts/",
        "/accounts/email/",
        "/accounts/password/change/",
        "/accounts/2fa/",
    ]

    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        assert robots(Page.of(response)) == ["noindex"], url


@pytest.mark.parametrize(
    "url", ["/accounts/password/reset/", "/accounts/confirm-email/", "/no-such-page/"]
)
def test_other_pages_are_kept_out_of_the_index(client, url):
    assert robots(Page.of(client.get(url))) == ["noindex"]
