"""Billing jobs: load by id, call a service; safe to run twice."""

from django.conf import settings
from procrastinate.contrib.django import app

from billing import notifications, services, subscriptions
from billing.gateways import get_gateway
from billing.models import Payment, Subscription
from hosting.tasks import DEFAULT_RETRY, GATEWAY_RETRY


@app.task(queue="billing", retry=GATEWAY_RETRY)
def payment_refund(payment_id: int, kind: str, reason: str = "") -> None:
    """A refund nobody is waiting on (a failed build, a second payment): retried until
    Stripe answers; the idempotency key makes every retry the same refund."""
    services.payment_refund(payment_id=payment_id, kind=services.RefundKind(kind), reason=reason)


@app.task(queue="billing", retry=GATEWAY_RETRY)
def subscription_cancel(payment_id: int) -> None:
    payment = Payment.objects.get(pk=payment_id)
    if payment.stripe_subscription_id:
        get_gateway().subscription_cancel(subscription_id=payment.stripe_subscription_id)


@app.task(queue="notifications", retry=DEFAULT_RETRY)
def payment_notify(payment_id: int, kind: str) -> None:
    payment = Payment.objects.select_related("user", "plan").get(pk=payment_id)
    notifications.payment_mail(payment, kind)


@app.periodic(cron="*/10 * * * *")
@app.task(queue="billing", queueing_lock="billing_reconcile")
def billing_reconcile_periodic(timestamp: int) -> None:
    from billing.reconcile import billing_reconcile

    billing_reconcile()


@app.task(queue="notifications", retry=DEFAULT_RETRY)
def subscription_notify(subscription_id: int, kind: str, amount: str = "") -> None:
    subscription = Subscription.objects.select_related("user", "plan", "server").get(
        pk=subscription_id
    )
    notifications.subscription_mail(subscription, kind, amount=amount)


@app.task(queue="notifications", retry=DEFAULT_RETRY)
def payment_dispute_notify(payment_id: int) -> None:
    payment = Payment.objects.select_related("user", "plan").get(pk=payment_id)
    notifications.dispute_mail_staff(payment)


# Every minute: a drill with a grace period of minutes sees the suspension on time; the
# query behind it is one index scan.
@app.periodic(cron="* * * * *")
@app.task(queue="billing", queueing_lock="subscriptions_suspend_overdue")
def subscriptions_suspend_overdue(timestamp: int) -> int:
    return subscriptions.subscriptions_suspend_overdue()


@app.periodic(cron="*/15 * * * *")
@app.task(queue="billing", queueing_lock="subscriptions_delete_ended")
def subscriptions_delete_ended(timestamp: int) -> int:
    return subscriptions.subscriptions_delete_ended()


@app.periodic(cron="23 * * * *")
@app.task(queue="billing", queueing_lock="subscriptions_reconcile")
def subscriptions_reconcile(timestamp: int) -> int:
    return subscriptions.subscriptions_reconcile()


@app.periodic(cron="* * * * *")
@app.task(queue="billing", queueing_lock="simulated_subscriptions_renew")
def simulated_subscriptions_renew(timestamp: int) -> int:
    """Without Stripe, the simulator's subscriptions renew when their period ends (Stripe
    does this itself when it is configured)."""
    if settings.STRIPE_SECRET_KEY:
        return 0
    from billing.simulator import subscriptions_renew

    return subscriptions_renew()
