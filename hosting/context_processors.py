from functools import cached_property

from django.conf import settings
from django.utils import timezone

from billing.models import suspension_due


class PaymentOverdue:
    """The past-due banner's facts, read from the user row every authenticated page has
    already loaded: no query of its own. Lazy, so a page that never shows the banner (the
    500 page, which must not touch the user or the database) never looks at the user."""

    def __init__(self, request):
        self._request = request

    @cached_property
    def since(self):
        user = getattr(self._request, "user", None)
        if user is None or not user.is_authenticated:
            return None
        return user.payment_overdue_since

    def __bool__(self):
        return self.since is not None

    @property
    def suspends_at(self):
        """When the grace period ends and the suspension job powers the server off."""
        return suspension_due(self.since)

    @property
    def suspended(self) -> bool:
        return timezone.now() >= self.suspends_at


def site(request):
    """What every page needs: whether a simulator stands in for Stripe or DigitalOcean, and
    whether the customer's renewal payment is past due."""
    return {
        "test_mode": not settings.STRIPE_SECRET_KEY or not settings.DIGITALOCEAN_TOKEN,
        "payment_overdue": PaymentOverdue(request),
    }
