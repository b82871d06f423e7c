import pytest
from django.db import IntegrityError, transaction

from billing.models import Payment
from billing.tests.factories import PaymentFactory
from servers.tests.factories import ServerFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "field",
    [
        "stripe_checkout_session_id",
        "stripe_payment_intent_id",
        "stripe_charge_id",
        "stripe_refund_id",
    ],
)
def test_duplicate_stripe_id_refused(field):
    PaymentFactory(**{field: "dup_123"})
    with pytest.raises(IntegrityError, match=f"billing_payment_{field}_unique"):
        with transaction.atomic():
            PaymentFactory(**{field: "dup_123"})
    assert Payment.objects.filter(**{field: "dup_123"}).count() == 1


def test_unset_stripe_ids_do_not_collide():
    PaymentFactory(stripe_charge_id="", stripe_refund_id="")
    PaymentFactory(stripe_charge_id="", stripe_refund_id="")
    assert Payment.objects.filter(stripe_refund_id="").count() == 2


def test_status_must_be_known():
    payment = PaymentFactory()
    with pytest.raises(IntegrityError, match="billing_payment_status_valid"):
        with transaction.atomic():
            Payment.objects.filter(pk=payment.pk).update(status="lost")


def test_refunded_payment_needs_refunded_at():
    payment = PaymentFactory()
    with pytest.raises(IntegrityError, match="refunded_has_refunded_at"), transaction.atomic():
        Payment.objects.filter(pk=payment.pk).update(status="refunded")


def test_one_payment_pays_for_one_server():
    payment = PaymentFactory()
    ServerFactory(user=payment.user, payment=payment, status="failed")
    with pytest.raises(IntegrityError), transaction.atomic():
        ServerFactory(user=payment.user, payment=payment, status="running")


def test_plan_cannot_be_deleted_while_paid_for():
    from django.db.models import ProtectedError

    payment = PaymentFactory()
    with pytest.raises(ProtectedError):
        payment.plan.delete()


def test_plans_seeded_by_migration():
    from billing.models import Plan

    plans = list(Plan.objects.order_by("sort_order").values_list("slug", flat=True))
    assert plans == ["basic", "pro", "premium"]
