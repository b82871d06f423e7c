"""The real gateway: Stripe through its official SDK (API version pinned by the SDK)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import TYPE_CHECKING

import stripe
from django.conf import settings
from stripe._api_version import _ApiVersion

from billing.gateways.base import (
    CheckoutSession,
    GatewayError,
    InvoicePayment,
    SubscriptionState,
    subscription_state,
)

if TYPE_CHECKING:
    from billing.models import Payment

# The API version the SDK is pinned to: webhook endpoints are created with it, so events
# arrive shaped as the SDK (and the simulator) expect.
API_VERSION = _ApiVersion.CURRENT

# What the webhook view handles; `manage.py stripe_webhook_endpoint` subscribes to these.
WEBHOOK_EVENTS = (
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "invoice.paid",
    "invoice.payment_failed",
    "charge.refunded",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "charge.dispute.created",
)

# Stripe masks keys in its own messages; this catches any that an SDK or network message
# might still carry, so a GatewayError is always safe to show staff.
_KEY_PATTERN = re.compile(r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]+")
_MESSAGE_LIMIT = 200
REQUEST_TIMEOUT_SECONDS = 20


def make_client(secret_key: str) -> stripe.StripeClient:
    """A client for `secret_key`, at STRIPE_API_BASE when set (a stripe-mock style server).
    The SDK retries connection errors, 409s and 5xx twice with the same idempotency key."""
    base = settings.STRIPE_API_BASE
    return stripe.StripeClient(
        secret_key,
        max_network_retries=2,
        base_addresses={"api": base} if base else None,
        # The SDK waits 80 s by default: a customer at checkout should not.
        http_client=stripe.RequestsClient(timeout=REQUEST_TIMEOUT_SECONDS),
    )


def as_gateway_error(exc: stripe.StripeError, action: str) -> GatewayError:
    """A short, key-free GatewayError for a failed Stripe call; `action` says what we tried."""
    status = exc.http_status or 0
    if isinstance(exc, stripe.APIConnectionError):
        # The SDK's own text here is a paragraph of advice; staff need one line.
        return GatewayError(f"Stripe could not be reached ({action})", retryable=True)
    # A 409 is a lock conflict on Stripe's side: the same request can succeed later.
    retryable = isinstance(exc, stripe.RateLimitError) or status >= 500 or status == 409
    detail = _KEY_PATTERN.sub("[key]", exc.user_message or type(exc).__name__)
    if len(detail) > _MESSAGE_LIMIT:
        detail = detail[: _MESSAGE_LIMIT - 1] + "…"
    code = f" [{exc.code}]" if exc.code else ""
    verb = "could not" if retryable else "refused to"
    return GatewayError(f"Stripe {verb} {action}: {detail}{code}", retryable=retryable)


def _id(value) -> str:
    """An expandable field's id, whether Stripe sent the id or the expanded object."""
    if value is None:
        return ""
    return value if isinstance(value, str) else value.id


class StripeGateway:
    simulated = False

    def __init__(self, secret_key: str):
        if not secret_key:
            raise GatewayError("STRIPE_SECRET_KEY is not set")
        self._client = make_client(secret_key)

    def checkout_session_create(
        self, *, payment: Payment, success_url: str, cancel_url: str
    ) -> CheckoutSession:
        price_id = payment.plan.stripe_price_id
        if not price_id:
            raise GatewayError(
                f"Plan {payment.plan.slug!r} has no Stripe price; run manage.py stripe_sync_plans"
            )
        reference = str(payment.uuid)
        params = {
            "mode": "subscription",
            "line_items": [{"price": price_id, "quantity": 1}],
            "client_reference_id": reference,
            "metadata": {"payment_uuid": reference},
            # Invoices and subscription events carry the subscription's metadata, not the
            # session's; this is how they find their way back to the payment.
            "subscription_data": {"metadata": {"payment_uuid": reference}},
            "customer_email": payment.user.email,
            "success_url": success_url,
            "cancel_url": cancel_url,
        }
        try:
            session = self._client.v1.checkout.sessions.create(
                params, {"idempotency_key": f"checkout-{reference}"}
            )
        except stripe.StripeError as exc:
            raise as_gateway_error(exc, "create a checkout session") from exc
        return CheckoutSession(id=session.id, url=session.url)

    def checkout_session_expire(self, *, session_id: str) -> bool:
        sessions = self._client.v1.checkout.sessions
        try:
            sessions.expire(session_id)
            return True
        except stripe.InvalidRequestError as exc:
            # Stripe refuses to expire a session that is not open; its message does not say
            # whether it was paid or already expired, so ask.
            refusal = exc
        except stripe.StripeError as exc:
            raise as_gateway_error(exc, "expire a checkout session") from exc
        try:
            status = sessions.retrieve(session_id).status
        except stripe.StripeError as exc:
            raise as_gateway_error(exc, "read a checkout session") from exc
        if status == "complete":
            return False
        if status == "expired":
            return True
        raise as_gateway_error(refusal, "expire a checkout session") from refusal

    def checkout_sessions_completed(self, *, since: datetime) -> list[dict]:
        params = {"created": {"gte": int(since.timestamp())}, "status": "complete", "limit": 100}
        try:
            listing = self._client.v1.checkout.sessions.list(params)
            return [session.to_dict() for session in listing.auto_paging_iter()]
        except stripe.StripeError as exc:
            raise as_gateway_error(exc, "list checkout sessions") from exc

    def invoice_payment(self, *, invoice_id: str) -> InvoicePayment | None:
        params = {
            "invoice": invoice_id,
            "status": "paid",
            "expand": ["data.payment.payment_intent"],
        }
        try:
            listing = self._client.v1.invoice_payments.list(params)
        except stripe.StripeError as exc:
            raise as_gateway_error(exc, "read an invoice's payments") from exc
        for invoice_payment in listing.data:
            paid_with = invoice_payment.payment
            if paid_with.type == "payment_intent" and paid_with.payment_intent:
                intent = paid_with.payment_intent
                charge_id = _id(getattr(intent, "latest_charge", None))
                if charge_id:
                    return InvoicePayment(payment_intent_id=_id(intent), charge_id=charge_id)
            elif paid_with.type == "charge" and paid_with.charge:
                # Stripe surfaces a bare charge only when no payment intent is behind it.
                return InvoicePayment(payment_intent_id="", charge_id=_id(paid_with.charge))
        return None

    def refund_create(self, *, payment: Payment) -> str:
        if payment.stripe_payment_intent_id:
            target = {"payment_intent": payment.stripe_payment_intent_id}
        elif payment.stripe_charge_id:
            target = {"charge": payment.stripe_charge_id}
        else:
            raise GatewayError("The payment has no Stripe payment intent or charge to refund")
        refunds = self._client.v1.refunds
        try:
            refund = refunds.create(target, {"idempotency_key": f"refund-{payment.uuid}"})
            return refund.id
        except stripe.StripeError as exc:
            if exc.code != "charge_already_refunded":
                raise as_gateway_error(exc, "refund a payment") from exc
            already = exc
        # Refunded elsewhere (the dashboard, or a call whose idempotency key has expired):
        # the refund that exists is the one to record.
        try:
            existing = refunds.list({**target, "limit": 1}).data
        except stripe.StripeError as exc:
            raise as_gateway_error(exc, "list a payment's refunds") from exc
        if not existing:
            raise as_gateway_error(already, "refund a payment") from already
        return existing[0].id

    def subscription_cancel(self, *, subscription_id: str) -> None:
        subscriptions = self._client.v1.subscriptions
        try:
            # Stripe's defaults, spelled out: no proration credit, no final invoice.
            subscriptions.cancel(subscription_id, {"invoice_now": False, "prorate": False})
            return
        except stripe.InvalidRequestError as exc:
            if exc.code == "resource_missing":
                return
            refusal = exc
        except stripe.StripeError as exc:
            raise as_gateway_error(exc, "cancel a subscription") from exc
        try:
            status = subscriptions.retrieve(subscription_id).status
        except stripe.StripeError as exc:
            raise as_gateway_error(exc, "read a subscription") from exc
        if status != "canceled":
            raise as_gateway_error(refusal, "cancel a subscription") from refusal

    def subscription_retrieve(self, *, subscription_id: str) -> SubscriptionState:
        try:
            subscription = self._client.v1.subscriptions.retrieve(subscription_id)
        except stripe.StripeError as exc:
            raise as_gateway_error(exc, "read a subscription") from exc
        return subscription_state(subscription.to_dict())

    def subscription_cancel_at_period_end(
        self, *, subscription_id: str, cancel: bool
    ) -> SubscriptionState:
        try:
            subscription = self._client.v1.subscriptions.update(
                subscription_id, {"cancel_at_period_end": cancel}
            )
        except stripe.StripeError as exc:
            raise as_gateway_error(exc, "change a subscription") from exc
        return subscription_state(subscription.to_dict())

    def billing_portal_url(self, *, customer_id: str, subscription_id: str, return_url: str) -> str:
        try:
            session = self._client.v1.billing_portal.sessions.create(
                {"customer": customer_id, "return_url": return_url}
            )
        except stripe.StripeError as exc:
            raise as_gateway_error(exc, "open the billing portal") from exc
        return session.url
