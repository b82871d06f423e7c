"""The issue's journey over HTTP with the real worker and a real IMAP exchange: the
customer opens a ticket (staff mailed), staff answer from the admin (the customer is
mailed, threaded), an internal note (never mailed, never shown), the customer replies on
the site and by email (the ticket gets both; staff mailed each time)."""

from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from django.test import Client

from accounts.tests.factories import StaffFactory, UserFactory
from hosting.admin_links import admin_url
from hosting.testing import run_jobs
from servers.tests.factories import ServerFactory
from support.inbound import mailbox_fetch
from support.models import Ticket

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _mail_settings(settings):
    settings.SUPPORT_EMAIL_DOMAIN = "help.example.test"
    settings.STAFF_NOTIFICATION_EMAILS = []  # every active staff member
    settings.STAFF_REQUIRE_MFA = False
    settings.SITE_URL = "https://panel.example.test"


def admin_reply(client, ticket, body, *, internal=False):
    data = {
        "subject": ticket.subject,
        "server": ticket.server_id or "",
        "priority": ticket.priority,
        "messages-TOTAL_FORMS": "1",
        "messages-INITIAL_FORMS": "0",
        "messages-0-body": body,
        "messages-2-TOTAL_FORMS": "0",
        "messages-2-INITIAL_FORMS": "0",
    }
    if internal:
        data["messages-0-internal"] = "on"
    response = client.post(admin_url(ticket), data)
    assert response.status_code == 302, response.context["errors"]


def test_the_support_journey_by_site_admin_and_mail(mailoutbox, imap_server, imap_mailbox):
    customer_client, staff_client = Client(), Client()
    server = ServerFactory(user=UserFactory(email="alice@example.test"))
    customer = server.user
    staff = StaffFactory(email="sam@example.test")
    customer_client.force_login(customer)
    staff_client.force_login(staff)

    # The customer opens a ticket about their server: staff are mailed.
    response = customer_client.post(
        "/support/tickets/new/",
        {
            "subject": "Site down",
            "description": "502 since noon",
            "priority": "high",
            "server": server.pk,
        },
    )
    assert response.status_code == 302
    ticket = Ticket.objects.get(user=customer)
    run_jobs()
    (new,) = mailoutbox
    assert (new.to, new.subject) == (["sam@example.test"], "[Hosting] New ticket: Site down")
    root = new.extra_headers["Message-ID"]

    # Staff answer in the admin: the customer is mailed, in the same thread.
    admin_reply(staff_client, ticket, "Restarted nginx, try now.")
    run_jobs()
    answer = mailoutbox[-1]
    assert answer.to == ["alice@example.test"]
    assert answer.extra_headers["In-Reply-To"] == root
    assert answer.extra_headers["References"] == root
    assert "Restarted nginx, try now." in answer.body

    # An internal note: no mail, and not on the customer's page.
    mailed = len(mailoutbox)
    admin_reply(staff_client, ticket, "Their plan is the old one.", internal=True)
    run_jobs()
    assert len(mailoutbox) == mailed
    page = customer_client.get(f"/support/tickets/{ticket.uuid}/").content.decode()
    assert "Restarted nginx, try now." in page
    assert "Their plan is the old one." not in page

    # The customer replies on the site: staff mailed.
    customer_client.post(f"/support/tickets/{ticket.uuid}/", {"body": "Still 502."})
    run_jobs()
    assert mailoutbox[-1].to == ["sam@example.test"]
    assert "Still 502." in mailoutbox[-1].body

    # ... and by email, answering the customer's mail: the ticket gets it, staff mailed.
    by_mail = EmailMessage()
    by_mail["From"] = "Alice <alice@example.test>"
    (by_mail["To"],) = answer.reply_to
    by_mail["Subject"] = answer.subject
    by_mail["Message-ID"] = make_msgid(domain="mail.example.test")
    by_mail["In-Reply-To"] = answer.extra_headers["Message-ID"]
    by_mail.set_content(f"Works now, thanks!\n\nOn Sun, Nov 22 Hosting wrote:\n> {answer.body}")
    imap_server.deliver(imap_mailbox.login, imap_mailbox.password, bytes(by_mail))
    assert mailbox_fetch(imap_mailbox.url).added == 1
    run_jobs()
    assert "Works now, thanks!" in mailoutbox[-1].body
    assert mailoutbox[-1].to == ["sam@example.test"]

    conversation = list(ticket.messages.order_by("id").values_list("body", "internal"))
    assert conversation == [
        ("Restarted nginx, try now.", False),
        ("Their plan is the old one.", True),
        ("Still 502.", False),
        ("Works now, thanks!", False),
    ]
    page = customer_client.get(f"/support/tickets/{ticket.uuid}/").content.decode()
    assert "Works now, thanks!" in page
    # The server's timeline shows the ticket opened and answered.
    timeline = customer_client.get(f"/servers/{server.uuid}/").content.decode()
    assert "Ticket opened" in timeline and "Support answered" in timeline
