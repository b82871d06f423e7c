"""Customer mail about servers. Sent from jobs, never inside a transaction."""

from django.urls import reverse

from hosting.mail import customer_mail_send, mail_send
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


DOMAIN_MAILS = {
    "verified": ("{name} points at your server", "domain_verified"),
    "https_active": ("https://{name} is live", "domain_https_active"),
    "https_failed": ("HTTPS for {name} failed", "domain_https_failed"),
    "expiring": ("The certificate of {name} expires soon", "domain_expiring"),
}


def domain_mail(domain, kind: str) -> int:
    """The customer hears of each step of their domain; staff also hear of a certificate
    that was not renewed in time (Caddy renews 30 days ahead, so something is wrong)."""
    from support.notifications import staff_recipients

    subject, template = DOMAIN_MAILS[kind]
    subject = subject.format(name=domain.name)
    context = {
        "domain": domain,
        "server": domain.server,
        "domains_path": reverse("servers:domains", args=[domain.server.uuid]),
    }
    sent = customer_mail_send(user=domain.user, subject=subject, template=template, context=context)
    if kind == "expiring" and (staff := staff_recipients()):
        sent += mail_send(
            to=staff,
            subject=f"{subject} ({domain.user.email})",
            template=template,
            context={**context, "user": None},
        )
    return sent
