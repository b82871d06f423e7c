"""Mail both ways, outbound half: who is mailed on what, with the threading headers and
the reply address; notes are never mailed; every mail is a job, sent once, and a failed
send stays visible (the message is not marked mailed, the job retries)."""

import pytest
from procrastinate.contrib.django.models import ProcrastinateJob

from accounts.tests.factories import StaffFactory, UserFactory
from hosting.testing import run_jobs
from support import services
from support.models import TicketMessage
from support.tasks import ticket_message_notify, ticket_notify_staff

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _mail_settings(settings):
    settings.SUPPORT_EMAIL_DOMAIN = "help.example.test"
    settings.STAFF_NOTIFICATION_EMAILS = ["desk@example.test"]
    settings.SITE_URL = "https://panel.example.test"


def jobs(task):
    return ProcrastinateJob.objects.filter(task_name=f"support.tasks.{task}")


def notify(message):
    (job,) = jobs("ticket_message_notify").filter(args={"message_id": message.pk})
    ticket_message_notify(**job.args)


def open_ticket(**kwargs):
    return services.ticket_create(
        user=kwargs.pop("user", None) or UserFactory(email="carol@example.test"),
        subject="Disk is full",
        description="df says 100%",
        **kwargs,
    )


def test_staff_hear_of_a_new_ticket_with_the_thread_root_and_reply_address(mailoutbox):
    ticket = open_ticket()
    ticket_notify_staff(ticket_id=ticket.pk)
    ticket_notify_staff(ticket_id=ticket.pk)  # run again (a retried job): no second mail

    (mail,) = mailoutbox
    assert mail.to == ["desk@example.test"]
    assert mail.subject == "[Hosting] New ticket: Disk is full"
    assert mail.reply_to == [f"support+{ticket.reply_token}@help.example.test"]
    assert mail.extra_headers["Message-ID"] == f"<ticket-{ticket.uuid}@help.example.test>"
    assert "df says 100%" in mail.body and "carol@example.test" in mail.body
    assert f"https://panel.example.test/admin/support/ticket/{ticket.pk}/change/" in mail.body
    ticket.refresh_from_db()
    assert ticket.staff_mailed_at is not None


def test_a_staff_reply_is_mailed_to_the_customer_threaded_under_the_ticket(mailoutbox):
    ticket = open_ticket()
    reply = services.ticket_reply_by_staff(
        ticket=ticket, author=StaffFactory(), body="Deleted old logs: 40% now."
    )
    notify(reply)
    notify(reply)

    (mail,) = mailoutbox
    assert mail.to == ["carol@example.test"]
    assert mail.subject == "[Hosting] Re: Disk is full"
    root = f"<ticket-{ticket.uuid}@help.example.test>"
    assert mail.extra_headers == {
        "Message-ID": f"<ticket-{ticket.uuid}.{reply.pk}@help.example.test>",
        "In-Reply-To": root,
        "References": root,
    }
    assert mail.reply_to == [f"support+{ticket.reply_token}@help.example.test"]
    assert "Deleted old logs: 40% now." in mail.body
    assert f"https://panel.example.test/support/tickets/{ticket.uuid}/" in mail.body
    # The headers reach the wire as written.
    message = mail.message()
    assert message["Message-ID"] == f"<ticket-{ticket.uuid}.{reply.pk}@help.example.test>"
    assert message["In-Reply-To"] == root
    reply.refresh_from_db()
    assert reply.mailed_at is not None


def test_an_internal_note_is_never_mailed(mailoutbox):
    ticket = open_ticket()
    note = services.ticket_reply_by_staff(
        ticket=ticket, author=StaffFactory(), body="Customer is on the old plan.", internal=True
    )
    assert not jobs("ticket_message_notify").exists()  # no job at all
    ticket_message_notify(message_id=note.pk)  # and a job, if one existed, sends nothing
    assert mailoutbox == []
    note.refresh_from_db()
    assert note.mailed_at is None


def test_a_customer_reply_goes_to_the_assignee_when_there_is_one(mailoutbox):
    customer = UserFactory(email="carol@example.test")
    ticket = open_ticket(user=customer)
    first = services.ticket_reply_by_customer(ticket_id=ticket.pk, user=customer, body="Any news?")
    notify(first)
    assert [mail.to for mail in mailoutbox] == [["desk@example.test"]]

    assignee = StaffFactory(email="dana@example.test")
    services.ticket_assign(ticket=ticket, assignee=assignee, actor=assignee)
    second = services.ticket_reply_by_customer(ticket_id=ticket.pk, user=customer, body="Hello?")
    notify(second)

    mail = mailoutbox[-1]
    assert mail.to == ["dana@example.test"]
    assert "Hello?" in mail.body and "carol@example.test" in mail.body
    assert mail.extra_headers["In-Reply-To"] == f"<ticket-{ticket.uuid}@help.example.test>"


def test_without_staff_notification_emails_every_active_staff_member_is_mailed(
    settings, mailoutbox
):
    settings.STAFF_NOTIFICATION_EMAILS = []
    StaffFactory(email="erin@example.test")
    StaffFactory(email="gone@example.test", is_active=False)
    ticket = open_ticket()
    ticket_notify_staff(ticket_id=ticket.pk)
    assert mailoutbox[0].to == ["erin@example.test"]


class BrokenSMTP:
    """An email backend whose server refuses every message."""

    def __init__(self, *args, **kwargs):
        pass

    def send_messages(self, messages):
        raise ConnectionRefusedError("SMTP server refused the connection")


@pytest.mark.django_db(transaction=True)
def test_a_mail_that_cannot_be_sent_is_retried_and_stays_visible(settings, mailoutbox):
    """Peers lose ticket mail silently: here the job fails and is scheduled again, the
    message stays "not mailed" in the admin, and once SMTP is back the retry sends it."""
    settings.EMAIL_BACKEND = f"{__name__}.BrokenSMTP"
    ticket = open_ticket()
    reply = services.ticket_reply_by_staff(ticket=ticket, author=StaffFactory(), body="Fixed.")
    run_jobs()

    job = jobs("ticket_message_notify").get()
    assert (job.status, job.attempts) == ("todo", 1)  # failed once, waiting for its retry
    reply.refresh_from_db()
    assert reply.mailed_at is None

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    ProcrastinateJob.objects.filter(pk=job.pk).update(scheduled_at=None)  # due now
    run_jobs()
    job.refresh_from_db()
    assert job.status == "succeeded"
    assert [mail.to for mail in mailoutbox if "Fixed." in mail.body] == [["carol@example.test"]]
    assert TicketMessage.objects.get(pk=reply.pk).mailed_at is not None
