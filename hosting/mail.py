"""Mail to one customer, rendered from a text template. Called from jobs only, never
inside a request's transaction."""

from django.conf import settings
from django.core.mail import send_mail
from django.template.loader import render_to_string


def customer_mail_send(*, user, subject: str, template: str, context: dict) -> int:
    """Render templates/emails/<template>.txt with `context` (plus user and site_url) and
    send it to the user; returns how many messages went out."""
    body = render_to_string(
        f"emails/{template}.txt", {**context, "user": user, "site_url": settings.SITE_URL}
    )
    return send_mail(
        subject=f"[Hosting] {subject}",
        message=body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=[user.email],
    )
