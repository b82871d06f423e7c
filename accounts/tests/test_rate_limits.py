"""Per-IP limits, and lockouts that hold across processes (gunicorn workers, hosts)."""

import pytest
from django.test import Client

from accounts.tests.factories import PASSWORD
from accounts.tests.helpers import login, verified_user
from hosting.testing import run_python, subprocess_env

FAIL_LOGINS_ELSEWHERE = """
import django
django.setup()
from django.test import Client
client = Client(REMOTE_ADDR="198.51.100.7")
for _ in range(10):
    response = client.post("/accounts/login/", {"login": "%s", "password": "wrong"})
    assert response.status_code == 200, response.status_code
print("ten failures")
"""


@pytest.fixture
def tight_limits(settings):
    settings.ACCOUNT_RATE_LIMITS = {
        **settings.ACCOUNT_RATE_LIMITS,
        "signup": "2/m/ip",
        "login": "3/m/ip",
        "reset_password": "2/m/ip",
    }


@pytest.mark.django_db
def test_signups_are_limited_per_ip(tight_limits):
    client = Client(REMOTE_ADDR="192.0.2.10")
    for n in range(2):
        data = {"email": f"s{n}@example.com", "password1": PASSWORD, "password2": PASSWORD}
        assert client.post("/accounts/signup/", data).status_code == 302
    data = {"email": "s3@example.com", "password1": PASSWORD, "password2": PASSWORD}
    assert client.post("/accounts/signup/", data).status_code == 429
    other_ip = Client(REMOTE_ADDR="192.0.2.11")
    assert other_ip.post("/accounts/signup/", data).status_code == 302


@pytest.mark.django_db
def test_logins_are_limited_per_ip_across_accounts(tight_limits):
    client = Client(REMOTE_ADDR="192.0.2.20")
    users = [verified_user() for _ in range(4)]
    for user in users[:3]:
        login(client, user.email, "wrong")
    assert login(client, users[3].email).status_code == 429


@pytest.mark.django_db
def test_password_reset_requests_are_limited_per_ip(tight_limits, mailoutbox):
    client = Client(REMOTE_ADDR="192.0.2.30")
    for n in range(2):
        client.post("/accounts/password/reset/", {"email": f"r{n}@example.com"})
    response = client.post("/accounts/password/reset/", {"email": "r9@example.com"})
    assert response.status_code == 429


@pytest.mark.django_db(transaction=True)
def test_a_lockout_made_in_another_process_holds_here():
    """Ten failures in a separate Python process lock the account for this one: the
    counters live in the database cache every worker shares, not in process memory."""
    user = verified_user()
    result = run_python(
        "-c",
        FAIL_LOGINS_ELSEWHERE % user.email,
        # DEBUG on: the page renders without collectstatic's manifest.
        env=subprocess_env(DEBUG="on", ALLOWED_HOSTS="testserver"),
    )
    assert result.returncode == 0, result.stderr
    response = login(Client(REMOTE_ADDR="203.0.113.99"), user.email)
    assert response.status_code == 200
    assert "Too many failed login attempts" in response.content.decode()


def behind_proxy(client_address: str, forged: str = "") -> Client:
    """A browser at `client_address` behind the one proxy (10.0.0.2) that appends the
    address it saw to X-Forwarded-For; `forged` is what the client itself put there."""
    forwarded = f"{forged}, {client_address}" if forged else client_address
    return Client(REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=forwarded)


@pytest.mark.django_db
def test_behind_a_proxy_two_clients_have_separate_login_limits(tight_limits, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    users = [verified_user() for _ in range(5)]
    attacker = behind_proxy("198.51.100.66")
    for user in users[:3]:
        login(attacker, user.email, "wrong")
    assert login(attacker, users[3].email).status_code == 429

    # Another customer behind the same proxy is not throttled by the attacker's failures.
    assert login(behind_proxy("203.0.113.5"), users[4].email).status_code == 302


@pytest.mark.django_db
def test_a_forged_extra_hop_does_not_escape_the_limit(tight_limits, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    users = [verified_user() for _ in range(4)]
    for n, user in enumerate(users[:3]):
        login(behind_proxy("198.51.100.66", forged=f"192.0.2.{n}"), user.email, "wrong")
    # A fresh forged address each time, but the proxy saw the same client every time.
    response = login(behind_proxy("198.51.100.66", forged="192.0.2.99"), users[3].email)
    assert response.status_code == 429
