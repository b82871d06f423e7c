"""allauth's pages and the account page in the site's look, CSP-clean and labelled."""

from unittest import mock

import pytest
from allauth.mfa.models import Authenticator

from accounts.models import AuditAction, AuditEvent
from accounts.tests.factories import PASSWORD
from accounts.tests.helpers import login, verified_user
from hosting import tenant
from hosting.tests.markup import Page

pytestmark = pytest.mark.django_db


def site_page(response) -> Page:
    """The response is a 200 HTML page in the site layout with nothing a strict CSP refuses."""
    assert response.status_code == 200
    html = response.content.decode()
    page = Page(html)
    assert page.find("a", **{"class": "brand"}), "the site header's brand link is missing"
    assert page.find("nav", **{"aria-label": "Main"}), "the site nav is missing"
    assert page.find("link", rel="stylesheet", href="/static/css/site.css")
    assert page.csp_problems == []
    # Every visible control has a <label for=...>.
    assert set(page.input_ids) <= page.label_targets, page.input_ids
    # allauth's own bare layout (its "Menu:" list) is not used.
    assert "Menu:" not in html
    return page


@pytest.mark.parametrize(
    ("path", "fields"),
    [
        ("/accounts/login/", {"login", "password"}),
        ("/accounts/signup/", {"email", "password1", "password2"}),
        ("/accounts/password/reset/", {"email"}),
    ],
)
def test_entrance_pages_use_the_site_look(client, path, fields):
    page = site_page(client.get(path))

    assert set(page.input_ids.values()) == fields
    assert page.find("div", **{"class": "card stack auth-card"})  # the narrow centred card
    (form,) = page.find("form", method="post", **{"class": "form"})
    assert form["action"] == path
    assert page.find("button", type="submit", **{"class": "btn btn-primary"})


def test_signup_errors_are_listed_by_their_field(client):
    response = client.post(
        "/accounts/signup/", {"email": "not-an-email", "password1": "x", "password2": "y"}
    )

    page = site_page(response)
    (email,) = page.find("input", name="email")
    assert email["aria-invalid"] == "true"
    assert "id_email_error" in email["aria-describedby"]
    assert page.find("ul", id="id_email_error", **{"class": "errorlist"})
    (password,) = page.find("input", name="password1")
    assert "id_password1_helptext" in password["aria-describedby"]
    assert page.find("div", id="id_password1_helptext", **{"class": "helptext"})


@pytest.fixture
def customer(client):
    user = verified_user(name="Ada Lovelace")
    client.force_login(user)
    return user


def test_account_page_shows_profile_two_factor_off_and_events(client, customer):
    AuditEvent.objects.create(actor=customer, action=AuditAction.LOGIN, ip_address="198.51.100.7")
    AuditEvent.objects.create(actor=customer, action=AuditAction.PASSWORD_CHANGE)
    someone_else = verified_user()
    AuditEvent.objects.create(actor=someone_else, action=AuditAction.MFA_ENABLE)

    response = client.get("/accounts/")

    page = site_page(response)
    html = response.content.decode()
    assert customer.email in html
    assert page.find("a", href="/accounts/email/")
    assert page.find("a", href="/accounts/password/change/")
    assert page.find("input", name="name", value="Ada Lovelace")
    assert '<span class="badge badge-pending">Off</span>' in html
    assert "Turn on two-factor" in html
    assert page.find("a", href="/accounts/2fa/")
    assert "Logged in" in html and "198.51.100.7" in html
    assert "Changed password" in html
    assert "Turned on two-factor" not in html  # another customer's event
    assert page.find("a", href="/accounts/", **{"aria-current": "page"})


def test_account_page_with_two_factor_on_and_no_events(client):
    customer = verified_user(name="Ada Lovelace")
    Authenticator.objects.create(user=customer, type=Authenticator.Type.TOTP, data={})
    # Logged in without the "Logged in" event force_login would record (the audit trail
    # is append-only: it cannot be deleted afterwards).
    with mock.patch("accounts.audit_signals.audit_event_record"):
        client.force_login(customer)
    assert not AuditEvent.objects.filter(actor=customer).exists()

    response = client.get("/accounts/")

    html = response.content.decode()
    site_page(response)
    assert '<span class="badge badge-active">On</span>' in html
    assert "Turn on two-factor" not in html
    assert 'class="empty-state"' in html


def test_account_page_query_count_is_fixed(client, customer, django_assert_num_queries):
    for action in [AuditAction.LOGIN, AuditAction.LOGOUT, AuditAction.LOGIN] * 4:
        AuditEvent.objects.create(actor=customer, action=action, ip_address="192.0.2.1")

    # session, user, authenticators (two-factor status), events; the tenant scope
    with django_assert_num_queries(4 + tenant.SCOPE_QUERIES):
        response = client.get("/accounts/")
    assert response.status_code == 200
    assert len(response.context["events"]) == 10


def test_posting_the_profile_form_saves_the_name(client, customer):
    response = client.post("/accounts/", {"name": "  Grace Hopper "})

    assert response.status_code == 302
    assert response.url == "/accounts/"
    customer.refresh_from_db()
    assert customer.name == "Grace Hopper"
    assert "Your name was saved." in client.get("/accounts/").content.decode()


def test_account_page_needs_login(client):
    response = client.get("/accounts/")

    assert response.status_code == 302
    assert response.url.startswith("/accounts/login/")


@pytest.mark.parametrize(
    ("path", "current"),
    [
        ("/accounts/email/", "/accounts/email/"),
        ("/accounts/password/change/", "/accounts/password/change/"),
        ("/accounts/2fa/", "/accounts/2fa/"),
    ],
)
def test_manage_pages_use_the_site_look(client, customer, path, current):
    page = site_page(client.get(path))

    # The account sub-nav marks the page that is open.
    nav_links = [a for a in page.find("a", **{"aria-current": "page"}) if "btn" in a["class"]]
    assert [a["href"] for a in nav_links] == [current]
    assert page.find("div", **{"class": "card stack"})  # the full-width card


def test_email_page_has_no_inline_style_and_a_labelled_change_field(client, customer):
    page = site_page(client.get("/accounts/email/"))

    (current,) = page.find("input", id="current_email")
    assert current["value"] == customer.email
    assert "disabled" in current
    assert page.find("input", name="email", type="email")
    assert page.find("button", name="action_add", **{"class": "btn btn-primary"})


def test_two_factor_page_offers_activation(client, customer):
    page = site_page(client.get("/accounts/2fa/"))

    assert page.find("a", href="/accounts/2fa/totp/activate/", **{"class": "btn btn-primary"})
    assert page.find("section", **{"class": "card stack"})


def test_totp_activation_shows_the_qr_code_and_a_copyable_secret(client):
    user = verified_user()
    assert login(client, user.email).url == "/dashboard/"
    # Setting up two-factor asks for the password again first.
    response = client.post("/accounts/reauthenticate/", {"password": PASSWORD})
    assert response.status_code == 302

    page = site_page(client.get("/accounts/2fa/totp/activate/"))

    (qr,) = page.find("img", alt="QR code for your authenticator app")
    assert qr["src"].startswith("data:image/svg+xml;base64,")  # img-src allows data:
    (secret,) = page.find("input", id="authenticator_secret")
    assert "readonly" in secret and "disabled" not in secret and "name" not in secret
    assert len(secret["value"]) >= 16
    assert page.find("div", id="authenticator_secret_helptext", **{"class": "helptext"})
    assert page.find("input", name="code")


def test_email_change_error_is_tied_to_its_field(client):
    user = verified_user()
    login(client, user.email)
    client.post("/accounts/reauthenticate/", {"password": PASSWORD})

    page = site_page(client.post("/accounts/email/", {"action_add": "", "email": "not-an-email"}))

    (field,) = page.find("input", name="email")
    assert field["aria-invalid"] == "true"
    assert field["aria-describedby"] == "id_email_error"
    assert page.find("ul", id="id_email_error", **{"class": "errorlist"})


def test_login_code_prompt_mentions_recovery_codes_and_what_to_do_without_both(client):
    from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

    user = verified_user()
    TOTP.activate(user, generate_totp_secret())
    assert login(client, user.email).url == "/accounts/2fa/authenticate/"

    response = client.get("/accounts/2fa/authenticate/")
    page = site_page(response)

    assert "recovery code" in response.content.decode()
    assert page.find("a", href="/accounts/2fa/lost/")

    # The help page opens mid-login (before the code) and says to contact support.
    response = client.get("/accounts/2fa/lost/")
    site_page(response)
    html = response.content.decode()
    assert "recovery code" in html
    assert "support" in html


def test_lost_two_factor_help_links_to_the_support_address(client, settings):
    settings.SUPPORT_EMAIL = "help@hosting.example.com"

    page = site_page(client.get("/accounts/2fa/lost/"))

    assert page.find("a", href="mailto:help@hosting.example.com")
