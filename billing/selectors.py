from django.shortcuts import get_object_or_404

from billing.models import Payment, Plan, SimulatedCheckoutSession


def active_plans():
    """The plans on sale, cheapest first: one query."""
    return list(Plan.objects.filter(is_active=True).order_by("sort_order", "price_cents"))


def plan_on_sale(slug: str) -> Plan:
    return get_object_or_404(Plan, slug=slug, is_active=True)


def payments_for(user) -> list[Payment]:
    """The customer's payments, newest first, with plan and server: one query."""
    return list(
        Payment.objects.filter(user=user).select_related("plan", "server").order_by("-created_at")
    )


def payment_for(user, payment_uuid) -> Payment:
    """One of the customer's payments, or 404 (another customer's too: no existence leak)."""
    return get_object_or_404(
        Payment.objects.select_related("plan", "server"), uuid=payment_uuid, user=user
    )


def simulated_session_for(user, session_id: str) -> SimulatedCheckoutSession:
    return get_object_or_404(
        SimulatedCheckoutSession.objects.select_related("plan"),
        session_id=session_id,
        customer_email__iexact=user.email,
    )
