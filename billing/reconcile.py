"""Reconciliation: what Stripe knows and we missed. Run every 10 minutes by the worker and
by `manage.py billing_reconcile`; idempotent, like the webhook it stands in for."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from django.db import transaction
from django.utils import timezone
from procrastinate.contrib.django.models import ProcrastinateJob

from billing import webhooks
from billing.gateways import get_gateway
from billing.models import Payment, PaymentStatus, StripeEvent

LOOKBACK = timedelta(days=3)
# An event younger than this may still be in its first delivery: leave it to the webhook.
SETTLE = timedelta(minutes=1)
# Stripe expires an unpaid Checkout Session after 24 hours; an hour's margin for clocks.
CHECKOUT_LIFETIME = timedelta(hours=25)


@dataclass
class ReconcileReport:
    sessions_seen: int = 0
    fulfilled: list[str] = field(default_factory=list)  # Checkout Session ids
    unknown_sessions: list[str] = field(default_factory=list)
    events_retried: dict[str, str] = field(default_factory=dict)  # event id -> outcome
    paid_without_server: list[Payment] = field(default_factory=list)
    expired: int = 0  # pending payments whose checkout can no longer be paid


def billing_reconcile(*, now=None) -> ReconcileReport:
    now = now or timezone.now()
    report = ReconcileReport()
    for session in get_gateway().checkout_sessions_completed(since=now - LOOKBACK):
        report.sessions_seen += 1
        _session_reconcile(session, report)
    waiting = StripeEvent.objects.filter(
        processed_at__isnull=True, received_at__gte=now - LOOKBACK, received_at__lt=now - SETTLE
    ).order_by("received_at")
    for event in waiting:
        report.events_retried[event.event_id] = webhooks.stripe_event_process_again(
            event=event
        ).value
    # A second payment waiting for its automatic refund is not a loose end.
    refunding = {
        job.args.get("payment_id")
        for job in ProcrastinateJob.objects.filter(
            task_name="billing.tasks.payment_refund", status__in=["todo", "doing"]
        ).only("args")
    }
    report.paid_without_server = [
        payment
        for payment in Payment.objects.filter(
            status=PaymentStatus.SUCCEEDED, server__isnull=True, paid_at__lt=now - SETTLE
        ).select_related("user", "plan")
        if payment.pk not in refunding
    ]
    report.expired = Payment.objects.filter(
        status=PaymentStatus.PENDING, created_at__lt=now - CHECKOUT_LIFETIME
    ).update(status=PaymentStatus.FAILED, failure_reason="The checkout expired unpaid.")
    return report


def _session_reconcile(session: dict, report: ReconcileReport) -> None:
    """Fulfil a completed session whose webhook never reached us, exactly as the webhook
    would have."""
    try:
        with transaction.atomic():
            payment = webhooks.payment_for_session(session)
            if payment.status not in (PaymentStatus.PENDING, PaymentStatus.FAILED):
                return
            if session.get("payment_status") not in webhooks.PAID_SESSION_STATUSES:
                return
            webhooks.on_session_completed(session, webhooks.Prefetched())
    except webhooks.NotReady:
        report.unknown_sessions.append(session["id"])
        return
    report.fulfilled.append(session["id"])
