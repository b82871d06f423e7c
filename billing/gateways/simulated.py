"""The offline stand-in for Stripe. Checkout Sessions live in `SimulatedCheckoutSession`,
which also stands for the customer and the subscription a paid session starts; renewal
invoices live in `SimulatedInvoice`. Object shapes are in `simulated_shapes`.

Like Stripe, the simulator tells the webhook what happened through signed events: each
change writes its events to `SimulatedEvent` in the same transaction, and
`billing.simulator.events_deliver` posts them to the webhook until each is accepted.
`complete()` (the checkout page's Pay) instead returns its events for the caller to sign
and post, as it always has.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime
from typing import TYPE_CHECKING

import stripe
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from billing.gateways import simulated_shapes as shapes
from billing.gateways.base import (
    CheckoutSession,
    GatewayError,
    InvoicePayment,
    SubscriptionState,
    subscription_state,
)
from billing.models import (
    SimulatedCheckoutSession,
    SimulatedEvent,
    SimulatedInvoice,
    SimulatedSubscriptionStatus,
)

if TYPE_CHECKING:
    from billing.models import Payment

SESSION_PREFIX = shapes.SESSION_PREFIX
checkout_url = shapes.checkout_url


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
    charge = {
        **shapes.charge_object(session),
        "amount_refunded": session.amount_cents,
        "refunded": True,
    }
    return _event_for(session, "charge.refunded", charge, created=shapes.unix(timezone.now()))


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
        rows = rows.select_related("plan").order_by("-created_at")
        return [shapes.session_object(row) for row in rows]

    def invoice_payment(self, *, invoice_id: str) -> InvoicePayment | None:
        found = _found(invoice_id, "in")
        if found is None:
            return None
        row, number, renewal = found
        paid = renewal.paid if renewal is not None else row.payment_status == "paid"
        if not paid:
            return None
        return InvoicePayment(
            payment_intent_id=shapes.object_id("pi", row, number),
            charge_id=shapes.object_id("ch", row, number),
        )

    def refund_create(self, *, payment: Payment) -> str:
        if payment.stripe_payment_intent_id:
            found = _found(payment.stripe_payment_intent_id, "pi")
        elif payment.stripe_charge_id:
            found = _found(payment.stripe_charge_id, "ch")
        else:
            raise GatewayError("The payment has no Stripe payment intent or charge to refund")
        if found is None:
            # A payment the simulator never took (the demo data's): no money moves here,
            # so refund it all the same, with an id as stable as the payment's.
            return "re_sim_" + hashlib.sha256(str(payment.uuid).encode()).hexdigest()[:24]
        row, number, _ = found
        with transaction.atomic():
            row = _locked(row.session_id)
            refunded = (
                row
                if number == 1
                else SimulatedInvoice.objects.select_for_update().get(session=row, number=number)
            )
            paid = refunded.payment_status == "paid" if number == 1 else refunded.paid
            if not paid:
                raise GatewayError("The simulator cannot refund a payment that was never paid")
            if not refunded.refund_id:
                refunded.refund_id = shapes.object_id("re", row, number)
                refunded.save(update_fields=["refund_id"])
        return refunded.refund_id

    def subscription_cancel(self, *, subscription_id: str) -> None:
        with transaction.atomic():
            row = _subscription_locked(subscription_id, missing_ok=True)
            if row is None or row.subscription_status == SimulatedSubscriptionStatus.CANCELED:
                return
            row.subscription_status = SimulatedSubscriptionStatus.CANCELED
            row.save(update_fields=["subscription_status"])
            _emit(row, "customer.subscription.deleted", shapes.subscription_object(row))
        _deliver_now()

    def subscription_retrieve(self, *, subscription_id: str) -> SubscriptionState:
        row = _subscription_row(subscription_id)
        if row is None:
            raise GatewayError(f"No such subscription: {subscription_id}")
        return subscription_state(shapes.subscription_object(row))

    def subscription_cancel_at_period_end(
        self, *, subscription_id: str, cancel: bool
    ) -> SubscriptionState:
        with transaction.atomic():
            row = _subscription_locked(subscription_id)
            if row.subscription_status == SimulatedSubscriptionStatus.CANCELED:
                raise GatewayError("This subscription has already ended")
            if row.cancel_at_period_end != cancel:
                row.cancel_at_period_end = cancel
                row.save(update_fields=["cancel_at_period_end"])
                _emit(row, "customer.subscription.updated", shapes.subscription_object(row))
        _deliver_now()
        return subscription_state(shapes.subscription_object(row))

    def billing_portal_url(self, *, customer_id: str, subscription_id: str, return_url: str) -> str:
        row = _subscription_row(subscription_id)
        if row is None:
            raise GatewayError(f"No such subscription: {subscription_id}")
        return shapes.subscription_page_url(row)

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
                if not decline:
                    row.subscription_status = SimulatedSubscriptionStatus.ACTIVE
                    row.current_period_end = shapes.period_end(row.completed_at)
                row.save()
        created = shapes.unix(row.completed_at)
        session = shapes.session_object(row)
        events = [_event_for(row, "checkout.session.completed", session, created=created)]
        if row.payment_status == "paid":
            invoice = shapes.invoice_object(row)
            events.append(_event_for(row, "invoice.paid", invoice, created=created))
        else:
            # What Stripe sends when a delayed payment method (a bank debit) fails.
            failed = "checkout.session.async_payment_failed"
            events.append(_event_for(row, failed, session, created=created))
        return events


# -- the subscription's life: the simulator page and the renewal job call these ----------


def renewals_due(now: datetime | None = None) -> list[int]:
    """The sessions whose subscription's period has ended and that renew (or end) now."""
    return list(
        SimulatedCheckoutSession.objects.filter(
            subscription_status=SimulatedSubscriptionStatus.ACTIVE,
            current_period_end__lte=now or timezone.now(),
        ).values_list("pk", flat=True)
    )


def subscription_renew(session_pk: int) -> bool:
    """End the subscription's period as Stripe would: a subscription set to cancel ends;
    any other gets its next invoice, paid, or open and past due when the card is declined
    (once, when the simulator page asked for it). False when it was not due after all."""
    with transaction.atomic():
        row = (
            SimulatedCheckoutSession.objects.select_for_update()
            .select_related("plan")
            .get(pk=session_pk)
        )
        now = timezone.now()
        if row.subscription_status != SimulatedSubscriptionStatus.ACTIVE or not (
            row.current_period_end and row.current_period_end <= now
        ):
            return False
        if row.cancel_at_period_end:
            row.subscription_status = SimulatedSubscriptionStatus.CANCELED
            row.save(update_fields=["subscription_status"])
            _emit(row, "customer.subscription.deleted", shapes.subscription_object(row))
            return True
        declined = row.fail_next_renewal
        number = row.renewal_invoices.count() + 2
        renewal = SimulatedInvoice.objects.create(
            session=row,
            number=number,
            amount_cents=row.amount_cents,
            currency=row.currency,
            paid=not declined,
            paid_at=None if declined else now,
            period_start=row.current_period_end,
            period_end=shapes.period_end(row.current_period_end),
        )
        # Stripe starts the new period whether or not the card pays for it.
        row.current_period_end = renewal.period_end
        row.fail_next_renewal = False
        if declined:
            row.subscription_status = SimulatedSubscriptionStatus.PAST_DUE
        row.save()
        invoice_event = "invoice.payment_failed" if declined else "invoice.paid"
        _emit(row, invoice_event, shapes.invoice_object(row, renewal))
        _emit(row, "customer.subscription.updated", shapes.subscription_object(row))
        return True


def subscription_renew_now(subscription_id: str) -> bool:
    """The simulator page's "Renew now": end the current period at once."""
    with transaction.atomic():
        row = _subscription_locked(subscription_id)
        if row.subscription_status != SimulatedSubscriptionStatus.ACTIVE:
            return False
        row.current_period_end = timezone.now()
        row.save(update_fields=["current_period_end"])
    return subscription_renew(row.pk)


def renewal_fail_next_set(subscription_id: str, *, fail: bool) -> None:
    """The simulator page: decline the card at the next renewal (once), or not."""
    with transaction.atomic():
        row = _subscription_locked(subscription_id)
        row.fail_next_renewal = fail
        row.save(update_fields=["fail_next_renewal"])


def invoices_open_pay(subscription_id: str) -> int:
    """The simulator page's Pay, after a declined renewal: a new card pays every open
    invoice and the subscription is active again. Returns how many were paid."""
    with transaction.atomic():
        row = _subscription_locked(subscription_id)
        unpaid = list(row.renewal_invoices.select_for_update().filter(paid=False))
        now = timezone.now()
        for renewal in unpaid:
            renewal.paid, renewal.paid_at = True, now
            renewal.save(update_fields=["paid", "paid_at"])
            _emit(row, "invoice.paid", shapes.invoice_object(row, renewal))
        if row.subscription_status == SimulatedSubscriptionStatus.PAST_DUE:
            row.subscription_status = SimulatedSubscriptionStatus.ACTIVE
            row.save(update_fields=["subscription_status"])
            _emit(row, "customer.subscription.updated", shapes.subscription_object(row))
    return len(unpaid)


def subscription_page_row(subscription_id: str) -> SimulatedCheckoutSession | None:
    return _subscription_row(subscription_id)


# -- helpers -------------------------------------------------------------------------------


def _locked(session_id: str) -> SimulatedCheckoutSession:
    try:
        return (
            SimulatedCheckoutSession.objects.select_for_update()
            .select_related("plan")
            .get(session_id=session_id)
        )
    except SimulatedCheckoutSession.DoesNotExist:
        raise GatewayError(f"No such checkout session: {session_id}") from None


def _subscription_row(subscription_id: str) -> SimulatedCheckoutSession | None:
    parsed = shapes.parse_id(subscription_id, "sub")
    if parsed is None or parsed[1] != 1:
        return None
    return (
        SimulatedCheckoutSession.objects.select_related("plan")
        .filter(session_id=parsed[0])
        .exclude(subscription_status="")
        .first()
    )


def _subscription_locked(
    subscription_id: str, *, missing_ok: bool = False
) -> SimulatedCheckoutSession | None:
    row = _subscription_row(subscription_id)
    if row is None:
        if missing_ok:
            return None  # Stripe answers "resource_missing"; cancelling it succeeds
        raise GatewayError(f"No such subscription: {subscription_id}")
    return _locked(row.session_id)


def _found(
    value: str, prefix: str
) -> tuple[SimulatedCheckoutSession, int, SimulatedInvoice | None] | None:
    """The session (and renewal invoice, for a number above 1) a simulator id names."""
    parsed = shapes.parse_id(value, prefix)
    if parsed is None:
        return None
    session_id, number = parsed
    row = SimulatedCheckoutSession.objects.select_related("plan").filter(session_id=session_id)
    row = row.first()
    if row is None:
        return None
    if number == 1:
        return row, 1, None
    renewal = SimulatedInvoice.objects.filter(session=row, number=number).first()
    return (row, number, renewal) if renewal is not None else None


def _event_for(row: SimulatedCheckoutSession, type_: str, obj: dict, *, created: int) -> dict:
    """An event of the checkout, with an id fixed by the session and type, so a
    repeated Pay is a redelivery."""
    digest = hashlib.sha256(f"{row.session_id}:{type_}".encode()).hexdigest()[:24]
    return shapes.event(type_, obj, created=created, event_id=f"evt_sim_{digest}")


def _emit(row: SimulatedCheckoutSession, type_: str, obj: dict) -> None:
    """Owe the webhook this event (in the caller's transaction)."""
    payload = shapes.event(type_, obj, created=shapes.unix(timezone.now()))
    SimulatedEvent.objects.create(event_id=payload["id"], type=type_, payload=payload)


def _deliver_now() -> None:
    """Deliver owed events at once, as Stripe would within seconds; what cannot be
    delivered now waits for the simulator's periodic job."""
    from billing.simulator import events_deliver

    events_deliver(raise_on_failure=False)
