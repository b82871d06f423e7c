"""The Stripe objects the simulator sends and answers with, shaped as the pinned API
version shapes them. Ids derive from the Checkout Session's: its customer is
`cus_sim_<hex>`, its subscription `sub_sim_<hex>`, its first invoice `in_sim_<hex>`, and
renewal invoice number n (2, 3, ...) `in_sim_<hex>_<n>` with its payment intent and charge
`pi_sim_<hex>_<n>` and `ch_sim_<hex>_<n>`."""

from __future__ import annotations

import calendar
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.urls import reverse

from billing.gateways.stripe import API_VERSION
from billing.models import SimulatedCheckoutSession, SimulatedInvoice

SESSION_PREFIX = "cs_test_sim_"
SESSION_LIFETIME = timedelta(hours=24)  # Stripe's default `expires_at`


def checkout_url(session_id: str) -> str:
    """Where the customer pays: the simulator's checkout page."""
    return reverse("billing:simulator_checkout", args=[session_id])


def subscription_page_url(row: SimulatedCheckoutSession) -> str:
    """The simulator's stand-in for Stripe's billing portal and hosted invoice page."""
    path = reverse("billing:simulator_subscription", args=[object_id("sub", row)])
    return settings.SITE_URL.rstrip("/") + path


def object_id(prefix: str, row: SimulatedCheckoutSession, number: int = 1) -> str:
    """The id of the session's `prefix` object (`cus`, `sub`, `in`, `pi`, `ch`, `re`);
    `number` picks a renewal invoice's (and its payment's)."""
    base = f"{prefix}_sim_{row.session_id.removeprefix(SESSION_PREFIX)}"
    return base if number == 1 else f"{base}_{number}"


def parse_id(value: str, prefix: str) -> tuple[str, int] | None:
    """The session id and invoice number an `object_id` was made from; None when
    `value` is not one of the simulator's `prefix` ids."""
    head = f"{prefix}_sim_"
    if not value.startswith(head):
        return None
    rest = value.removeprefix(head)
    hex_part, _, number = rest.partition("_")
    if number and not number.isdigit():
        return None
    return SESSION_PREFIX + hex_part, int(number or 1)


def unix(moment: datetime) -> int:
    return int(moment.timestamp())


def next_month(moment: datetime) -> datetime:
    """A monthly subscription's next billing date: same day next month, clamped."""
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def period_end(start: datetime) -> datetime:
    """When a period starting at `start` ends: SIMULATED_BILLING_PERIOD_SECONDS later,
    or a calendar month (Stripe's monthly price) when that is 0."""
    seconds = settings.SIMULATED_BILLING_PERIOD_SECONDS
    return start + timedelta(seconds=seconds) if seconds > 0 else next_month(start)


def metadata(row: SimulatedCheckoutSession) -> dict:
    # The gateway puts the payment's uuid in both places, so one field serves for both.
    return {"payment_uuid": row.client_reference_id}


def event(type_: str, obj: dict, *, created: int, event_id: str = "") -> dict:
    """An event carrying `obj`; a new id unless `event_id` is given."""
    return {
        "id": event_id or f"evt_sim_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "api_version": API_VERSION,
        "created": created,
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": type_,
    }


def session_object(row: SimulatedCheckoutSession) -> dict:
    """A Checkout Session object in subscription mode, as the pinned API version shapes it."""
    created = unix(row.created_at)
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
        "customer": object_id("cus", row) if done else None,
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
        "expires_at": unix(row.created_at + SESSION_LIFETIME),
        "invoice": object_id("in", row) if done else None,
        "invoice_creation": None,
        "livemode": False,
        "locale": None,
        "metadata": metadata(row),
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
        "subscription": object_id("sub", row) if done else None,
        "success_url": row.success_url,
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "ui_mode": "hosted",
        "url": checkout_url(row.session_id) if row.status == "open" else None,
    }


def subscription_object(row: SimulatedCheckoutSession) -> dict:
    """The subscription a paid session started. Since API 2025-03-31 its period lives on
    its one item."""
    end = row.current_period_end or period_end(row.completed_at or row.created_at)
    plan = row.plan
    return {
        "id": object_id("sub", row),
        "object": "subscription",
        "cancel_at_period_end": row.cancel_at_period_end,
        "canceled_at": None,
        "collection_method": "charge_automatically",
        "created": unix(row.completed_at or row.created_at),
        "currency": row.currency,
        "customer": object_id("cus", row),
        "items": {
            "object": "list",
            "data": [
                {
                    "id": object_id("si", row),
                    "object": "subscription_item",
                    "current_period_end": unix(end),
                    "price": {
                        "id": plan.stripe_price_id or f"price_sim_{plan.slug}",
                        "object": "price",
                        "currency": row.currency,
                        "product": f"prod_sim_{plan.slug}",
                        "recurring": {"interval": "month", "interval_count": 1},
                        "unit_amount": row.amount_cents,
                    },
                    "quantity": 1,
                }
            ],
            "has_more": False,
        },
        "latest_invoice": None,
        "livemode": False,
        "metadata": metadata(row),
        "status": row.subscription_status or "incomplete",
    }


def invoice_object(row: SimulatedCheckoutSession, renewal: SimulatedInvoice | None = None) -> dict:
    """The subscription's first invoice (paid), or `renewal`: paid, or open after its
    card was declined. In this API version an invoice names its subscription under
    `parent` and carries no payment intent or charge of its own."""
    if renewal is None:
        number, paid = 1, True
        start = paid_at = row.completed_at or row.created_at
        end, amount = period_end(start), row.amount_cents
        reason, created = "subscription_create", start
    else:
        number, paid, paid_at = renewal.number, renewal.paid, renewal.paid_at
        start, end, amount = renewal.period_start, renewal.period_end, renewal.amount_cents
        reason, created = "subscription_cycle", renewal.created_at
    invoice_id, subscription_id = object_id("in", row, number), object_id("sub", row)
    plan = row.plan
    line = {
        "id": object_id("il", row, number),
        "object": "line_item",
        "amount": amount,
        "currency": row.currency,
        "description": f"1 × {plan.name} (at {row.amount_display} / month)",
        "discountable": True,
        "discounts": [],
        "invoice": invoice_id,
        "livemode": False,
        "metadata": metadata(row),
        "parent": {
            "type": "subscription_item_details",
            "invoice_item_details": None,
            "subscription_item_details": {
                "invoice_item": None,
                "proration": False,
                "proration_details": {"credited_items": None},
                "subscription": subscription_id,
                "subscription_item": object_id("si", row),
            },
        },
        "period": {"start": unix(start), "end": unix(end)},
        "pricing": {
            "type": "price_details",
            "price_details": {
                "price": plan.stripe_price_id or f"price_sim_{plan.slug}",
                "product": f"prod_sim_{plan.slug}",
            },
            "unit_amount_decimal": str(amount),
        },
        "quantity": 1,
        "taxes": [],
    }
    return {
        "id": invoice_id,
        "object": "invoice",
        "account_country": "US",
        "account_name": "Hosting (simulated)",
        "amount_due": amount,
        "amount_overpaid": 0,
        "amount_paid": amount if paid else 0,
        "amount_remaining": 0 if paid else amount,
        "attempt_count": 1,
        "attempted": True,
        "auto_advance": not paid,
        "billing_reason": reason,
        "collection_method": "charge_automatically",
        "created": unix(created),
        "currency": row.currency,
        "customer": object_id("cus", row),
        "customer_email": row.customer_email or None,
        "description": None,
        "hosted_invoice_url": None if paid else subscription_page_url(row),
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
        "number": f"SIM-{row.session_id.removeprefix(SESSION_PREFIX)[:8].upper()}-{number:04d}",
        "parent": {
            "type": "subscription_details",
            "quote_details": None,
            "subscription_details": {
                "metadata": metadata(row),
                "subscription": subscription_id,
            },
        },
        "period_end": unix(start),
        "period_start": unix(start),
        "status": "paid" if paid else "open",
        "status_transitions": {
            "finalized_at": unix(created),
            "marked_uncollectible_at": None,
            "paid_at": unix(paid_at) if paid and paid_at else None,
            "voided_at": None,
        },
        "subtotal": amount,
        "total": amount,
    }


def charge_object(row: SimulatedCheckoutSession) -> dict:
    return {
        "id": object_id("ch", row),
        "object": "charge",
        "amount": row.amount_cents,
        "amount_captured": row.amount_cents,
        "amount_refunded": 0,
        "captured": True,
        "created": unix(row.completed_at or row.created_at),
        "currency": row.currency,
        "customer": object_id("cus", row),
        "description": "Subscription creation",
        "disputed": False,
        "failure_code": None,
        "failure_message": None,
        "livemode": False,
        "metadata": {},
        "paid": True,
        "payment_intent": object_id("pi", row),
        "receipt_email": row.customer_email or None,
        "refunded": False,
        "status": "succeeded",
    }
