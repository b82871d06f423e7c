"""Sign up, confirm the email, log in and open two-factor setup in a real browser."""

import re
import time
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from accounts.models import User
from accounts.tests.helpers import totp_code

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
]

EMAIL = "browser.customer@example.com"
PASSWORD = "Plenty-of-entropy-2026!"


@pytest.fixture
def console_errors(page):
    """Console errors, where the browser reports anything the CSP refused."""
    errors = []

    def collect(message):
        if message.type == "error":
            errors.append(message.text)

    page.on("console", collect)
    return errors


def fresh_totp_code(secret: str) -> str:
    """A code with a few seconds of its 30-second window left, so it is still valid when the
    server checks it (allauth accepts only the current window)."""
    if time.time() % 30 > 26:
        time.sleep(30 - time.time() % 30 + 0.1)
    return totp_code(secret)


def test_signup_confirm_login_and_two_factor_setup(page, live_server, mailoutbox, console_errors):
    page.goto("/accounts/signup/")
    expect(page.get_by_role("heading", level=1, name="Sign Up")).to_be_visible()
    page.screenshot(path="/tmp/signup.png", full_page=True)
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password (again)").fill(PASSWORD)
    page.get_by_role("button", name="Sign Up").click()

    expect(page).to_have_url(re.compile(r"/accounts/confirm-email/$"))
    assert User.objects.filter(email=EMAIL).exists()
    assert len(mailoutbox) == 1
    (message,) = mailoutbox
    assert message.to == [EMAIL]
    match = re.search(r"https?://\S+/accounts/confirm-email/\S+/", message.body)
    assert match, message.body
    page.goto(live_server.url + urlsplit(match.group(0)).path)
    expect(page.get_by_role("heading", level=1, name="Confirm Email Address")).to_be_visible()
    page.get_by_role("button", name="Confirm").click()

    expect(page).to_have_url(re.compile(r"/accounts/login/$"))
    assert User.objects.get(email=EMAIL).emailaddress_set.get().verified
    page.screenshot(path="/tmp/login.png", full_page=True)
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign In").click()

    expect(page).to_have_url(re.compile(r"/dashboard/$"))
    expect(page.get_by_role("heading", level=1, name="Dashboard")).to_be_visible()

    # Setting up two-factor asks for the password again first.
    page.goto("/accounts/2fa/totp/activate/")
    expect(page.get_by_role("heading", level=1, name="Confirm Access")).to_be_visible()
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Confirm").click()
    expect(page).to_have_url(re.compile(r"/accounts/2fa/totp/activate/$"))
    expect(page.get_by_role("heading", level=1, name="Activate Authenticator App")).to_be_visible()
    qr = page.get_by_role("img", name="QR code for your authenticator app")
    expect(qr).to_be_visible()
    assert qr.evaluate("image => image.naturalWidth") > 0  # the data: URI loaded under the CSP
    secret = page.get_by_label("Authenticator secret")
    expect(secret).to_have_value(re.compile(r"^[A-Z2-7]{16,}$"))
    expect(secret).to_have_attribute("readonly", "")  # selectable, to copy by hand
    page.screenshot(path="/tmp/totp.png", full_page=True)

    page.get_by_label("Authenticator code").fill(fresh_totp_code(secret.input_value()))
    page.get_by_role("button", name="Activate").click()

    expect(page).to_have_url(re.compile(r"/accounts/2fa/recovery-codes/$"))
    expect(page.get_by_text("Authenticator app activated.")).to_be_visible()
    expect(page.get_by_label("Unused codes")).to_be_visible()

    assert console_errors == []
