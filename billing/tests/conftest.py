import pytest

from billing.tests.stripe_fakes import fake_stripe


@pytest.fixture
def stripe_api(settings):
    """Stripe faked at the HTTP layer (see stripe_fakes); STRIPE_SECRET_KEY is set."""
    with fake_stripe(settings) as api:
        yield api
