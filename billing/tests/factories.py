import factory
from django.utils import timezone

from accounts.tests.factories import UserFactory
from billing.models import Payment, Plan


def plan(slug: str = "basic") -> Plan:
    """The plans come from the data migration; tests use those rows."""
    return Plan.objects.get(slug=slug)


class PaymentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Payment

    user = factory.SubFactory(UserFactory)
    plan = factory.LazyFunction(plan)
    amount_cents = factory.LazyAttribute(lambda o: o.plan.price_cents)
    currency = "usd"
    status = Payment.Status.SUCCEEDED
    paid_at = factory.LazyFunction(timezone.now)
    stripe_checkout_session_id = factory.Sequence(lambda n: f"cs_test_{n:08d}")
    stripe_payment_intent_id = factory.Sequence(lambda n: f"pi_test_{n:08d}")
