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


def deployment_failed_mail(deployment) -> int:
    """A deployment that ran failed: the reason and a link to its log. (Successful
    deployments and power actions are seen on the site, not mailed.)"""
    path = reverse("servers:deployment", args=[deployment.server.uuid, deployment.uuid])
    return customer_mail_send(
        user=deployment.user,
        subject=f"Deployment to {deployment.server.name} failed",
        template="deployment_failed",
        context={"deployment": deployment, "server": deployment.server, "log_path": path},
    )
