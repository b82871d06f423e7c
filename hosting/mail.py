"""Mail to one customer, rendered from a text template. Called from jobs only, never
inside a request's transaction."""

from django.conf import settings
from django.core.mail import EmailMessage
from django.template.loader import render_to_string


def customer_mail_send(
    *,
    user,
    subject: str,
    template: str,
    context: dict,
    headers: dict | None = None,
    reply_to: list[str] | None = None,
) -> int:
    """Render templates/emails/<template>.txt with `context` (plus user and site_url) and
    send it to the user, with any extra `headers` (threading) and `reply_to`; returns how
    many messages went out."""
    return mail_send(
        to=[user.email],
        subject=subject,
        template=template,
        context={**context, "user": user},
        headers=headers,
        reply_to=reply_to,
    )


def mail_send(
    *,
    to: list[str],
    subject: str,
    template: str,
    context: dict,
    headers: dict | None = None,
    reply_to: list[str] | None = None,
) -> int:
    """Render templates/emails/<template>.txt (plus site_url) and send it to `to`."""
    body = render_to_string(f"emails/{template}.txt", {**context, "site_url": settings.SITE_URL})
    message = EmailMessage(
        subject=f"[Hosting] {subject}",
        body=body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=to,
        headers=headers,
        reply_to=reply_to,
    )
    return message.send()
