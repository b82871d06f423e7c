"""Stripe's webhook events: verified, stored whole, then acted on exactly once.

The event row is inserted first; a redelivered id finds it processed and does nothing.
Concurrent deliveries of one event serialise on that row's lock, and every handler locks
the payment it changes, so events may arrive duplicated, in any order and at once and the
end state is the same. An event that names a payment we cannot find yet is kept with the
reason and processed again by reconciliation.
"""

from __future__ import annotations

import enum
import json
import logging
import math
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import stripe
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from billing import services, subscriptions
from billing.gateways import GatewayError, InvoicePayment, SubscriptionState, get_gateway
from billing.models import Payment, StripeEvent
from hosting import tenant

logger = logging.getLogger(__name__)

TOLERANCE_SECONDS = 300
PAID_SESSION_STATUSES = {"paid", "no_payment_required"}
FIRST_INVOICE = "subscription_create"
RENEWAL_INVOICE = "subscription_cycle"


class WebhookRejected(Exception):
    """Not a genuine, well-formed Stripe event: answered 400 with this short reason."""


class NotReady(Exception):
    """The event is genuine but names something we do not know (yet)."""


class Outcome(enum.Enum):
    PROCESSED = "processed"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"  # a type we do not act on: stored, answered 200
    WAITING = "waiting"  # kept with the reason; reconciliation tries again
    UNAVAILABLE = "unavailable"  # Stripe could not be asked: Stripe should redeliver
    FAILED = "failed"  # our bug: stored with the error; Stripe should redeliver

    @property
    def http_status(self) -> int:
        return {Outcome.UNAVAILABLE: 503, Outcome.FAILED: 500}.get(self, 200)


# The object each handled type carries, and the prefix of its id.
HANDLED = {
    "checkout.session.completed": ("checkout.session", "cs_"),
    "checkout.session.async_payment_succeeded": ("checkout.session", "cs_"),
    "checkout.session.async_payment_failed": ("checkout.session", "cs_"),
    "invoice.paid": ("invoice", "in_"),
    "invoice.payment_failed": ("invoice", "in_"),
    "charge.refunded": ("charge", "ch_"),
    "customer.subscription.updated": ("subscription", "sub_"),
    "customer.subscription.deleted": ("subscription", "sub_"),
    "charge.dispute.created": ("dispute", "dp_"),
}


def stripe_event_verify(*, body: bytes, signature: str) -> dict:
    """The event, when `signature` proves Stripe sent `body` within the tolerance and the
    body has the shape we act on; otherwise WebhookRejected with the reason."""
    if not signature:
        raise WebhookRejected("missing Stripe-Signature header")
    try:
        text = body.decode("utf-8")
        stripe.WebhookSignature.verify_header(
            text, signature, settings.STRIPE_WEBHOOK_SECRET, TOLERANCE_SECONDS
        )
    except UnicodeDecodeError as exc:
        raise WebhookRejected("body is not UTF-8") from exc
    except stripe.SignatureVerificationError as exc:
        if "tolerance" in str(exc).lower():
            raise WebhookRejected("timestamp outside the tolerance") from exc
        raise WebhookRejected("bad signature") from exc
    try:
        event = json.loads(text, parse_constant=_not_json, parse_float=_finite)
    except (ValueError, RecursionError) as exc:  # nested too deep to read: RecursionError
        raise WebhookRejected("malformed JSON") from exc
    _check_shape(event)
    _check_storable(event)
    return event


def _not_json(constant: str):
    """NaN and Infinity: Python reads them, JSON (and PostgreSQL's jsonb) has no such thing."""
    raise ValueError(f"{constant} is not JSON")


def _finite(number: str) -> float:
    value = float(number)
    if not math.isfinite(value):  # 1e999: jsonb could not store the infinity it reads as
        raise ValueError(f"{number} is out of range")
    return value


def _check_storable(event: dict) -> None:
    """A NUL character or half a surrogate pair can be written in JSON (\\u0000, \\ud800)
    but not stored in jsonb: the insert would fail, answered 500 and redelivered for days.
    Stripe sends neither; refuse them like any other malformed body."""
    pending = [event]
    while pending:  # not recursive: json.loads has already read it as deep as Python can
        value = pending.pop()
        if isinstance(value, dict):
            pending.extend(value)
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
        elif isinstance(value, str) and ("\x00" in value or _has_lone_surrogate(value)):
            raise WebhookRejected("event with a NUL character or half a surrogate pair")


def _has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")  # json.loads joins a pair; only a lone half is left unencodable
    except UnicodeEncodeError:
        return True
    return False


def _check_shape(event) -> None:
    if not isinstance(event, dict) or event.get("object") != "event":
        raise WebhookRejected("not a Stripe event")
    event_id, event_type = event.get("id"), event.get("type")
    if not (isinstance(event_id, str) and event_id.startswith("evt_") and len(event_id) < 255):
        raise WebhookRejected("event without a valid id")
    if not (isinstance(event_type, str) and 0 < len(event_type) < 128):
        raise WebhookRejected("event without a type")
    obj = (event.get("data") or {}).get("object") if isinstance(event.get("data"), dict) else None
    if not isinstance(obj, dict):
        raise WebhookRejected("event without data.object")
    if event_type in HANDLED:
        kind, prefix = HANDLED[event_type]
        object_id = obj.get("id")
        if obj.get("object") != kind or not (
            isinstance(object_id, str) and object_id.startswith(prefix)
        ):
            raise WebhookRejected(f"{event_type} does not carry a {kind}")
        _check_fields(event_type, kind, obj)


@dataclass(frozen=True)
class _Field:
    what: str
    fits: Callable[[object], bool]


_ID = _Field("an id", lambda v: isinstance(v, str) and len(v) <= 255)
_TEXT = _Field("text", lambda v: isinstance(v, str))
_CURRENCY = _Field(
    "a currency code", lambda v: isinstance(v, str) and bool(re.fullmatch("[a-z]{3}", v))
)
_AMOUNT = _Field("an amount in cents", lambda v: type(v) is int and 0 <= v < 2**31)
_TIME = _Field("a time", lambda v: type(v) is int and 0 <= v <= 253_402_300_799)  # to 9999
_OBJECT = _Field("an object", lambda v: isinstance(v, dict))
_LIST = _Field("a list", lambda v: isinstance(v, list))

# What the handlers (and the services they call) read from each kind of object, as
# Stripe's API shapes it; absent or null is always allowed. A signed event with anything
# else there is refused like any malformed body, before it is stored: in its handler it
# would fail, answered 500 and redelivered for days. "[]": each element of a list.
FIELDS = {
    "checkout.session": {
        "id": _ID,
        "payment_status": _TEXT,
        "metadata": _OBJECT,
        "customer": _ID,
        "subscription": _ID,
        "invoice": _ID,
    },
    "invoice": {
        "id": _ID,
        "billing_reason": _TEXT,
        "customer": _ID,
        "currency": _CURRENCY,
        "amount_paid": _AMOUNT,
        "amount_due": _AMOUNT,
        "hosted_invoice_url": _TEXT,
        "parent": _OBJECT,
        "parent.subscription_details": _OBJECT,
        "parent.subscription_details.metadata": _OBJECT,
        "parent.subscription_details.subscription": _ID,
        "status_transitions": _OBJECT,
        "status_transitions.paid_at": _TIME,
        "lines": _OBJECT,
        "lines.data": _LIST,
        "lines.data[]": _OBJECT,
        "lines.data[].period": _OBJECT,
        "lines.data[].period.end": _TIME,
    },
    "charge": {
        "id": _ID,
        "payment_intent": _ID,
        "refunds": _OBJECT,
        "refunds.data": _LIST,
        "refunds.data[]": _OBJECT,
        "refunds.data[].id": _ID,
    },
    "subscription": {"id": _ID},
    "dispute": {"id": _ID, "charge": _ID, "payment_intent": _ID, "reason": _TEXT},
}


def _check_fields(event_type: str, kind: str, obj: dict) -> None:
    # In order, so a parent's type is checked before its children are looked for.
    for path, field in FIELDS[kind].items():
        if not all(field.fits(value) for value in _values_at(obj, path)):
            raise WebhookRejected(f"{event_type}: {kind}.{path} is not {field.what}")


def _values_at(obj: dict, path: str) -> list:
    """The values at a path such as "lines.data[].period" (absent and null ones left out)."""
    values = [obj]
    for step in path.split("."):
        key = step.removesuffix("[]")
        values = [value[key] for value in values if value.get(key) is not None]
        if step.endswith("[]"):  # the list itself was checked as the path before this one
            values = [element for elements in values for element in elements]
        values = [value for value in values if value is not None]
    return values


def stripe_event_receive(*, event: dict) -> Outcome:
    """Store a verified event (once) and act on it (once)."""
    # Stripe speaks for the system, not for a customer: an event touches whichever
    # customer's payment, server and subscription it names (the webhook's request is
    # anonymous, and the simulator delivers from a customer's request).
    with tenant.system_scope():
        row = _event_store(event)
        if row.processed_at is not None:
            return Outcome.DUPLICATE
        return _event_process(row.pk)


def stripe_event_process_again(*, event: StripeEvent) -> Outcome:
    """Staff's "Process again", and reconciliation's retry of waiting events. Handlers are
    idempotent, so an event already processed changes nothing it has not changed."""
    return _event_process(event.pk, force=True)


def _event_store(event: dict) -> StripeEvent:
    with transaction.atomic():
        # ON CONFLICT DO NOTHING: a concurrent delivery waits for ours, then finds it.
        StripeEvent.objects.bulk_create(
            [StripeEvent(event_id=event["id"], type=event["type"], payload=event)],
            ignore_conflicts=True,
        )
    return StripeEvent.objects.get(event_id=event["id"])


def _event_process(row_id: int, *, force: bool = False) -> Outcome:
    payload = StripeEvent.objects.values_list("payload", flat=True).get(pk=row_id)
    started = time.monotonic()
    try:
        prefetched = _prefetch(payload)
    except GatewayError as exc:
        _event_note(row_id, started, error=f"Stripe unavailable: {exc}")
        return Outcome.UNAVAILABLE
    with transaction.atomic():
        row = StripeEvent.objects.select_for_update().get(pk=row_id)
        if row.processed_at is not None and not force:
            return Outcome.DUPLICATE
        handler = HANDLERS.get(row.type)
        outcome = Outcome.IGNORED if handler is None else Outcome.PROCESSED
        error = ""
        try:
            with transaction.atomic():  # a savepoint: a failed handler changes nothing
                if handler is not None:
                    payment = handler(row.payload["data"]["object"], prefetched)
                    row.payment_id = payment.pk if payment is not None else row.payment_id
        except NotReady as exc:
            outcome, error = Outcome.WAITING, str(exc)
        except Exception as exc:
            logger.exception("Stripe event %s (%s) failed", row.event_id, row.type)
            outcome, error = Outcome.FAILED, f"{type(exc).__name__}: {exc}"[:2000]
        row.attempts += 1
        row.error = error
        row.processing_ms = int((time.monotonic() - started) * 1000)
        if outcome in (Outcome.PROCESSED, Outcome.IGNORED):
            row.processed_at = timezone.now()
        row.save(update_fields=["attempts", "error", "processing_ms", "processed_at", "payment"])
    return outcome


def _event_note(row_id: int, started: float, *, error: str) -> None:
    StripeEvent.objects.filter(pk=row_id, processed_at__isnull=True).update(
        error=error, processing_ms=int((time.monotonic() - started) * 1000)
    )


@dataclass(frozen=True)
class Prefetched:
    invoice_payment: InvoicePayment | None = None
    # The subscription as Stripe has it now, for the events whose order matters.
    subscription: SubscriptionState | None = None


def _invoice_subscription_id(invoice: dict) -> str:
    details = (invoice.get("parent") or {}).get("subscription_details") or {}
    return details.get("subscription") or ""


def _prefetch(event: dict) -> Prefetched:
    """Reads from Stripe that a handler needs, made before any row is locked."""
    obj, event_type = event["data"]["object"], event["type"]
    gateway = get_gateway()
    reason = obj.get("billing_reason")
    if event_type.startswith("customer.subscription."):
        subscription_id = obj["id"]
    elif event_type in ("invoice.paid", "invoice.payment_failed") and reason == RENEWAL_INVOICE:
        subscription_id = _invoice_subscription_id(obj)
    else:
        subscription_id = ""
    paid_with = None
    if event_type == "invoice.paid" and reason in (FIRST_INVOICE, RENEWAL_INVOICE):
        paid_with = gateway.invoice_payment(invoice_id=obj["id"])
    state = None
    if subscription_id:
        state = gateway.subscription_retrieve(subscription_id=subscription_id)
    return Prefetched(invoice_payment=paid_with, subscription=state)


# --- finding the payment --------------------------------------------------------------


def _as_uuid(value) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def _locked(**lookup) -> Payment | None:
    return Payment.objects.select_for_update().filter(**lookup).first()


def payment_for_session(session: dict) -> Payment:
    payment = _locked(stripe_checkout_session_id=session["id"])
    if payment is None:
        metadata = session.get("metadata") or {}
        for candidate in (session.get("client_reference_id"), metadata.get("payment_uuid")):
            payment_uuid = _as_uuid(candidate)
            if payment_uuid and (payment := _locked(uuid=payment_uuid)):
                break
    if payment is None:
        raise NotReady(f"No payment for Checkout Session {session['id']}.")
    return payment


def _payment_for_invoice(invoice: dict) -> Payment:
    details = (invoice.get("parent") or {}).get("subscription_details") or {}
    payment_uuid = _as_uuid((details.get("metadata") or {}).get("payment_uuid"))
    payment = _locked(uuid=payment_uuid) if payment_uuid else None
    payment = payment or _locked(stripe_invoice_id=invoice["id"])
    if payment is None and details.get("subscription"):
        payment = _locked(stripe_subscription_id=details["subscription"])
    if payment is None:
        raise NotReady(f"No payment for invoice {invoice['id']}.")
    return payment


def _payment_for_charge(charge: dict) -> Payment:
    payment = _locked(stripe_charge_id=charge["id"]) if charge["id"] else None
    if payment is None and charge.get("payment_intent"):
        payment = _locked(stripe_payment_intent_id=charge["payment_intent"])
    if payment is None:
        raise NotReady(f"No payment for charge {charge['id']} yet.")
    return payment


# --- handlers: each runs inside the event's transaction -------------------------------


def _session_ids(session: dict) -> dict[str, str]:
    def text(key):
        value = session.get(key)
        return value if isinstance(value, str) else ""

    return {
        "stripe_checkout_session_id": session["id"],
        "stripe_customer_id": text("customer"),
        "stripe_subscription_id": text("subscription"),
        "stripe_invoice_id": text("invoice"),
    }


def on_session_completed(session: dict, prefetched: Prefetched) -> Payment:
    payment = payment_for_session(session)
    services.payment_record_stripe_ids(payment, **_session_ids(session))
    if session.get("payment_status") in PAID_SESSION_STATUSES:
        services.payment_fulfil(payment=payment)
    services.payment_subscription_ensure(payment=payment)
    return payment


def on_session_async_succeeded(session: dict, prefetched: Prefetched) -> Payment:
    payment = payment_for_session(session)
    services.payment_record_stripe_ids(payment, **_session_ids(session))
    services.payment_fulfil(payment=payment)
    return payment


def on_session_async_failed(session: dict, prefetched: Prefetched) -> Payment:
    payment = payment_for_session(session)
    services.payment_record_stripe_ids(payment, **_session_ids(session))
    services.payment_fail(
        payment=payment, reason="Your bank declined the payment. Nothing was charged."
    )
    return payment


def _subscription(subscription_id: str):
    try:
        return subscriptions.subscription_locked(subscription_id)
    except subscriptions.SubscriptionUnknown as exc:
        raise NotReady(str(exc)) from exc


def on_invoice_paid(invoice: dict, prefetched: Prefetched) -> Payment | None:
    if invoice.get("billing_reason") == RENEWAL_INVOICE:
        return on_renewal_paid(invoice, prefetched)
    if invoice.get("billing_reason") != FIRST_INVOICE:
        return None  # a one-off or a plan change's invoice: nothing to do
    payment = _payment_for_invoice(invoice)
    details = (invoice.get("parent") or {}).get("subscription_details") or {}
    paid_with = prefetched.invoice_payment
    services.payment_record_stripe_ids(
        payment,
        stripe_invoice_id=invoice["id"],
        stripe_customer_id=invoice.get("customer") or "",
        stripe_subscription_id=details.get("subscription") or "",
        stripe_payment_intent_id=paid_with.payment_intent_id if paid_with else "",
        stripe_charge_id=paid_with.charge_id if paid_with else "",
    )
    services.payment_fulfil(payment=payment)
    services.payment_subscription_ensure(payment=payment, period_end=_invoice_period_end(invoice))
    return payment


def _invoice_period_end(invoice: dict) -> datetime | None:
    """When the period a first invoice paid for ends: its subscription lines' latest end."""
    lines = ((invoice.get("lines") or {}).get("data")) or []
    ends = [(line.get("period") or {}).get("end") for line in lines]
    ends = [end for end in ends if isinstance(end, int)]
    return datetime.fromtimestamp(max(ends), tz=UTC) if ends else None


def on_renewal_paid(invoice: dict, prefetched: Prefetched) -> Payment | None:
    """A month paid: a renewal Payment, the period extended, a suspension lifted."""
    subscription = _subscription(_invoice_subscription_id(invoice))
    payment = subscriptions.renewal_record(
        subscription, invoice=invoice, paid_with=prefetched.invoice_payment
    )
    if prefetched.subscription is not None:
        subscriptions.subscription_apply(subscription, prefetched.subscription)
    return payment


def on_invoice_payment_failed(invoice: dict, prefetched: Prefetched) -> None:
    if invoice.get("billing_reason") != RENEWAL_INVOICE or prefetched.subscription is None:
        return None  # a first payment that fails is the checkout's, shown there
    subscription = _subscription(prefetched.subscription.id)
    subscriptions.payment_failure_record(
        subscription, invoice=invoice, state=prefetched.subscription
    )
    return None


def on_subscription_changed(subscription_object: dict, prefetched: Prefetched) -> None:
    """`updated` and `deleted` alike: apply the state Stripe has now, not the event's."""
    subscription = _subscription(subscription_object["id"])
    subscriptions.subscription_apply(subscription, prefetched.subscription)
    return None


def on_dispute_created(dispute: dict, prefetched: Prefetched) -> Payment:
    """A chargeback: the payment is flagged, staff are mailed, the audit trail says so.
    Nothing else changes: staff decide what to do."""
    charge = {"id": dispute.get("charge") or "", "payment_intent": dispute.get("payment_intent")}
    payment = _payment_for_charge(charge)
    services.payment_dispute_record(
        payment=payment, dispute_id=dispute["id"], reason=dispute.get("reason") or ""
    )
    return payment


def on_charge_refunded(charge: dict, prefetched: Prefetched) -> Payment | None:
    if not charge.get("refunded"):
        return None  # a partial refund: staff handle those by hand
    payment = _payment_for_charge(charge)
    if payment.status == Payment.Status.REFUNDED:
        return payment
    if payment.status != Payment.Status.SUCCEEDED:
        raise NotReady(f"Payment for charge {charge['id']} is {payment.status}, not paid.")
    refunds = ((charge.get("refunds") or {}).get("data")) or []
    services.payment_refund(
        payment_id=payment.pk,
        kind=services.RefundKind.STRIPE,
        reason="Refunded by our billing team.",
        refunded_by_stripe=True,
        stripe_refund_id=refunds[0].get("id", "") if refunds else "",
    )
    return payment


HANDLERS = {
    "checkout.session.completed": on_session_completed,
    "checkout.session.async_payment_succeeded": on_session_async_succeeded,
    "checkout.session.async_payment_failed": on_session_async_failed,
    "invoice.paid": on_invoice_paid,
    "invoice.payment_failed": on_invoice_payment_failed,
    "charge.refunded": on_charge_refunded,
    "customer.subscription.updated": on_subscription_changed,
    "customer.subscription.deleted": on_subscription_changed,
    "charge.dispute.created": on_dispute_created,
}
