"""Customer mail about servers. Sent from jobs, never inside a transaction."""

from django.urls import reverse

from hosting.mail import customer_mail_send
from servers.models import Server, ServerEventKind


def server_mail(server: Server, kind: str) -> int:
    """`kind`: "ready" (a link to the server page, never the password) or "failed" (the
    reason; sent only when there was no payment left to refund)."""
    context = {"server": server, "server_path": reverse("servers:detail", args=[server.uuid])}
    if kind == "ready":
        subject, template = f"Your server {server.name} is ready", "server_ready"
    elif kind == "failed":
        failed = server.events.filter(kind=ServerEventKind.FAILED).last()
        context["reason"] = failed.message if failed else ""
        subject, template = f"Your server {server.name} could not be built", "server_failed"
    else:
        raise ValueError(f"unknown server mail {kind!r}")
    return customer_mail_send(user=server.user, subject=subject, template=template, context=context)
