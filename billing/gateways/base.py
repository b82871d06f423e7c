"""What the billing flows need from a payment provider. Two implementations: `StripeGateway`
(the stripe SDK) and `SimulatedGateway` (offline, Stripe-shaped); `get_gateway()` picks
one from the settings.

Every call that moves money takes an idempotency key derived from our own Payment row, so
a retried call can never charge or refund twice. Calls are made outside any database
transaction; the caller records the result atomically afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from billing.models import Payment


class GatewayError(Exception):
    """The provider refused the request or could not be reached. The message is short and
    safe to show staff (never a key or a card number); `retryable` says whether trying
    again later may succeed."""

    def __init__(self, message: str, *, retryable: bool = False):
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class CheckoutSession:
    id: str
    url: str


@dataclass(frozen=True)
class InvoicePayment:
    """What a paid invoice was paid with: the refund and `charge.refunded` paths need both."""

    payment_intent_id: str
    charge_id: str


@dataclass(frozen=True)
class SubscriptionState:
    """A subscription as the provider says it is now: re-read whenever the order of events
    matters, so a late or repeated event can never set an older state."""

    id: str
    customer_id: str
    status: str
    current_period_end: datetime | None
    cancel_at_period_end: bool


def subscription_state(subscription: dict) -> SubscriptionState:
    """Read a Stripe-shaped subscription object. Since API 2025-03-31 the period lives on
    each item; a subscription with several items renews when the last one does."""
    items = ((subscription.get("items") or {}).get("data")) or []
    ends = [item.get("current_period_end") for item in items if item.get("current_period_end")]
    end = max(ends) if ends else subscription.get("current_period_end")
    customer = subscription.get("customer") or ""
    return SubscriptionState(
        id=subscription["id"],
        customer_id=customer if isinstance(customer, str) else customer.get("id", ""),
        status=subscription.get("status") or "",
        current_period_end=datetime.fromtimestamp(end, tz=UTC) if end else None,
        cancel_at_period_end=bool(subscription.get("cancel_at_period_end")),
    )


class Gateway(Protocol):
    # True for the offline stand-in: pages show the "test mode" banner.
    simulated: bool

    def checkout_session_create(
        self, *, payment: Payment, success_url: str, cancel_url: str
    ) -> CheckoutSession:
        """A Checkout Session in subscription mode for the payment's plan, with the
        payment's uuid as `client_reference_id` and in the session's and subscription's
        metadata (`payment_uuid`). Idempotency key: `checkout-<payment uuid>`."""

    def checkout_session_expire(self, *, session_id: str) -> bool:
        """Close an open session so it can no longer be paid. True when it is now
        expired (or already was); False when the customer already completed it."""

    def checkout_sessions_completed(self, *, since: datetime) -> list[dict]:
        """Completed Checkout Sessions created since `since`, as Stripe-shaped dicts
        (the `data.object` of a `checkout.session.completed` event)."""

    def invoice_payment(self, *, invoice_id: str) -> InvoicePayment | None:
        """The payment intent and charge that paid the invoice; None when it is not paid."""

    def refund_create(self, *, payment: Payment) -> str:
        """Refund the payment in full and return the refund id. Idempotency key:
        `refund-<payment uuid>`; a payment Stripe already refunded returns that refund's id
        instead of failing."""

    def subscription_cancel(self, *, subscription_id: str) -> None:
        """Cancel at once, without proration. Cancelling one already cancelled, or one
        Stripe no longer knows, succeeds."""

    def subscription_retrieve(self, *, subscription_id: str) -> SubscriptionState:
        """The subscription as it is now (canceled ones too)."""

    def subscription_cancel_at_period_end(
        self, *, subscription_id: str, cancel: bool
    ) -> SubscriptionState:
        """End the subscription when its period ends (`cancel`), or keep it renewing
        (`cancel=False`, the customer's "Resume"); the subscription as it is now."""

    def billing_portal_url(self, *, customer_id: str, subscription_id: str, return_url: str) -> str:
        """Where the customer updates their card and pays what is due: a Stripe billing
        portal session (the simulator: its own page), coming back to `return_url`."""
