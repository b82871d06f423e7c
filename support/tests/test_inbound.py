"""Mail both ways, inbound half: a reply by email reaches its ticket through a real IMAP
exchange (Dovecot, started once per session), once, without its quoted history, and only
from the ticket's customer or staff; anything else stays unread and is logged."""

from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts.tests.factories import StaffFactory, UserFactory
from support import services
from support.inbound import REJECTED_KEYWORD, mailbox_fetch, reply_text
from support.models import Ticket, TicketMessage
from support.notifications import REPLY_ABOVE

# -- quoted history ----------------------------------------------------------------------


GMAIL = """Thanks, that fixed it.

On Sun, Nov 22, 2026 at 10:04 AM Hosting <
support+abc@help.example.test> wrote:

> -- Write your reply above this line --
> Support replied on your ticket
"""

APPLE = """Still broken after the reboot.
Second line.

> On 22 Nov 2026, at 10:04, Hosting <support+abc@help.example.test> wrote:
>
> Restarted it.
"""

OUTLOOK = """Yes, please go ahead.

________________________________
From: Hosting <support+abc@help.example.test>
Sent: Sunday, November 22, 2026 10:04
To: Carol
Subject: Re: Disk is full
"""

ORIGINAL = """See below.

-----Original Message-----
From: Hosting
"""

SIGNATURE = """Thanks!

-- 
Carol, ACME Ltd
"""  # noqa: W291 (the signature delimiter is dash dash space)

MARKER_ONLY = f"""Works now.

{REPLY_ABOVE}

Support replied on your ticket
"""


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        (GMAIL, "Thanks, that fixed it."),
        (APPLE, "Still broken after the reboot.\nSecond line."),
        (OUTLOOK, "Yes, please go ahead."),
        (ORIGINAL, "See below."),
        (SIGNATURE, "Thanks!"),
        (MARKER_ONLY, "Works now."),
        ("Inline answers:\n> question one\nanswer one\n> question two\nanswer two", None),
        ("On my server nginx says 502.\nHelp.", "On my server nginx says 502.\nHelp."),
    ],
)
def test_quoted_history_is_cut(text, kept):
    if kept is None:  # interleaved quotes: the quoted lines go, the answers stay
        kept = "Inline answers:\nanswer one\nanswer two"
    assert reply_text(text) == kept


def test_crlf_line_ends_are_read_too():
    assert reply_text(OUTLOOK.replace("\n", "\r\n")) == "Yes, please go ahead."


# -- mails -------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _domain(settings):
    settings.SUPPORT_EMAIL_DOMAIN = "help.example.test"


def reply_mail(ticket, sender, body, **headers):
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = f"Hosting Support <support+{ticket.reply_token}@help.example.test>"
    mail["Subject"] = f"Re: {ticket.subject}"
    mail["Message-ID"] = make_msgid(domain="mail.example.test")
    mail["In-Reply-To"] = f"<ticket-{ticket.uuid}@help.example.test>"
    for name, value in headers.items():
        mail[name.replace("_", "-")] = value
    mail.set_content(body)
    return bytes(mail)


@pytest.fixture
def ticket(db):
    customer = UserFactory(email="carol@example.test")
    return services.ticket_create(user=customer, subject="Disk is full", description="df: 100%")


def bodies(ticket):
    return list(ticket.messages.order_by("id").values_list("body", flat=True))


def inbox(mailbox, imap_server):
    return {uid: flags for uid, flags, _ in imap_server.messages(mailbox.login, mailbox.password)}


@pytest.mark.django_db
def test_a_customer_reply_by_email_reaches_the_ticket_once(
    ticket, imap_server, imap_mailbox, caplog
):
    raw = reply_mail(ticket, "Carol <Carol@Example.test>", GMAIL)
    imap_server.deliver(imap_mailbox.login, imap_mailbox.password, raw)
    # The same mail delivered twice (a forwarding rule, a retry by the sender's server).
    imap_server.deliver(imap_mailbox.login, imap_mailbox.password, raw)

    result = mailbox_fetch(imap_mailbox.url)

    assert (result.added, result.duplicates, result.rejected) == (1, 1, 0)
    assert bodies(ticket) == ["Thanks, that fixed it."]
    message = ticket.messages.get()
    assert (message.author, message.internal) == (ticket.user, False)
    assert all("\\Seen" in flags for flags in inbox(imap_mailbox, imap_server).values())
    # Staff hear of it like a reply on the site.
    assert message.ticket.waiting_on_staff
    assert mailbox_fetch(imap_mailbox.url).added == 0  # nothing unread is left


@pytest.mark.django_db
def test_a_staff_reply_by_email_is_a_reply_to_the_customer(ticket, imap_server, imap_mailbox):
    staff = StaffFactory(email="dana@example.test")
    imap_server.deliver(
        imap_mailbox.login,
        imap_mailbox.password,
        reply_mail(ticket, "dana@example.test", f"Cleared /var/log.\n\n{REPLY_ABOVE}\nold"),
    )
    assert mailbox_fetch(imap_mailbox.url).added == 1
    message = ticket.messages.get()
    assert (message.author, message.body, message.internal) == (
        staff,
        "Cleared /var/log.",
        False,
    )
    assert Ticket.objects.get(pk=ticket.pk).status == Ticket.Status.IN_PROGRESS


@pytest.mark.django_db
def test_mail_that_is_not_a_reply_stays_unread_and_is_logged(
    ticket, imap_server, imap_mailbox, caplog
):
    stranger = reply_mail(ticket, "mallory@example.test", "I am not the customer")
    other_customer = UserFactory(email="bob@example.test")
    not_theirs = reply_mail(ticket, other_customer.email, "Neither am I")
    unknown = reply_mail(ticket, "carol@example.test", "Wrong token").replace(
        ticket.reply_token.encode(), b"0" * 24
    )
    robot = reply_mail(
        ticket, "carol@example.test", "I am out of the office", Auto_Submitted="auto-replied"
    )
    for raw in (stranger, not_theirs, unknown, robot):
        imap_server.deliver(imap_mailbox.login, imap_mailbox.password, raw)

    result = mailbox_fetch(imap_mailbox.url)

    assert (result.added, result.rejected) == (0, 4)
    assert not TicketMessage.objects.exists()
    flags = inbox(imap_mailbox, imap_server).values()
    assert all("\\Seen" not in f and REJECTED_KEYWORD in f for f in flags)
    logged = " ".join(r.getMessage() for r in caplog.records if r.name == "support.inbound")
    assert "mallory@example.test is neither the ticket's customer nor staff" in logged
    assert "bob@example.test is neither" in logged
    assert "No ticket has this reply address" in logged
    assert "automatic reply" in logged
    # Left for a person, not read again every minute.
    assert mailbox_fetch(imap_mailbox.url).rejected == 0


@pytest.mark.django_db
def test_a_reply_by_email_to_a_closed_ticket_is_refused(ticket, imap_server, imap_mailbox):
    Ticket.objects.filter(pk=ticket.pk).update(status=Ticket.Status.CLOSED)
    imap_server.deliver(
        imap_mailbox.login, imap_mailbox.password, reply_mail(ticket, "carol@example.test", "Hi")
    )
    assert mailbox_fetch(imap_mailbox.url).rejected == 1
    assert not TicketMessage.objects.exists()


@pytest.mark.django_db
def test_the_command_reads_the_mailbox(ticket, imap_server, imap_mailbox, settings, capsys):
    imap_server.deliver(
        imap_mailbox.login,
        imap_mailbox.password,
        reply_mail(ticket, "carol@example.test", "By the command."),
    )
    settings.SUPPORT_IMAP_URL = imap_mailbox.url
    call_command("support_fetch_mail")
    assert "Replies added: 1" in capsys.readouterr().out
    assert bodies(ticket) == ["By the command."]


def test_the_command_says_what_is_missing(settings):
    settings.SUPPORT_IMAP_URL = ""
    with pytest.raises(CommandError, match="Set SUPPORT_IMAP_URL"):
        call_command("support_fetch_mail")


@pytest.mark.django_db
def test_a_wrong_password_is_a_clear_error(imap_server, imap_mailbox):
    url = imap_mailbox.url.replace(f":{imap_mailbox.password}@", ":wrong@")
    with pytest.raises(CommandError, match="The support mailbox could not be read"):
        call_command("support_fetch_mail", url=url)
