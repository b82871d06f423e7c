"""Customer mail about payments. Sent from jobs, never inside a transaction."""

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from billing.models import Payment, Subscription
from hosting.mail import customer_mail_send, mail_send
from servers.models import ServerEventKind


def payment_mail(payment: Payment, kind: str) -> int:
    """`kind`: "received", or "refunded:<RefundKind>"; a refund after a failed build
    says both things in one mail."""
    receipt_path = reverse("billing:payment_detail", args=[payment.uuid])
    context = {"payment": payment, "receipt_path": receipt_path}
    if kind == "received":
        subject, template = f"Payment received: {payment.plan.name}", "payment_received"
    elif kind == "renewed":
        subject, template = f"Renewed: {payment.plan.name}", "payment_renewed"
    elif kind == "refunded:provision_failed":
        server = getattr(payment, "server", None)
        failed = server.events.filter(kind=ServerEventKind.FAILED).last() if server else None
        context.update(server=server, reason=failed.message if failed else "")
        subject, template = "Your server could not be built: refunded", "provision_failed_refunded"
    elif kind.startswith("refunded:"):
        subject, template = f"Refund issued: {payment.amount_display}", "payment_refunded"
    else:
        raise ValueError(f"unknown payment mail {kind!r}")
    return customer_mail_send(
        user=payment.user, subject=subject, template=template, context=context
    )


SUBSCRIPTION_MAILS = {
    "payment_failed": ("Your renewal payment failed", "subscription_payment_failed"),
    "suspended": ("Your server is suspended", "subscription_suspended"),
    "resumed": ("Your server is back", "subscription_resumed"),
    "resumed_by_staff": ("Your server is back", "subscription_resumed"),
    "canceled": ("Your subscription ended: back up your server", "subscription_canceled"),
}


def subscription_mail(subscription: Subscription, kind: str, *, amount: str = "") -> int:
    """The customer hears of each step: a failed renewal (the amount, where to pay, when
    the server would be suspended), the suspension, the resumption, and the end of the
    subscription (when the server will be deleted: the warning deletion waits for)."""
    subject, template = SUBSCRIPTION_MAILS[kind]
    grace_end = subscription.suspends_at
    sent = customer_mail_send(
        user=subscription.user,
        subject=subject,
        template=template,
        context={
            "subscription": subscription,
            "kind": kind,
            "server": subscription.server,
            "amount": amount,
            "grace_end": grace_end,
            "billing_path": reverse("billing:payments"),
        },
    )
    if kind == "canceled":
        with transaction.atomic():
            Subscription.objects.filter(pk=subscription.pk, deletion_warned_at__isnull=True).update(
                deletion_warned_at=timezone.now()
            )
    return sent


def dispute_mail_staff(payment: Payment) -> int:
    from support.notifications import staff_recipients

    to = staff_recipients()
    if not to:
        return 0
    admin_path = reverse("admin:billing_payment_change", args=[payment.pk])
    return mail_send(
        to=to,
        subject=f"Payment disputed: {payment.amount_display} by {payment.user.email}",
        template="payment_disputed_staff",
        context={"payment": payment, "admin_url": settings.SITE_URL + admin_path},
    )
