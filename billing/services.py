"""Every write to payments: checkout, fulfilment, failure, refund.

Gateway calls are made outside transactions with an idempotency key derived from the
Payment; rows are then changed atomically, locking the payment first and the server next.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import TextChoices
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditAction, User
from accounts.services import audit_event_record
from billing.gateways import GatewayError, get_gateway
from billing.models import Payment, PaymentKind, PaymentStatus, Plan
from hosting.jobs import defer
from servers.models import ENDED_SERVER_STATUSES, Server, ServerEventKind

# Stripe keeps a Checkout Session open for 24 hours; reuse one only well inside that.
OPEN_CHECKOUT_REUSE = timedelta(hours=23)


class CheckoutRefused(Exception):
    """Said to the customer, who is not charged."""


class RefundRefused(Exception):
    """Said to staff: the payment cannot be refunded (not paid, say)."""


class RefundKind(TextChoices):
    STAFF = "staff", "Refunded by staff"
    STRIPE = "stripe", "Refunded in Stripe"
    PROVISION_FAILED = "provision_failed", "Server could not be built"
    DUPLICATE = "duplicate", "Second payment for one server"


def _site_url(path: str) -> str:
    return settings.SITE_URL.rstrip("/") + path


def checkout_start(*, user: User, plan: Plan) -> Payment:
    """A pending payment with an open Checkout Session for `plan`; the caller redirects
    to `payment.checkout_url`.

    Two clicks (two tabs) never mean two charges: the customer's row is locked while we
    choose the payment, so a second click for the same plan gets the same payment, whose
    idempotency key gets the same Checkout Session back from Stripe. A click for another
    plan first expires the earlier open session, so at most one can be paid; should both
    be paid anyway, fulfilment refunds the second automatically.
    """
    if not plan.is_active:
        raise CheckoutRefused(f"The {plan.name} plan is no longer on sale.")
    with transaction.atomic():
        User.objects.select_for_update().get(pk=user.pk)
        if refusal := checkout_refusal(user=user):
            raise CheckoutRefused(refusal)
        open_payments = list(
            Payment.objects.filter(
                user=user,
                status=PaymentStatus.PENDING,
                created_at__gte=timezone.now() - OPEN_CHECKOUT_REUSE,
            ).select_related("plan")
        )
        payment = next((p for p in open_payments if p.plan_id == plan.pk), None)
        if payment is not None and payment.checkout_url:
            return payment
        if payment is None:
            payment = Payment.objects.create(
                user=user, plan=plan, amount_cents=plan.price_cents, currency=plan.currency
            )
        superseded = [p for p in open_payments if p.pk != payment.pk]
    gateway = get_gateway()
    for earlier in superseded:
        _checkout_supersede(gateway, earlier, payment)
    try:
        session = gateway.checkout_session_create(
            payment=payment,
            success_url=_site_url(reverse("billing:checkout_done", args=[payment.uuid])),
            cancel_url=_site_url(reverse("billing:checkout_cancelled", args=[payment.uuid])),
        )
    except GatewayError:
        # Stripe replays a failed request's answer for its idempotency key for a day: the
        # next click must start a new payment, with a new key.
        _payment_mark_failed(payment, "Our payment provider could not be reached.")
        raise
    with transaction.atomic():
        still_open = Payment.objects.filter(pk=payment.pk, status=PaymentStatus.PENDING).update(
            stripe_checkout_session_id=session.id, checkout_url=session.url
        )
    if not still_open:
        # A click for another plan replaced this payment while Stripe was answering: this
        # session must not stay payable beside that one.
        gateway.checkout_session_expire(session_id=session.id)
        raise CheckoutRefused(
            "You started a checkout for another plan meanwhile; continue with that one. "
            "Nothing was charged here."
        )
    payment.stripe_checkout_session_id, payment.checkout_url = session.id, session.url
    return payment


def checkout_refusal(*, user: User) -> str | None:
    """Why this customer may not buy now, in words for them; None when they may."""
    if Server.objects.filter(user=user).exclude(status__in=ENDED_SERVER_STATUSES).exists():
        return "You already have a server: one server per customer for now. Nothing was charged."
    return None


def _checkout_supersede(gateway, earlier: Payment, payment: Payment) -> None:
    """Close an earlier open checkout before a new one opens. If the customer already
    paid it, stop: that payment is on its way to becoming a server.

    Its session id is read again under its row lock, the lock its own click takes to
    record the session: a session recorded since `earlier` was read is expired here, and
    one recorded after this finds the payment failed and is expired by that click."""
    with transaction.atomic():
        locked = Payment.objects.select_for_update().get(pk=earlier.pk)
        session_id = locked.stripe_checkout_session_id
        if locked.status == PaymentStatus.PENDING and not session_id:
            _payment_mark_failed(earlier, f"Replaced by a checkout for {payment.plan.name}.")
            return
    if session_id and not gateway.checkout_session_expire(session_id=session_id):
        _payment_mark_failed(payment, "Not needed: an earlier checkout was paid.")
        raise CheckoutRefused(
            f"Your payment for {earlier.plan.name} has already gone through and your "
            "server is being set up. Nothing more was charged."
        )
    _payment_mark_failed(earlier, f"Replaced by a checkout for {payment.plan.name}.")


def _payment_mark_failed(payment: Payment, reason: str) -> None:
    with transaction.atomic():
        Payment.objects.filter(pk=payment.pk, status=PaymentStatus.PENDING).update(
            status=PaymentStatus.FAILED, failure_reason=reason, checkout_url=""
        )


def payment_record_stripe_ids(payment: Payment, **ids: str) -> None:
    """Fill the Stripe ids we did not know yet (the caller holds the payment's lock);
    a known id is never overwritten."""
    changed = []
    for field, value in ids.items():
        if value and not getattr(payment, field):
            setattr(payment, field, value)
            changed.append(field)
    if changed:
        payment.save(update_fields=changed)


def payment_fulfil(*, payment: Payment) -> Server | None:
    """The payment is paid: mark it, create the server and defer its provisioning, all in
    the caller's transaction with the payment row locked. Runs once per payment however
    many events say so. A customer who already has a live server gets this payment
    refunded automatically."""
    from billing.tasks import payment_notify, payment_refund
    from servers.services import server_create_for_payment

    if payment.status not in (PaymentStatus.PENDING, PaymentStatus.FAILED):
        return None  # already fulfilled, or refunded before the news arrived
    payment.status = PaymentStatus.SUCCEEDED
    payment.paid_at = timezone.now()
    payment.failure_reason = ""
    payment.checkout_url = ""
    payment.save(update_fields=["status", "paid_at", "failure_reason", "checkout_url"])
    server = server_create_for_payment(payment=payment)
    if server is None:
        defer(
            payment_refund,
            payment_id=payment.pk,
            kind=RefundKind.DUPLICATE,
            reason="You already have a server, so this second payment was refunded.",
        )
    else:
        defer(payment_notify, payment_id=payment.pk, kind="received")
    return server


def payment_subscription_ensure(*, payment: Payment, period_end=None) -> None:
    """Once a purchase has both its server and its Stripe subscription id (events bring
    them in any order), the server's Subscription row exists (caller holds the lock),
    with the first period's end once the first invoice has told us (`period_end`)."""
    from billing.subscriptions import subscription_for_server

    server = Server.objects.filter(payment=payment).first()
    if server is None:
        return
    subscription = subscription_for_server(payment=payment, server=server)
    if subscription is not None and period_end and subscription.current_period_end is None:
        subscription.current_period_end = period_end
        subscription.save(update_fields=["current_period_end", "updated_at"])


def payment_dispute_record(*, payment: Payment, dispute_id: str, reason: str) -> bool:
    """The customer's bank disputes the payment (caller holds its lock): flagged, audited,
    staff mailed; once per dispute. Nothing else changes until staff decide."""
    from billing.tasks import payment_dispute_notify

    if payment.stripe_dispute_id == dispute_id:
        return False
    payment.stripe_dispute_id = dispute_id
    payment.dispute_reason = reason[:64]
    payment.disputed_at = timezone.now()
    payment.save(update_fields=["stripe_dispute_id", "dispute_reason", "disputed_at"])
    audit_event_record(
        action=AuditAction.PAYMENT_DISPUTE,
        target=payment,
        metadata={"dispute": dispute_id, "reason": reason, "amount_cents": payment.amount_cents},
    )
    defer(payment_dispute_notify, payment_id=payment.pk)
    return True


def payment_fail(*, payment: Payment, reason: str) -> bool:
    """The customer's bank declined (caller holds the payment's lock)."""
    if payment.status != PaymentStatus.PENDING:
        return False
    payment.status = PaymentStatus.FAILED
    payment.failure_reason = reason
    payment.checkout_url = ""
    payment.save(update_fields=["status", "failure_reason", "checkout_url"])
    return True


def payment_refund(
    *,
    payment_id: int,
    kind: RefundKind,
    reason: str = "",
    actor: User | None = None,
    request=None,
    refunded_by_stripe: bool = False,
    stripe_refund_id: str = "",
) -> bool:
    """Refund a paid payment in full, exactly once: the refund, the server's deletion and
    the droplet's destruction happen together or not at all. One service for staff, for
    Stripe's `charge.refunded` (`refunded_by_stripe`: no call back to Stripe), for a
    server that could not be built and for a second payment. True when this call refunded
    it; False when it already was."""
    payment = Payment.objects.get(pk=payment_id)
    if payment.status == PaymentStatus.REFUNDED:
        return False
    if payment.status != PaymentStatus.SUCCEEDED:
        raise RefundRefused(f"Only a paid payment can be refunded (this one is {payment.status}).")
    if not refunded_by_stripe:
        _payment_ids_ensure(payment)
        stripe_refund_id = get_gateway().refund_create(payment=payment)
    return _payment_mark_refunded(
        payment_id=payment_id,
        kind=kind,
        reason=reason or kind.label,
        refund_id=stripe_refund_id,
        actor=actor,
        request=request,
    )


def _payment_ids_ensure(payment: Payment) -> None:
    """A refund needs the payment intent or charge; if invoice.paid has not told us yet,
    ask for them."""
    if payment.stripe_payment_intent_id or payment.stripe_charge_id:
        return
    if not payment.stripe_invoice_id:
        raise GatewayError("Stripe has not told us how this payment was made yet.", retryable=True)
    paid_with = get_gateway().invoice_payment(invoice_id=payment.stripe_invoice_id)
    if paid_with is None:
        raise GatewayError("Stripe says the invoice is not paid yet.", retryable=True)
    with transaction.atomic():
        locked = Payment.objects.select_for_update().get(pk=payment.pk)
        payment_record_stripe_ids(
            locked,
            stripe_payment_intent_id=paid_with.payment_intent_id,
            stripe_charge_id=paid_with.charge_id,
        )
    payment.stripe_payment_intent_id = locked.stripe_payment_intent_id
    payment.stripe_charge_id = locked.stripe_charge_id


def _payment_mark_refunded(
    *, payment_id: int, kind: RefundKind, reason: str, refund_id: str, actor, request
) -> bool:
    from billing.tasks import payment_notify, subscription_cancel
    from servers.services import server_delete, server_event_record

    with transaction.atomic():
        payment = Payment.objects.select_for_update().get(pk=payment_id)
        if payment.status == PaymentStatus.REFUNDED:
            return False
        payment.status = PaymentStatus.REFUNDED
        payment.refunded_at = timezone.now()
        payment.refund_reason = reason
        payment.stripe_refund_id = refund_id or payment.stripe_refund_id
        payment.save(update_fields=["status", "refunded_at", "refund_reason", "stripe_refund_id"])
        if payment.kind == PaymentKind.RENEWAL:
            # A month's money back (goodwill, a mistaken charge): the server and its
            # subscription carry on. Ending them is staff's separate "cancel".
            server = Server.objects.filter(pk=payment.renews_id).first()
        else:
            # The purchase refunded: the server it bought, and its subscription, end.
            server = Server.objects.filter(payment=payment).first()
            if server is not None:
                server_delete(server=server, reason=f"Refunded: {reason}")
            if payment.stripe_subscription_id:
                defer(subscription_cancel, payment_id=payment.pk)
        if server is not None:
            server_event_record(
                server=server,
                kind=ServerEventKind.REFUND_ISSUED,
                message=f"{payment.amount_display} refunded.",
            )
        audit_event_record(
            action=AuditAction.PAYMENT_REFUND,
            actor=actor,
            request=request,
            target=payment,
            metadata={"kind": kind.value, "amount_cents": payment.amount_cents},
        )
        defer(payment_notify, payment_id=payment.pk, kind=f"refunded:{kind.value}")
    return True
