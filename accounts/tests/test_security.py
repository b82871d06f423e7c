"""Admin access, headers, production settings and secrets kept out of logs."""

import logging

import pytest
from allauth.mfa.models import Authenticator
from django.test import Client

from accounts.models import AuditEvent
from accounts.tests.factories import PASSWORD
from accounts.tests.helpers import login, totp_code, verified_user
from hosting.testing import run_python

pytestmark = pytest.mark.django_db


def test_a_customer_never_reaches_the_admin(client):
    customer = verified_user()
    login(client, customer.email)
    assert client.get("/admin/").status_code in (302, 403)
    assert client.get("/admin/login/").status_code == 403
    assert client.get("/admin/servers/server/").status_code in (302, 403)


def test_admin_login_goes_through_the_site_login(client):
    response = client.get("/admin/login/?next=/admin/")
    assert response.status_code == 302
    assert response.url.startswith("/accounts/login/")


def test_staff_without_two_factor_are_sent_to_set_it_up(client, settings):
    settings.STAFF_REQUIRE_MFA = True
    staff = verified_user(is_staff=True, is_superuser=True)
    login(client, staff.email)
    response = client.get("/admin/")
    assert response.status_code == 302
    assert response.url == "/accounts/2fa/totp/activate/"


def test_staff_with_two_factor_enter_the_admin(client, settings):
    settings.STAFF_REQUIRE_MFA = True
    staff = verified_user(is_staff=True, is_superuser=True)
    Authenticator.objects.create(user=staff, type=Authenticator.Type.TOTP, data={"secret": "x"})
    client.force_login(staff)
    assert client.get("/admin/").status_code == 200


def test_staff_mfa_requirement_can_be_turned_off_for_development(client, settings):
    settings.STAFF_REQUIRE_MFA = False
    staff = verified_user(is_staff=True, is_superuser=True)
    client.force_login(staff)
    assert client.get("/admin/").status_code == 200


def test_security_headers_on_every_page(client):
    response = client.get("/")
    csp = response["Content-Security-Policy"]
    directives = dict(
        (part.strip().split(" ", 1) + [""])[:2] for part in csp.split(";") if part.strip()
    )
    assert directives["object-src"] == "'none'"
    assert directives["base-uri"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in directives["script-src"]
    assert "unsafe-eval" not in directives["script-src"]
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"


def test_production_transport_settings(settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SESSION_COOKIE_SECURE = True
    settings.CSRF_COOKIE_SECURE = True
    client = Client()
    response = client.get("/pricing/")
    assert response.status_code == 301
    assert response.url == "https://testserver/pricing/"
    assert client.get("/healthz").status_code == 200  # probes stay on plain HTTP

    response = client.get("/pricing/", secure=True)
    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"

    user = verified_user()
    response = client.post(
        "/accounts/login/",
        {"login": user.email, "password": "correct-horse-battery-staple-42"},
        secure=True,
    )
    session_cookie = response.cookies["sessionid"]
    assert session_cookie["secure"] and session_cookie["httponly"]
    assert session_cookie["samesite"] == "Lax"


def test_check_deploy_is_clean_with_production_settings():
    env = {
        "PATH": "/usr/bin:/bin",
        "ENV_FILE": "/dev/null",
        "DEBUG": "off",
        "SECRET_KEY": "k3y-" + "x7Qp9wL2" * 8,
        "ALLOWED_HOSTS": "hosting.example.com",
        "FIELD_ENCRYPTION_KEYS": "Gk8Yy4Hn3mV0wq0W9vYpK3l8o2mX1sQyJ5rT6uV7wX8=",
        "DATABASE_URL": "postgresql://app:pw@db.internal:5432/hosting",
        "SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO,https",
    }
    result = run_python("manage.py", "check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_missing_csrf_token_gives_the_styled_403():
    client = Client(enforce_csrf_checks=True)
    response = client.post("/accounts/login/", {"login": "a@example.com", "password": "x"})
    assert response.status_code == 403
    assert b'href="/pricing/"' in response.content  # the site's own page, not Django's


def test_no_password_in_logs_or_audit_events(client, caplog, mailoutbox):
    secret = "Unmistakable-Passw0rd-zebra"
    caplog.set_level(logging.DEBUG)
    client.post(
        "/accounts/signup/", {"email": "logs@example.com", "password1": secret, "password2": secret}
    )
    login(client, "logs@example.com", secret + "-wrong")
    login(client, "logs@example.com", secret)
    client.post("/accounts/reauthenticate/", {"password": secret})

    assert AuditEvent.objects.exists()
    assert secret not in caplog.text
    for event in AuditEvent.objects.all():
        assert secret not in repr(event.__dict__)
    for message in mailoutbox:
        assert secret not in message.body


def test_audit_metadata_drops_secret_keys_whatever_their_case():
    from accounts.models import AuditAction
    from accounts.services import audit_event_record

    event = audit_event_record(
        action=AuditAction.LOGIN_FAILED,
        actor=verified_user(),
        metadata={"password": "x", "Token": "y", "code": "z", "ok": 1},
    )
    assert event.metadata == {"ok": 1}
    assert AuditEvent.objects.get(pk=event.pk).metadata == {"ok": 1}  # as stored


# ---- where a login lands (issue 13) ----


def test_staff_login_lands_in_the_admin(client, settings):
    settings.STAFF_REQUIRE_MFA = False
    staff = verified_user(is_staff=True, is_superuser=True)

    response = login(client, staff.email)

    assert response.status_code == 302
    assert response.url == "/admin/"
    assert client.get(response.url).status_code == 200


def test_staff_login_follows_next_when_given(client, settings):
    settings.STAFF_REQUIRE_MFA = False
    staff = verified_user(is_staff=True, is_superuser=True)

    response = client.post(
        "/accounts/login/", {"login": staff.email, "password": PASSWORD, "next": "/pricing/"}
    )

    assert response.url == "/pricing/"


def test_staff_with_two_factor_land_in_the_admin_after_the_code(client, settings):
    from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

    settings.STAFF_REQUIRE_MFA = True
    staff = verified_user(is_staff=True, is_superuser=True)
    secret = generate_totp_secret()
    TOTP.activate(staff, secret)

    assert login(client, staff.email).url == "/accounts/2fa/authenticate/"
    response = client.post("/accounts/2fa/authenticate/", {"code": totp_code(secret)})

    assert response.url == "/admin/"
    assert client.get("/admin/").status_code == 200


def test_customer_login_lands_on_the_dashboard(client):
    customer = verified_user()

    assert login(client, customer.email).url == "/dashboard/"


def test_staff_sent_to_set_up_two_factor_are_told_why(client, settings):
    settings.STAFF_REQUIRE_MFA = True
    staff = verified_user(is_staff=True, is_superuser=True)
    login(client, staff.email)
    why = "The admin requires two-factor authentication"

    # First stop: confirm the password (allauth asks before two-factor changes).
    response = client.get("/admin/", follow=True)
    landed = response.redirect_chain[-1][0]
    assert landed.startswith("/accounts/reauthenticate/?next=")
    assert why in response.content.decode()

    response = client.post(landed, {"password": PASSWORD}, follow=True)
    assert response.redirect_chain[-1][0] == "/accounts/2fa/totp/activate/"
    assert why in response.content.decode()
    # Still said after a reload.
    assert why in client.get("/accounts/2fa/totp/activate/").content.decode()


def test_customers_and_other_reauthentication_are_not_told_about_the_admin(client, settings):
    settings.STAFF_REQUIRE_MFA = True
    customer = verified_user()
    login(client, customer.email)

    response = client.get("/accounts/2fa/totp/activate/", follow=True)
    assert "The admin requires" not in response.content.decode()
    client.post(response.redirect_chain[-1][0], {"password": PASSWORD})
    html = client.get("/accounts/2fa/totp/activate/").content.decode()
    assert "Activate Authenticator App" in html
    assert "The admin requires" not in html

    # Staff confirming their password for something else hear nothing about two-factor.
    staff = verified_user(is_staff=True, is_superuser=True)
    staff_client = Client()
    login(staff_client, staff.email)
    html = staff_client.get("/accounts/reauthenticate/?next=/accounts/email/").content.decode()
    assert "The admin requires" not in html
