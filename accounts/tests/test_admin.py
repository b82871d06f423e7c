"""The users' admin: an address in any case is stored lower-case, once."""

import pytest

from accounts.models import User
from accounts.tests.factories import PASSWORD, UserFactory
from hosting.admin_links import admin_url

pytestmark = pytest.mark.django_db


def _add_user(client, email):
    return client.post(
        admin_url(User, "add"),
        {"email": email, "password1": PASSWORD, "password2": PASSWORD},
    )


def test_user_added_in_admin_gets_a_lower_case_email_and_can_log_in(admin_client, client, settings):
    settings.STAFF_REQUIRE_MFA = False
    response = _add_user(admin_client, "New.Customer@Example.COM")
    assert response.status_code == 302
    user = User.objects.get(email="new.customer@example.com")
    assert user.check_password(PASSWORD)
    assert client.login(email="new.customer@example.com", password=PASSWORD)


def test_user_with_an_existing_email_in_another_case_is_refused(admin_client, settings):
    settings.STAFF_REQUIRE_MFA = False
    existing = UserFactory()
    response = _add_user(admin_client, existing.email.upper())
    assert response.status_code == 200
    assert "already exists" in response.content.decode()
    assert User.objects.filter(email__iexact=existing.email).count() == 1
