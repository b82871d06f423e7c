"""Every write to subscriptions: mirror Stripe's state and act on it. A renewal is a
Payment and lifts a suspension; a failed renewal starts the grace period, after which the
server is suspended (powered off, data kept); a canceled subscription suspends the
server and, after its own grace period and a warning mail, deletes it.

Stripe's state is re-read before it is applied (the webhook prefetches it), so events in
any order, repeated or late, leave the state Stripe has now. Each consequence is guarded
by a column (past_due_since, suspended_at, canceled_at, deletion_warned_at), so it
happens once. Lock order: payment, subscription, server.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.formats import date_format

from accounts.models import AuditAction, User
from accounts.services import audit_event_record
from billing.gateways import GatewayError, InvoicePayment, SubscriptionState, get_gateway
from billing.models import (
    OVERDUE_STATUSES,
    Payment,
    PaymentKind,
    PaymentStatus,
    Subscription,
    SubscriptionStatus,
    billing_grace,
)
from hosting.jobs import defer
from hosting.money import format_cents
from servers.models import ENDED_SERVER_STATUSES, Server

logger = logging.getLogger(__name__)

PAID_STATUSES = [SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING]
ENDED_STATUSES = [SubscriptionStatus.CANCELED, SubscriptionStatus.INCOMPLETE_EXPIRED]


class SubscriptionUnknown(Exception):
    """An event names a subscription we have no row for (yet)."""


def subscription_for_server(*, payment: Payment, server: Server) -> Subscription | None:
    """The subscription row of a server just bought (caller's transaction), once the
    payment knows its Stripe subscription; None until it does."""
    if not payment.stripe_subscription_id:
        return None
    subscription, _ = Subscription.objects.get_or_create(
        stripe_subscription_id=payment.stripe_subscription_id,
        defaults={
            "server": server,
            "user_id": payment.user_id,
            "plan_id": payment.plan_id,
            "stripe_customer_id": payment.stripe_customer_id,
        },
    )
    return subscription


def subscription_locked(stripe_subscription_id: str) -> Subscription:
    subscription = (
        Subscription.objects.select_for_update()
        .select_related("plan")
        .filter(stripe_subscription_id=stripe_subscription_id)
        .first()
    )
    if subscription is None:
        raise SubscriptionUnknown(f"No subscription {stripe_subscription_id} here yet.")
    return subscription


def subscription_apply(subscription: Subscription, state: SubscriptionState) -> None:
    """Mirror Stripe's `state` onto the locked row and act on what changed: paid again
    lifts billing's suspension (not one staff made); overdue starts the grace period;
    ended suspends the server and schedules its deletion (unless it is already gone, as
    after a refund)."""
    from billing.tasks import subscription_notify
    from servers.actions import server_resume, server_suspend

    now = timezone.now()
    if state.status in SubscriptionStatus.values:
        subscription.status = state.status
    else:
        logger.warning("Subscription %s has unknown status %r", state.id, state.status)
    subscription.current_period_end = state.current_period_end or subscription.current_period_end
    subscription.cancel_at_period_end = state.cancel_at_period_end
    subscription.stripe_customer_id = subscription.stripe_customer_id or state.customer_id
    subscription.synced_at = now
    if subscription.status in PAID_STATUSES:
        subscription.past_due_since = None
        subscription.failure_reason = subscription.pay_url = ""
        if (
            subscription.suspended_at is not None
            and subscription.canceled_at is None
            and not subscription.suspended_by_staff
        ):
            subscription.suspended_at = None
            if server_resume(
                server_id=subscription.server_id, reason="Payment received: starting it again."
            ):
                defer(subscription_notify, subscription_id=subscription.pk, kind="resumed")
    elif subscription.status in OVERDUE_STATUSES:
        subscription.past_due_since = subscription.past_due_since or now
    elif subscription.status in ENDED_STATUSES and subscription.canceled_at is None:
        subscription.canceled_at = now
        if (
            Server.objects.filter(pk=subscription.server_id)
            .exclude(status__in=ENDED_SERVER_STATUSES)
            .exists()
        ):
            subscription.delete_after = now + timedelta(days=settings.DELETION_GRACE_DAYS)
            subscription.suspended_at = subscription.suspended_at or now
            server_suspend(server_id=subscription.server_id, reason="The subscription ended.")
            defer(subscription_notify, subscription_id=subscription.pk, kind="canceled")
    subscription.save()
    _overdue_banner_set(subscription)


def _overdue_banner_set(subscription: Subscription) -> None:
    """Every page shows the past-due banner from the user row: keep it in step."""
    overdue_since = subscription.past_due_since if subscription.status in OVERDUE_STATUSES else None
    User.objects.filter(pk=subscription.user_id).exclude(
        payment_overdue_since=overdue_since
    ).update(payment_overdue_since=overdue_since)


def renewal_record(
    subscription: Subscription, *, invoice: dict, paid_with: InvoicePayment | None
) -> Payment:
    """A paid renewal invoice as a Payment for the subscription's server, once per
    invoice (its id is unique), with a receipt mailed."""
    from billing.tasks import payment_notify

    existing = Payment.objects.filter(stripe_invoice_id=invoice["id"]).first()
    if existing is not None:
        return existing
    paid_at = (invoice.get("status_transitions") or {}).get("paid_at")
    payment = Payment.objects.create(
        kind=PaymentKind.RENEWAL,
        renews_id=subscription.server_id,
        user_id=subscription.user_id,
        plan_id=subscription.plan_id,
        amount_cents=invoice.get("amount_paid") or 0,
        currency=invoice.get("currency") or subscription.plan.currency,
        status=PaymentStatus.SUCCEEDED,
        paid_at=_from_unix(paid_at) if paid_at else timezone.now(),
        stripe_invoice_id=invoice["id"],
        stripe_customer_id=subscription.stripe_customer_id,
        stripe_subscription_id=subscription.stripe_subscription_id,
        stripe_payment_intent_id=paid_with.payment_intent_id if paid_with else "",
        stripe_charge_id=paid_with.charge_id if paid_with else "",
    )
    defer(payment_notify, payment_id=payment.pk, kind="renewed")
    return payment


def payment_failure_record(
    subscription: Subscription, *, invoice: dict, state: SubscriptionState
) -> None:
    """A renewal could not be charged: mirror Stripe's state and, while the subscription
    is still overdue (it may have been paid since), tell the customer what failed, where
    to pay and when the server will be suspended."""
    from billing.tasks import subscription_notify

    subscription_apply(subscription, state)
    if subscription.status not in OVERDUE_STATUSES:
        return
    amount = format_cents(invoice.get("amount_due") or 0, invoice.get("currency") or "usd")
    # The page and the mail add the deadline (Subscription.suspends_at), which a staff
    # resume may move.
    subscription.failure_reason = f"Your renewal payment of {amount} did not go through."
    subscription.pay_url = invoice.get("hosted_invoice_url") or subscription.pay_url
    subscription.save(update_fields=["failure_reason", "pay_url", "updated_at"])
    defer(
        subscription_notify,
        subscription_id=subscription.pk,
        kind="payment_failed",
        amount=amount,
    )


def _from_unix(value: int):
    from datetime import UTC, datetime

    return datetime.fromtimestamp(value, tz=UTC)


# -- what the customer and staff do ------------------------------------------------------


class SubscriptionRefused(Exception):
    """Said to the customer or to staff: nothing was changed."""


def subscription_renewal_set(
    *, subscription: Subscription, cancel: bool, actor: User, request=None
) -> bool:
    """The customer's "Cancel at period end" (`cancel`) or "Resume": Stripe is told
    first, then its answer is applied and audited. False when it already was so."""
    if subscription.status in ENDED_STATUSES:
        raise SubscriptionRefused("This subscription has already ended.")
    if subscription.cancel_at_period_end == cancel:
        return False
    state = get_gateway().subscription_cancel_at_period_end(
        subscription_id=subscription.stripe_subscription_id, cancel=cancel
    )
    with transaction.atomic():
        locked = subscription_locked(subscription.stripe_subscription_id)
        subscription_apply(locked, state)
        audit_event_record(
            action=AuditAction.SUBSCRIPTION_CHANGE,
            actor=actor,
            request=request,
            target=locked,
            metadata={"change": "cancel_at_period_end" if cancel else "resume"},
        )
    return True


def _staff_audit(subscription: Subscription, action: str, actor, request) -> None:
    audit_event_record(
        action=AuditAction.STAFF_ACTION,
        actor=actor,
        request=request,
        target=subscription,
        metadata={"action": action, "server": subscription.server_id},
    )


def subscription_suspend_by_staff(*, subscription_id: int, actor, request=None) -> bool:
    """Staff suspend the server now (abuse, a dispute): powered off, data kept, and no
    payment lifts it; only staff's resume does. False when it was already suspended or
    the subscription has ended."""
    from billing.tasks import subscription_notify
    from servers.actions import server_suspend

    with transaction.atomic():
        subscription = Subscription.objects.select_for_update().get(pk=subscription_id)
        if subscription.suspended_at is not None or subscription.canceled_at is not None:
            return False
        if not server_suspend(server_id=subscription.server_id, reason="Suspended by our staff."):
            raise SubscriptionRefused(
                "Only a running or stopped server can be suspended (this one is being "
                "built or has ended)."
            )
        subscription.suspended_at = timezone.now()
        subscription.suspended_by_staff = True
        subscription.save(update_fields=["suspended_at", "suspended_by_staff", "updated_at"])
        defer(subscription_notify, subscription_id=subscription.pk, kind="suspended")
        _staff_audit(subscription, "subscription_suspend", actor, request)
    return True


def subscription_resume_by_staff(*, subscription_id: int, actor, request=None) -> bool:
    """Staff lift a suspension, theirs or billing's. One still overdue gets a new grace
    period from now, so the next run of the suspension job does not undo this. False
    when it was not suspended."""
    from billing.tasks import subscription_notify
    from servers.actions import server_resume

    with transaction.atomic():
        subscription = Subscription.objects.select_for_update().get(pk=subscription_id)
        if subscription.canceled_at is not None:
            raise SubscriptionRefused(
                "The subscription has ended: the customer needs a new one to use a server."
            )
        if subscription.suspended_at is None:
            return False
        subscription.suspended_at = None
        subscription.suspended_by_staff = False
        if subscription.past_due_since is not None:
            subscription.past_due_since = timezone.now()
        subscription.save()
        _overdue_banner_set(subscription)
        if server_resume(server_id=subscription.server_id, reason="Resumed by our staff."):
            defer(subscription_notify, subscription_id=subscription.pk, kind="resumed_by_staff")
        _staff_audit(subscription, "subscription_resume", actor, request)
    return True


def subscription_cancel_by_staff(*, subscription_id: int, actor, request=None) -> bool:
    """Staff end the subscription now, without a refund: Stripe cancels it, and its
    state, applied at once, suspends the server, mails the customer and schedules the
    deletion after DELETION_GRACE_DAYS. False when it had already ended."""
    subscription = Subscription.objects.get(pk=subscription_id)
    if subscription.canceled_at is not None:
        return False
    gateway = get_gateway()
    gateway.subscription_cancel(subscription_id=subscription.stripe_subscription_id)
    state = gateway.subscription_retrieve(subscription_id=subscription.stripe_subscription_id)
    if state.status not in ENDED_STATUSES:
        raise GatewayError(f"Stripe still says the subscription is {state.status}.")
    with transaction.atomic():
        locked = subscription_locked(subscription.stripe_subscription_id)
        subscription_apply(locked, state)
        _staff_audit(locked, "subscription_cancel", actor, request)
    return True


def server_payments(server_id: int):
    """The purchase that bought the server and its renewals."""
    return Payment.objects.filter(Q(renews_id=server_id) | Q(server__pk=server_id))


def subscription_last_payment(subscription: Subscription) -> Payment | None:
    """The newest paid payment for the subscription's server: a renewal, or else the
    purchase."""
    return (
        server_payments(subscription.server_id)
        .filter(status=PaymentStatus.SUCCEEDED)
        .select_related("plan", "user")
        .order_by("-paid_at", "-pk")
        .first()
    )


# -- the periodic jobs' work ---------------------------------------------------------------


def subscriptions_suspend_overdue() -> int:
    """Suspend the server of every subscription still overdue BILLING_GRACE_DAYS after
    its first failed renewal. Each row is locked and checked again, so two workers (or a
    payment arriving meanwhile) cannot suspend twice. Returns how many were suspended."""
    from billing.tasks import subscription_notify
    from servers.actions import server_suspend

    due = timezone.now() - billing_grace()
    overdue = Subscription.objects.filter(
        status__in=OVERDUE_STATUSES, past_due_since__lt=due, suspended_at__isnull=True
    )
    suspended = 0
    for subscription_id in overdue.values_list("pk", flat=True):
        with transaction.atomic():
            subscription = overdue.select_for_update().filter(pk=subscription_id).first()
            if subscription is None:
                continue
            subscription.suspended_at = timezone.now()
            subscription.save(update_fields=["suspended_at", "updated_at"])
            since = date_format(subscription.past_due_since, "M j")
            if server_suspend(
                server_id=subscription.server_id,
                reason=f"Suspended: the renewal due since {since} is unpaid.",
            ):
                defer(subscription_notify, subscription_id=subscription.pk, kind="suspended")
                suspended += 1
    return suspended


RECONCILE_AFTER = timedelta(days=1)


def subscriptions_reconcile() -> int:
    """Re-read from Stripe every subscription of a live server that Stripe has not told
    us about for a day (a missed webhook), and apply it. Returns how many were read; one
    that cannot be read is logged and left for the next run."""
    from billing.gateways import GatewayError, get_gateway

    stale = (
        Subscription.objects.exclude(status__in=ENDED_STATUSES)
        .exclude(server__status__in=ENDED_SERVER_STATUSES)
        .exclude(synced_at__gte=timezone.now() - RECONCILE_AFTER)
    )
    gateway, read = get_gateway(), 0
    for subscription_id in stale.values_list("stripe_subscription_id", flat=True):
        try:
            state = gateway.subscription_retrieve(subscription_id=subscription_id)
        except GatewayError as exc:
            logger.warning("Subscription %s could not be read: %s", subscription_id, exc)
            continue
        with transaction.atomic():
            subscription_apply(subscription_locked(subscription_id), state)
        read += 1
    return read


def subscriptions_delete_ended() -> int:
    """Delete the server of every ended subscription whose deletion grace is over and
    whose customer was warned (never before the warning went out). Returns how many."""
    from servers.services import server_delete

    due = Subscription.objects.filter(
        delete_after__lte=timezone.now(), deletion_warned_at__isnull=False
    ).exclude(server__status__in=ENDED_SERVER_STATUSES)
    deleted = 0
    for subscription_id, payment_id in due.values_list("pk", "server__payment_id"):
        with transaction.atomic():
            if payment_id is not None:  # the lock order: payment, subscription, server
                Payment.objects.select_for_update().filter(pk=payment_id).first()
            subscription = due.select_for_update(of=("self",)).filter(pk=subscription_id).first()
            if subscription is None:
                continue
            ended = date_format(subscription.canceled_at, "M j, Y")
            if server_delete(
                server=subscription.server,
                reason=f"The subscription ended on {ended}; deleted after the grace period.",
            ):
                deleted += 1
    return deleted
