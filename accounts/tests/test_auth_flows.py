"""The account journeys over HTTP, with mail captured and the clock under control."""

import datetime as dt

import pytest
import time_machine
from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from django.contrib.sessions.models import Session
from django.test import Client

from accounts.models import AuditAction, AuditEvent, User
from accounts.tests.factories import PASSWORD
from accounts.tests.helpers import confirmation_link, login, totp_code, verified_user

pytestmark = pytest.mark.django_db
START = dt.datetime(2026, 11, 22, 9, 0, tzinfo=dt.UTC)
NEW_PASSWORD = "Another-long-passphrase-77"


@pytest.fixture
def clock():
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


def actions_of(user):
    return list(AuditEvent.objects.filter(actor=user).values_list("action", flat=True))


def test_signup_confirm_login_totp_and_recovery_codes(
    client, mailoutbox, clock, django_capture_on_commit_callbacks
):
    email = "new.customer@example.com"
    response = client.post(
        "/accounts/signup/", {"email": email, "password1": PASSWORD, "password2": PASSWORD}
    )
    assert response.status_code == 302
    user = User.objects.get(email=email)

    # The customer area stays shut until the address is confirmed.
    assert client.get("/dashboard/").status_code == 302
    assert login(client, email).url == "/accounts/confirm-email/"

    link = confirmation_link(mailoutbox[-1])
    assert client.get(link).status_code == 200
    assert client.post(link).status_code == 302
    assert user.emailaddress_set.get().verified

    response = login(client, email)
    assert response.url == "/dashboard/"
    assert client.get("/dashboard/").status_code == 200

    # Turn on TOTP (after confirming the password again) with a code computed from the
    # secret the page shows.
    response = client.get("/accounts/2fa/totp/activate/")
    assert response.url.startswith("/accounts/reauthenticate/")
    assert client.post(response.url, {"password": PASSWORD}).status_code == 302
    response = client.get("/accounts/2fa/totp/activate/")
    assert response.status_code == 200
    secret = response.context["form"].secret
    with django_capture_on_commit_callbacks(execute=True):  # allauth signals on commit
        response = client.post("/accounts/2fa/totp/activate/", {"code": totp_code(secret)})
    assert response.status_code == 302
    assert Authenticator.objects.filter(user=user, type="totp").exists()
    codes = Authenticator.objects.get(user=user, type="recovery_codes").wrap().get_unused_codes()
    assert len(codes) >= 10

    client.post("/accounts/logout/")
    assert client.get("/dashboard/").status_code == 302

    # The password alone no longer opens the account.
    clock.shift(60)
    response = login(client, email)
    assert response.url == "/accounts/2fa/authenticate/"
    assert client.get("/dashboard/").status_code == 302
    response = client.post("/accounts/2fa/authenticate/", {"code": "000000"})
    assert response.status_code == 200  # wrong code: asked again
    response = client.post("/accounts/2fa/authenticate/", {"code": totp_code(secret)})
    assert response.url == "/dashboard/"
    client.post("/accounts/logout/")

    # A recovery code works once, and only once.
    clock.shift(60)
    login(client, email)
    response = client.post("/accounts/2fa/authenticate/", {"code": codes[0]})
    assert response.url == "/dashboard/"
    client.post("/accounts/logout/")
    clock.shift(60)
    login(client, email)
    response = client.post("/accounts/2fa/authenticate/", {"code": codes[0]})
    assert response.status_code == 200
    assert client.get("/dashboard/").status_code == 302

    recorded = actions_of(user)
    for action in ("signup", "email_confirm", "login", "logout", "mfa_enable", "login_failed"):
        assert action in recorded


def test_ten_failures_lock_the_account_until_the_window_passes(client, clock):
    user = verified_user()
    for _ in range(10):
        response = login(client, user.email, "wrong-password")
        assert response.status_code == 200
    response = login(client, user.email)  # the right password, refused
    assert response.status_code == 200
    assert "Too many failed login attempts" in response.content.decode()
    assert client.get("/dashboard/").status_code == 302
    assert actions_of(user).count(AuditAction.LOGIN_FAILED) == 10
    assert AuditAction.LOCKOUT in actions_of(user)

    clock.shift(dt.timedelta(minutes=16))
    response = login(client, user.email)
    assert response.status_code == 302
    assert response.url == "/dashboard/"


def test_a_lockout_is_per_account(clock):
    victim, other = verified_user(), verified_user()
    attacker = Client(REMOTE_ADDR="198.51.100.7")
    for _ in range(10):
        assert login(attacker, victim.email, "wrong-password").status_code == 200

    # The victim, from an address of their own, with the right password: refused.
    victims_browser = Client(REMOTE_ADDR="203.0.113.20")
    response = login(victims_browser, victim.email)
    assert response.status_code == 200
    assert "Too many failed login attempts" in response.content.decode()
    assert victims_browser.get("/dashboard/").status_code == 302
    # Another account is untouched, even from the attacker's address.
    assert login(attacker, other.email).status_code == 302
    assert attacker.get("/dashboard/").status_code == 200


def test_password_change_ends_other_sessions_but_keeps_this_one():
    user = verified_user()
    here, elsewhere = Client(), Client()
    assert login(here, user.email).status_code == 302
    assert login(elsewhere, user.email).status_code == 302
    first_key = here.session.session_key
    assert elsewhere.get("/dashboard/").status_code == 200

    response = here.post(
        "/accounts/password/change/",
        {"oldpassword": PASSWORD, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    assert response.status_code == 302
    assert here.get("/dashboard/").status_code == 200
    assert elsewhere.get("/dashboard/").status_code == 302
    assert first_key  # a key was issued at login
    assert AuditAction.PASSWORD_CHANGE in actions_of(user)


def test_login_issues_a_new_session_key():
    """A session that existed before login (one an attacker could have planted: session
    fixation) is not the one the customer is logged in with, and it is gone."""
    user = verified_user()
    client = Client()
    anonymous = client.session  # saved, and its cookie set on the client
    anonymous["seen_pricing"] = True
    anonymous.save()
    before = client.cookies["sessionid"].value
    assert before == anonymous.session_key
    assert Session.objects.filter(session_key=before).exists()

    assert login(client, user.email).status_code == 302
    after = client.cookies["sessionid"].value
    assert after != before
    assert not Session.objects.filter(session_key=before).exists()
    assert Session.objects.filter(session_key=after).exists()
    assert client.get("/dashboard/").status_code == 200


def test_logout_makes_the_old_cookie_useless():
    user = verified_user()
    client = Client()
    login(client, user.email)
    cookie = client.cookies["sessionid"].value
    client.post("/accounts/logout/")

    replay = Client()
    replay.cookies["sessionid"] = cookie
    assert replay.get("/dashboard/").status_code == 302


def test_session_has_an_absolute_lifetime(settings, clock):
    """Django's expiry slides forward with activity; the session still ends 12 h after
    login (accounts.middleware.AbsoluteSessionLifetimeMiddleware)."""
    settings.SESSION_COOKIE_AGE = 12 * 60 * 60
    settings.SESSION_SAVE_EVERY_REQUEST = True  # every request pushes Django's expiry on
    user = verified_user()
    client = Client()
    login(client, user.email)
    key = client.cookies["sessionid"].value
    for hours in (3, 3, 3):
        clock.shift(dt.timedelta(hours=hours))
        assert client.get("/dashboard/").status_code == 200
    clock.shift(dt.timedelta(hours=2, minutes=50))  # 11 h 50 min after login
    assert client.get("/dashboard/").status_code == 200
    # Django alone would keep this session until 12 h after that last request.
    expires = Session.objects.get(session_key=key).expire_date
    assert expires == START + dt.timedelta(hours=11, minutes=50) + dt.timedelta(hours=12)

    clock.shift(dt.timedelta(minutes=20))  # 12 h 10 min after login
    response = client.get("/dashboard/")
    assert response.status_code == 302
    assert response.url.startswith("/accounts/login/")
    assert not Session.objects.filter(session_key=key).exists()  # logged out, not hidden
    assert client.get("/dashboard/").status_code == 302


def test_password_reset_by_email_ends_every_session(mailoutbox):
    user = verified_user()
    logged_in = Client()
    login(logged_in, user.email)

    client = Client()
    assert client.post("/accounts/password/reset/", {"email": user.email}).status_code == 302
    link = next(
        line for line in mailoutbox[-1].body.splitlines() if "/accounts/password/reset/key/" in line
    )
    path = link[link.index("/accounts/") :].strip()
    response = client.get(path, follow=True)
    form_path = response.redirect_chain[-1][0] if response.redirect_chain else path
    response = client.post(form_path, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert response.status_code == 302

    assert logged_in.get("/dashboard/").status_code == 302
    assert login(Client(), user.email, NEW_PASSWORD).status_code == 302
    assert AuditAction.PASSWORD_RESET in actions_of(user)


def test_password_rules(client):
    common = client.post(
        "/accounts/signup/",
        {"email": "a@example.com", "password1": "password123", "password2": "password123"},
    )
    assert common.status_code == 200
    assert "too common" in common.content.decode()
    assert not User.objects.filter(email="a@example.com").exists()

    long_password = "Zq7!" * 16  # 64 characters
    accepted = client.post(
        "/accounts/signup/",
        {"email": "b@example.com", "password1": long_password, "password2": long_password},
    )
    assert accepted.status_code == 302
    assert User.objects.get(email="b@example.com").password.startswith("argon2")


def test_email_change_requires_the_password_again(
    client, clock, mailoutbox, django_capture_on_commit_callbacks
):
    user = verified_user()
    login(client, user.email)
    clock.shift(dt.timedelta(hours=1))
    response = client.post("/accounts/email/", {"action_add": "", "email": "moved@example.com"})
    assert response.status_code == 302
    assert response.url.startswith("/accounts/reauthenticate/")
    assert not EmailAddress.objects.filter(email="moved@example.com").exists()

    assert client.post(response.url, {"password": "wrong"}).status_code == 200
    # The right password resumes the change that was asked for.
    assert client.post(response.url, {"password": PASSWORD}).status_code == 302
    assert not EmailAddress.objects.get(email="moved@example.com").verified

    with django_capture_on_commit_callbacks(execute=True):
        client.post(confirmation_link(mailoutbox[-1]))
    user.refresh_from_db()
    assert user.email == "moved@example.com"
    assert AuditAction.EMAIL_CHANGE in actions_of(user)


def test_recovery_codes_regenerated_and_two_factor_turned_off_are_audited(
    client, clock, django_capture_on_commit_callbacks
):
    from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
    from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

    user = verified_user()
    secret = generate_totp_secret()
    TOTP.activate(user, secret)
    old_codes = RecoveryCodes.activate(user).get_unused_codes()
    assert login(client, user.email).url == "/accounts/2fa/authenticate/"
    assert client.post("/accounts/2fa/authenticate/", {"code": totp_code(secret)}).url == (
        "/dashboard/"
    )

    # Confirming the password again (as every account change asks) resumes the request.
    response = client.post("/accounts/2fa/recovery-codes/generate/")
    assert response.url.startswith("/accounts/reauthenticate/")
    with django_capture_on_commit_callbacks(execute=True):  # allauth signals on commit
        response = client.post(response.url, {"password": PASSWORD})
    assert response.status_code == 302
    new_codes = Authenticator.objects.get(user=user, type="recovery_codes").wrap()
    assert set(new_codes.get_unused_codes()).isdisjoint(old_codes)
    assert actions_of(user).count(AuditAction.RECOVERY_CODES) == 1

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/accounts/2fa/totp/deactivate/")
    assert response.status_code == 302
    assert not Authenticator.objects.filter(user=user, type="totp").exists()
    assert actions_of(user).count(AuditAction.MFA_DISABLE) == 1
    assert AuditAction.MFA_ENABLE not in actions_of(user)  # set up outside the views


def test_totp_secret_survives_a_reload_of_the_activation_page(
    client, django_capture_on_commit_callbacks
):
    user = verified_user()
    login(client, user.email)
    assert client.post("/accounts/reauthenticate/", {"password": PASSWORD}).status_code == 302

    first = client.get("/accounts/2fa/totp/activate/").context["form"].secret
    # The customer reloads before typing the code their app shows for the first QR code.
    second = client.get("/accounts/2fa/totp/activate/").context["form"].secret
    assert second == first

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/accounts/2fa/totp/activate/", {"code": totp_code(first)})
    assert response.status_code == 302
    assert Authenticator.objects.filter(user=user, type="totp").exists()


def test_totp_secret_is_new_for_the_next_activation(client, django_capture_on_commit_callbacks):
    """Once an activation succeeds, the next one (after turning two-factor off) starts over."""
    user = verified_user()
    login(client, user.email)
    client.post("/accounts/reauthenticate/", {"password": PASSWORD})
    first = client.get("/accounts/2fa/totp/activate/").context["form"].secret
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/accounts/2fa/totp/activate/", {"code": totp_code(first)})
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/accounts/2fa/totp/deactivate/")
    assert not Authenticator.objects.filter(user=user, type="totp").exists()

    assert client.get("/accounts/2fa/totp/activate/").context["form"].secret != first


def test_confirming_the_signup_address_is_not_an_email_change(
    client, mailoutbox, django_capture_on_commit_callbacks
):
    email = "fresh@example.com"
    client.post("/accounts/signup/", {"email": email, "password1": PASSWORD, "password2": PASSWORD})
    user = User.objects.get(email=email)

    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(confirmation_link(mailoutbox[-1])).status_code == 302

    recorded = actions_of(user)
    assert AuditAction.EMAIL_CONFIRM in recorded
    assert AuditAction.EMAIL_CHANGE not in recorded
    login(client, email)
    html = client.get("/accounts/").content.decode()
    assert "Confirmed email" in html
    assert "Changed email" not in html
