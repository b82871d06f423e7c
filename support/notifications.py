"""Emails about tickets, sent from jobs (never inside a transaction). Every mail about a
ticket carries the ticket's reply address and threading headers: the new-ticket mail's
Message-ID is the thread's root, every reply's mail answers it, so mail clients show one
conversation per ticket."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.urls import reverse

from hosting.mail import customer_mail_send, mail_send
from support.models import Ticket, TicketMessage

# Quoted history below this line is cut from replies that come back by email.
REPLY_ABOVE = "-- Write your reply above this line --"


def staff_recipients() -> list[str]:
    if settings.STAFF_NOTIFICATION_EMAILS:
        return list(settings.STAFF_NOTIFICATION_EMAILS)
    staff = get_user_model().objects.filter(is_staff=True, is_active=True)
    return list(staff.values_list("email", flat=True))


def reply_address(ticket: Ticket) -> str:
    return f"support+{ticket.reply_token}@{settings.SUPPORT_EMAIL_DOMAIN}"


def thread_id(ticket: Ticket, message: TicketMessage | None = None) -> str:
    """The Message-ID of the mail about the ticket (message None) or about one message."""
    suffix = f".{message.pk}" if message is not None else ""
    return f"<ticket-{ticket.uuid}{suffix}@{settings.SUPPORT_EMAIL_DOMAIN}>"


def _headers(ticket: Ticket, message: TicketMessage | None = None) -> dict:
    headers = {"Message-ID": thread_id(ticket, message)}
    if message is not None:
        headers["In-Reply-To"] = headers["References"] = thread_id(ticket)
    return headers


def _admin_url(ticket: Ticket) -> str:
    return settings.SITE_URL + reverse("admin:support_ticket_change", args=[ticket.pk])


def notify_staff_of_new_ticket(ticket: Ticket) -> int:
    """Tell staff a ticket was opened; returns how many messages went out."""
    recipients = staff_recipients()
    if not recipients:
        return 0
    return mail_send(
        to=recipients,
        subject=f"New ticket: {ticket.subject}",
        template="ticket_new_staff",
        context={"ticket": ticket, "admin_url": _admin_url(ticket), "reply_above": REPLY_ABOVE},
        headers=_headers(ticket),
        reply_to=[reply_address(ticket)],
    )


def notify_of_message(message: TicketMessage) -> int:
    """A customer's reply goes to the ticket's assignee (every staff recipient when it
    has none); a staff reply goes to the customer. Internal notes go nowhere."""
    if message.internal:
        return 0
    ticket = message.ticket
    context = {"ticket": ticket, "message": message, "reply_above": REPLY_ABOVE}
    subject = f"Re: {ticket.subject}"
    if message.author_id == ticket.user_id:
        assignee = ticket.assignee
        to = [assignee.email] if assignee and assignee.is_active else staff_recipients()
        if not to:
            return 0
        return mail_send(
            to=to,
            subject=subject,
            template="ticket_reply_staff",
            context={**context, "admin_url": _admin_url(ticket)},
            headers=_headers(ticket, message),
            reply_to=[reply_address(ticket)],
        )
    return customer_mail_send(
        user=ticket.user,
        subject=subject,
        template="ticket_reply_customer",
        context={**context, "ticket_path": reverse("support:ticket", args=[ticket.uuid])},
        headers=_headers(ticket, message),
        reply_to=[reply_address(ticket)],
    )
