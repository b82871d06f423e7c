"""Emails about tickets. Sent from tasks, never inside a transaction."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.urls import reverse

from support.models import Ticket


def staff_recipients() -> list[str]:
    if settings.STAFF_NOTIFICATION_EMAILS:
        return list(settings.STAFF_NOTIFICATION_EMAILS)
    staff = get_user_model().objects.filter(is_staff=True, is_active=True)
    return list(staff.values_list("email", flat=True))


def notify_staff_of_new_ticket(ticket: Ticket) -> int:
    """Tell staff a ticket was opened; returns how many messages went out."""
    recipients = staff_recipients()
    if not recipients:
        return 0
    admin_url = settings.SITE_URL + reverse("admin:support_ticket_change", args=[ticket.pk])
    body = (
        f"{ticket.user.email} opened a {ticket.get_priority_display().lower()} priority "
        f"ticket.\n\nSubject: {ticket.subject}\n\n{ticket.description}\n\n{admin_url}\n"
    )
    return send_mail(
        subject=f"[Hosting] New ticket: {ticket.subject}",
        message=body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=recipients,
    )
