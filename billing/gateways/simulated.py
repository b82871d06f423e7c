"""The offline stand-in for Stripe. Sessions live in `SimulatedCheckoutSession`; every other
Stripe object (customer, subscription, invoice, payment intent, charge, refund) is derived
from the session id, so the same session always yields the same ids.

`complete()` is the simulator's checkout page pressing Pay: it returns the events Stripe
would send, shaped as the pinned API version shapes them, for the caller to sign with
`sign()` and post through the real webhook view.
"""

from __future__ import annotations

import calendar
import hashlib
import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import stripe
from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from billing.gateways.base import (
    CheckoutSession,
    GatewayError,
    InvoicePayment,
    SubscriptionState,
)
from billing.gateways.stripe import API_VERSION
from billing.models import SimulatedCheckoutSession

if TYPE_CHECKING:
    from billing.models import Payment

SESSION_PREFIX = "cs_test_sim_"
SESSION_LIFETIME = timedelta(hours=24)  # Stripe's default `expires_at`


def sign(payload: bytes) -> str:
    """The `Stripe-Signature` header Stripe would send with `payload`, signed now with
    STRIPE_WEBHOOK_SECRET, so the webhook view verifies it exactly as a real one."""
    return stripe.WebhookSignature.generate_signature_header(
        payload.decode("utf-8"), settings.STRIPE_WEBHOOK_SECRET
    )


def charge_refunded_event(session: SimulatedCheckoutSession) -> dict:
    """The `charge.refunded` event Stripe sends once the session's payment is refunded."""
    if not session.refund_id:
        raise ValueError(f"{session.session_id} has not been refunded")
    now = _unix(timezone.now())
    charge = {
        **_charge(session),
        "amount_refunded": session.amount_cents,
        "refunded": True,
    }
    return _event(session, "charge.refunded", charge, created=now)


class SimulatedGateway:
    simulated = True

    def checkout_session_create(
        self, *, payment: Payment, success_url: str, cancel_url: str
    ) -> CheckoutSession:
        key = f"checkout-{payment.uuid}"
        row = SimulatedCheckoutSession.objects.filter(idempotency_key=key).first()
        if row is None:
            try:
                with transaction.atomic():
                    row = SimulatedCheckoutSession.objects.create(
                        session_id=SESSION_PREFIX + uuid.uuid4().hex,
                        idempotency_key=key,
                        client_reference_id=str(payment.uuid),
                        plan=payment.plan,
                        amount_cents=payment.amount_cents,
                        currency=payment.currency,
                        customer_email=payment.user.email,
                        success_url=success_url,
                        cancel_url=cancel_url,
                    )
            except IntegrityError:
                # A concurrent call with the same key won; Stripe would replay its answer.
                row = SimulatedCheckoutSession.objects.get(idempotency_key=key)
        return CheckoutSession(id=row.session_id, url=checkout_url(row.session_id))

    def checkout_session_expire(self, *, session_id: str) -> bool:
        with transaction.atomic():
            row = _locked(session_id)
            if row.status == "open":
                row.status = "expired"
                row.save(update_fields=["status"])
            return row.status == "expired"

    def checkout_sessions_completed(self, *, since: datetime) -> list[dict]:
        rows = SimulatedCheckoutSession.objects.filter(status="complete", created_at__gte=since)
        return [_session(row) for row in rows.select_related("plan").order_by("-created_at")]

    def invoice_payment(self, *, invoice_id: str) -> InvoicePayment | None:
        row = _row_for(invoice_id, "in")
        if row is None or row.payment_status != "paid":
            return None
        return InvoicePayment(payment_intent_id=_sim("pi", row), charge_id=_sim("ch", row))

    def refund_create(self, *, payment: Payment) -> str:
        if payment.stripe_payment_intent_id:
            row = _row_for(payment.stripe_payment_intent_id, "pi")
        elif payment.stripe_charge_id:
            row = _row_for(payment.stripe_charge_id, "ch")
        else:
            raise GatewayError("The payment has no Stripe payment intent or charge to refund")
        if row is None:
            # A payment the simulator never took (the demo data's): no money moves here,
            # so refund it all the same, with an id as stable as the payment's.
            return "re_sim_" + hashlib.sha256(str(payment.uuid).encode()).hexdigest()[:24]
        with transaction.atomic():
            row = _locked(row.session_id)
            if row.payment_status != "paid":
                raise GatewayError("The simulator cannot refund a payment that was never paid")
            if not row.refund_id:
                row.refund_id = _sim("re", row)
                row.save(update_fields=["refund_id"])
        return row.refund_id

    def subscription_cancel(self, *, subscription_id: str) -> None:
        # Simulated subscriptions never bill again, so there is nothing to stop.
        return None

    def subscription_retrieve(self, *, subscription_id: str) -> SubscriptionState:
        # Simulated subscriptions do not renew yet: each stays in its first month, active
        # while its payment stands, canceled once refunded.
        row = _row_for(subscription_id, "sub")
        if row is None or row.payment_status != "paid":
            raise GatewayError(f"No such subscription: {subscription_id}")
        return SubscriptionState(
            id=subscription_id,
            customer_id=_sim("cus", row),
            status="canceled" if row.refund_id else "active",
            current_period_end=_next_month(row.completed_at or row.created_at),
            cancel_at_period_end=False,
        )

    def complete(self, session_id: str, *, decline: bool = False) -> list[dict]:
        """Pay (or fail to pay) the session and return the events Stripe would send, in
        order. Completing a completed session returns the same events with the same ids,
        so a double-clicked Pay button is a redelivery the webhook ignores."""
        with transaction.atomic():
            row = _locked(session_id)
            if row.status == "expired":
                raise GatewayError("This checkout session has expired")
            if row.status == "open":
                row.status = "complete"
                row.payment_status = "unpaid" if decline else "paid"
                row.completed_at = timezone.now()
                row.save(update_fields=["status", "payment_status", "completed_at"])
        created = _unix(row.completed_at)
        session = _session(row)
        events = [_event(row, "checkout.session.completed", session, created=created)]
        if row.payment_status == "paid":
            events.append(_event(row, "invoice.paid", _invoice(row), created=created))
        else:
            # What Stripe sends when a delayed payment method (a bank debit) fails.
            failed = "checkout.session.async_payment_failed"
            events.append(_event(row, failed, session, created=created))
        return events


def checkout_url(session_id: str) -> str:
    """Where the customer pays: the simulator's checkout page."""
    return reverse("billing:simulator_checkout", args=[session_id])


def _locked(session_id: str) -> SimulatedCheckoutSession:
    try:
        return (
            SimulatedCheckoutSession.objects.select_for_update()
            .select_related("plan")
            .get(session_id=session_id)
        )
    except SimulatedCheckoutSession.DoesNotExist:
        raise GatewayError(f"No such checkout session: {session_id}") from None


def _hex(row: SimulatedCheckoutSession) -> str:
    return row.session_id.removeprefix(SESSION_PREFIX)


def _sim(prefix: str, row: SimulatedCheckoutSession) -> str:
    """The id of the session's `prefix` object (`cus`, `sub`, `in`, `pi`, `ch`, `re`)."""
    return f"{prefix}_sim_{_hex(row)}"


def _row_for(object_id: str, prefix: str) -> SimulatedCheckoutSession | None:
    head = f"{prefix}_sim_"
    if not object_id.startswith(head):
        return None
    session_id = SESSION_PREFIX + object_id.removeprefix(head)
    return SimulatedCheckoutSession.objects.filter(session_id=session_id).first()


def _unix(moment: datetime) -> int:
    return int(moment.timestamp())


def _next_month(moment: datetime) -> datetime:
    """A monthly subscription's next billing date: same day next month, clamped."""
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def _metadata(row: SimulatedCheckoutSession) -> dict:
    # The gateway puts the payment's uuid in both places, so one field serves for both.
    return {"payment_uuid": row.client_reference_id}


def _event(row: SimulatedCheckoutSession, type_: str, obj: dict, *, created: int) -> dict:
    digest = hashlib.sha256(f"{row.session_id}:{type_}".encode()).hexdigest()[:24]
    return {
        "id": f"evt_sim_{digest}",
        "object": "event",
        "api_version": API_VERSION,
        "created": created,
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": type_,
    }


def _session(row: SimulatedCheckoutSession) -> dict:
    """A Checkout Session object in subscription mode, as the pinned API version shapes it."""
    created = _unix(row.created_at)
    done = row.status == "complete"
    return {
        "id": row.session_id,
        "object": "checkout.session",
        "after_expiration": None,
        "allow_promotion_codes": None,
        "amount_subtotal": row.amount_cents,
        "amount_total": row.amount_cents,
        "automatic_tax": {"enabled": False, "liability": None, "provider": None, "status": None},
        "billing_address_collection": None,
        "cancel_url": row.cancel_url,
        "client_reference_id": row.client_reference_id,
        "client_secret": None,
        "consent": None,
        "consent_collection": None,
        "created": created,
        "currency": row.currency,
        "custom_fields": [],
        "custom_text": {
            "after_submit": None,
            "shipping_address": None,
            "submit": None,
            "terms_of_service_acceptance": None,
        },
        "customer": _sim("cus", row) if done else None,
        "customer_creation": "always",
        "customer_details": (
            {
                "address": None,
                "email": row.customer_email,
                "name": None,
                "phone": None,
                "tax_exempt": "none",
                "tax_ids": [],
            }
            if done
            else None
        ),
        "customer_email": row.customer_email or None,
        "discounts": [],
        "expires_at": _unix(row.created_at + SESSION_LIFETIME),
        "invoice": _sim("in", row) if done else None,
        "invoice_creation": None,
        "livemode": False,
        "locale": None,
        "metadata": _metadata(row),
        "mode": "subscription",
        "payment_intent": None,
        "payment_link": None,
        "payment_method_collection": "always",
        "payment_method_types": ["card"],
        "payment_status": row.payment_status,
        "phone_number_collection": {"enabled": False},
        "setup_intent": None,
        "status": row.status,
        "submit_type": None,
        "subscription": _sim("sub", row) if done else None,
        "success_url": row.success_url,
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "ui_mode": "hosted",
        "url": checkout_url(row.session_id) if row.status == "open" else None,
    }


def _invoice(row: SimulatedCheckoutSession) -> dict:
    """The subscription's first invoice, paid. In this API version an invoice names its
    subscription under `parent` and carries no payment intent or charge of its own."""
    paid_at = row.completed_at or row.created_at
    period_start, period_end = _unix(paid_at), _unix(_next_month(paid_at))
    invoice_id, subscription_id = _sim("in", row), _sim("sub", row)
    plan = row.plan
    line = {
        "id": _sim("il", row),
        "object": "line_item",
        "amount": row.amount_cents,
        "currency": row.currency,
        "description": f"1 × {plan.name} (at {row.amount_display} / month)",
        "discountable": True,
        "discounts": [],
        "invoice": invoice_id,
        "livemode": False,
        "metadata": _metadata(row),
        "parent": {
            "type": "subscription_item_details",
            "invoice_item_details": None,
            "subscription_item_details": {
                "invoice_item": None,
                "proration": False,
                "proration_details": {"credited_items": None},
                "subscription": subscription_id,
                "subscription_item": _sim("si", row),
            },
        },
        "period": {"start": period_start, "end": period_end},
        "pricing": {
            "type": "price_details",
            "price_details": {
                "price": plan.stripe_price_id or f"price_sim_{plan.slug}",
                "product": f"prod_sim_{plan.slug}",
            },
            "unit_amount_decimal": str(row.amount_cents),
        },
        "quantity": 1,
        "taxes": [],
    }
    return {
        "id": invoice_id,
        "object": "invoice",
        "account_country": "US",
        "account_name": "Hosting (simulated)",
        "amount_due": row.amount_cents,
        "amount_overpaid": 0,
        "amount_paid": row.amount_cents,
        "amount_remaining": 0,
        "attempt_count": 1,
        "attempted": True,
        "auto_advance": False,
        "billing_reason": "subscription_create",
        "collection_method": "charge_automatically",
        "created": period_start,
        "currency": row.currency,
        "customer": _sim("cus", row),
        "customer_email": row.customer_email or None,
        "description": None,
        "hosted_invoice_url": None,
        "invoice_pdf": None,
        "lines": {
            "object": "list",
            "data": [line],
            "has_more": False,
            "total_count": 1,
            "url": f"/v1/invoices/{invoice_id}/lines",
        },
        "livemode": False,
        "metadata": {},
        "number": f"SIM-{_hex(row)[:8].upper()}-0001",
        "parent": {
            "type": "subscription_details",
            "quote_details": None,
            "subscription_details": {
                "metadata": _metadata(row),
                "subscription": subscription_id,
            },
        },
        "period_end": period_start,
        "period_start": period_start,
        "status": "paid",
        "status_transitions": {
            "finalized_at": period_start,
            "marked_uncollectible_at": None,
            "paid_at": period_start,
            "voided_at": None,
        },
        "subtotal": row.amount_cents,
        "total": row.amount_cents,
    }


def _charge(row: SimulatedCheckoutSession) -> dict:
    return {
        "id": _sim("ch", row),
        "object": "charge",
        "amount": row.amount_cents,
        "amount_captured": row.amount_cents,
        "amount_refunded": 0,
        "captured": True,
        "created": _unix(row.completed_at or row.created_at),
        "currency": row.currency,
        "customer": _sim("cus", row),
        "description": "Subscription creation",
        "disputed": False,
        "failure_code": None,
        "failure_message": None,
        "livemode": False,
        "metadata": {},
        "paid": True,
        "payment_intent": _sim("pi", row),
        "receipt_email": row.customer_email or None,
        "refunded": False,
        "status": "succeeded",
    }
