"""Support's jobs: every ticket mail is sent by a job that retries (a failure stays in
the job queue for staff, and the message shows "not mailed" in the admin), the autoclose
sweep, and reading replies from the support mailbox."""

import logging

from django.conf import settings
from django.utils import timezone
from procrastinate.contrib.django import app

from hosting.tasks import DEFAULT_RETRY
from support import notifications, services
from support.models import Ticket, TicketMessage

logger = logging.getLogger(__name__)


@app.task(queue="notifications", retry=DEFAULT_RETRY)
def ticket_notify_staff(ticket_id: int) -> None:
    ticket = (
        Ticket.objects.select_related("user", "server")
        .filter(pk=ticket_id, staff_mailed_at__isnull=True)
        .first()
    )
    if ticket is None:  # mailed already, or deleted before the worker got to it
        return
    notifications.notify_staff_of_new_ticket(ticket)
    Ticket.objects.filter(pk=ticket_id).update(staff_mailed_at=timezone.now())


@app.task(queue="notifications", retry=DEFAULT_RETRY)
def ticket_message_notify(message_id: int) -> None:
    message = (
        TicketMessage.objects.select_related("ticket__user", "ticket__assignee")
        .filter(pk=message_id, mailed_at__isnull=True, internal=False)
        .first()
    )
    if message is None:  # mailed already, or a note: nothing to send
        return
    notifications.notify_of_message(message)
    TicketMessage.objects.filter(pk=message_id).update(mailed_at=timezone.now())


@app.periodic(cron="7 * * * *")
@app.task(queue="maintenance", queueing_lock="tickets_autoclose")
def tickets_autoclose(timestamp: int) -> int:
    return services.tickets_autoclose()


@app.periodic(cron="* * * * *")
@app.task(queue="notifications", queueing_lock="support_mail_fetch", lock="support_mail_fetch")
def support_mail_fetch(timestamp: int) -> None:
    """Replies by email, every minute when SUPPORT_IMAP_URL is set. A mailbox that cannot
    be reached is logged and tried again next minute (no retries piling up)."""
    if not settings.SUPPORT_IMAP_URL:
        return
    from support.inbound import MailboxError, mailbox_fetch

    try:
        mailbox_fetch(settings.SUPPORT_IMAP_URL)
    except MailboxError as exc:
        logger.error("%s", exc)
