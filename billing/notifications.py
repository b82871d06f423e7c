"""Customer mail about payments. Sent from jobs, never inside a transaction."""

from django.urls import reverse

from billing.models import Payment
from hosting.mail import customer_mail_send
from servers.models import ServerEventKind


def payment_mail(payment: Payment, kind: str) -> int:
    """`kind`: "received", or "refunded:<RefundKind>"; a refund after a failed build
    says both things in one mail."""
    receipt_path = reverse("billing:payment_detail", args=[payment.uuid])
    context = {"payment": payment, "receipt_path": receipt_path}
    if kind == "received":
        subject, template = f"Payment received: {payment.plan.name}", "payment_received"
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
