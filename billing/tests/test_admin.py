"""The payments' admin: a payment added by hand cannot claim to be paid. (Refunds and the
webhook events' screens: test_admin_billing.py.)"""

import pytest

from accounts.tests.factories import UserFactory
from billing.models import Payment
from billing.tests.factories import plan
from hosting.admin_links import admin_url

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(("status", "expected"), [("pending", 302), ("succeeded", 200)])
def test_payment_added_in_admin_cannot_claim_to_be_paid(admin_client, settings, status, expected):
    settings.STAFF_REQUIRE_MFA = False
    # Only the billing flows set paid_at, which the database requires of a paid payment.
    customer = UserFactory()
    basic = plan()
    data = {"user": customer.pk, "plan": basic.pk, "amount_cents": basic.price_cents}
    response = admin_client.post(
        admin_url(Payment, "add"), {**data, "currency": "usd", "status": status}
    )
    assert response.status_code == expected
    assert Payment.objects.filter(user=customer).exists() is (expected == 302)
