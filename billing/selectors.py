from django.db.models import Case, IntegerField, Value, When
from django.shortcuts import get_object_or_404

from billing.models import (
    OVERDUE_STATUSES,
    Payment,
    Plan,
    SimulatedCheckoutSession,
    Subscription,
)
from billing.subscriptions import ENDED_STATUSES
from servers.models import ENDED_SERVER_STATUSES, joined_server_secrets


def active_plans():
    """The plans on sale, cheapest first: one query."""
    return list(Plan.objects.filter(is_active=True).order_by("sort_order", "price_cents"))


def plan_on_sale(slug: str) -> Plan:
    return get_object_or_404(Plan, slug=slug, is_active=True)


# A payment is shown with its plan, the server it bought and the server it renews: their
# secrets are never loaded (each would be decrypted, for every row).
_NOT_SHOWN = joined_server_secrets("server") + joined_server_secrets("renews")


def payments_for(user) -> list[Payment]:
    """The customer's payments (purchases and renewals), newest first, with plan and
    server (the one a purchase bought or a renewal paid for): one query."""
    return list(
        Payment.objects.filter(user=user)
        .select_related("plan", "server", "renews")
        .defer(*_NOT_SHOWN)
        .order_by("-created_at", "-pk")
    )


def payment_for(user, payment_uuid) -> Payment:
    """One of the customer's payments, or 404 (another customer's too: no existence leak)."""
    return get_object_or_404(
        Payment.objects.select_related("plan", "server", "renews").defer(*_NOT_SHOWN),
        uuid=payment_uuid,
        user=user,
    )


def current_subscription_for(user) -> Subscription | None:
    """The subscription the billing page is about: the one whose server is not ended, else
    the newest; with plan and server: one query."""
    server_ended = Case(
        When(server__status__in=ENDED_SERVER_STATUSES, then=Value(1)),
        default=Value(0),
        output_field=IntegerField(),
    )
    return (
        Subscription.objects.filter(user=user)
        .select_related("plan", "server")
        .defer(*joined_server_secrets("server"))
        .order_by(server_ended, "-created_at", "-pk")
        .first()
    )


def subscription_for(user, subscription_pk: int) -> Subscription:
    """One of the customer's subscriptions, or 404 (another customer's too: no existence
    leak)."""
    return get_object_or_404(
        Subscription.objects.select_related("plan", "server").defer(
            *joined_server_secrets("server")
        ),
        pk=subscription_pk,
        user=user,
    )


def subscription_ended(subscription: Subscription) -> bool:
    """Over for good: Stripe ended it, or we acted on its end. Nothing to cancel or resume."""
    return subscription.status in ENDED_STATUSES or subscription.canceled_at is not None


def billing_page_for(user) -> dict:
    """The /billing/ page: the current subscription and every payment, two queries
    whatever the numbers."""
    subscription = current_subscription_for(user)
    page = {"subscription": subscription, "payments": payments_for(user)}
    if subscription is not None:
        page["subscription_ended"] = subscription_ended(subscription)
        page["subscription_overdue"] = subscription.status in OVERDUE_STATUSES
        # Stripe's invoice page (or the simulator's): shown as a link only when it is one.
        pay_url = subscription.pay_url
        page["pay_url"] = pay_url if pay_url.startswith(("https://", "http://")) else ""
    return page


def simulated_session_for(user, session_id: str) -> SimulatedCheckoutSession:
    return get_object_or_404(
        SimulatedCheckoutSession.objects.select_related("plan"),
        session_id=session_id,
        customer_email__iexact=user.email,
    )
