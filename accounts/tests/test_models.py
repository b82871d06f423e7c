import pytest
from django.db import IntegrityError, transaction

from accounts.models import User

pytestmark = pytest.mark.django_db


def test_email_unique_case_insensitively():
    User.objects.create_user("Ann@Example.com", "pw-long-enough-1")
    with pytest.raises(IntegrityError, match="accounts_user_email_ci_unique"):
        with transaction.atomic():
            User.objects.bulk_create([User(email="ANN@example.COM")])


def test_email_stored_lower_case_and_login_ignores_case():
    user = User.objects.create_user("Bob@Example.com", "pw-long-enough-1")
    assert user.email == "bob@example.com"
    assert User.objects.get_by_natural_key("BOB@example.com") == user
