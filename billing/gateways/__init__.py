"""Payment gateways: `get_gateway()` returns Stripe when STRIPE_SECRET_KEY is set and the
offline simulator otherwise. See base.py for the interface."""

from django.conf import settings

from billing.gateways.base import (
    CheckoutSession,
    Gateway,
    GatewayError,
    InvoicePayment,
    SubscriptionState,
)

__all__ = [
    "CheckoutSession",
    "Gateway",
    "GatewayError",
    "InvoicePayment",
    "SubscriptionState",
    "get_gateway",
]


def get_gateway() -> Gateway:
    # Imported here so importing the interface never pulls in the models or the SDK.
    if settings.STRIPE_SECRET_KEY:
        from billing.gateways.stripe import StripeGateway

        return StripeGateway(settings.STRIPE_SECRET_KEY)
    from billing.gateways.simulated import SimulatedGateway

    return SimulatedGateway()
