from procrastinate.contrib.django import app

from hosting.tasks import DEFAULT_RETRY
from support import notifications
from support.models import Ticket


@app.task(queue="notifications", retry=DEFAULT_RETRY)
def ticket_notify_staff(ticket_id: int) -> None:
    ticket = Ticket.objects.select_related("user").filter(pk=ticket_id).first()
    if ticket is None:  # deleted before the worker got to it: nothing to say
        return
    notifications.notify_staff_of_new_ticket(ticket)
