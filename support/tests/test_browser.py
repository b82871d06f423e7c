"""The support desk as a customer sees it in a real browser: opening a ticket about one of
their servers (with markup in it, shown as text), replying, a staff reply marked unread on
the list until they open it, searching their tickets, and closing one. Screenshots go to
test-results/support-*.png."""

import re

import pytest
from playwright.sync_api import expect

from accounts.tests import test_browser as accounts_browser
from accounts.tests.factories import StaffFactory
from billing.tests import test_browser as billing_browser
from servers.tests.factories import ServerFactory
from support import services
from support.models import Ticket

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# A customer signed in through the login form, full-page screenshots into test-results/,
# and the browser's console errors (where it reports anything the CSP refused).
customer = billing_browser.customer
console_errors = accounts_browser.console_errors
screenshot = billing_browser.screenshot

TICKET_URL = re.compile(r"/support/tickets/[0-9a-f-]{36}/$")
SCRIPT = "<script>alert(1)</script>"
REPLY = "The nightly backup of the marmalade database failed again."


@pytest.fixture
def dialogs(page):
    """Every alert/confirm/prompt the page opens (dismissed): an injected script's."""
    opened = []

    def record(dialog):
        opened.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", record)
    return opened


def ticket_row(page, subject: str):
    return page.get_by_test_id("tickets").get_by_role("row").filter(has_text=subject)


def cell(row, column: int):
    """The text of a ticket row's column: 0 subject, 1 status, 2 priority."""
    return row.get_by_role("cell").nth(column)


def open_ticket_with_reply(user, subject: str, reply: str = REPLY) -> Ticket:
    """A ticket of `user`'s, opened and answered by them through the services."""
    ticket = services.ticket_create(user=user, subject=subject, description="It is slow.")
    services.ticket_reply_by_customer(ticket_id=ticket.pk, user=user, body=reply)
    return ticket


def test_open_reply_and_read_a_staff_reply(page, customer, dialogs, console_errors):
    server = ServerFactory(user=customer)
    page.goto("/support/")
    page.get_by_role("link", name="Open a ticket").first.click()
    expect(page).to_have_url(re.compile(r"/support/tickets/new/$"))
    page.get_by_label("Subject").fill("Site down after deploy")
    page.get_by_label("Description").fill(f"Every page is a 502.\n{SCRIPT}")
    page.get_by_label("Priority").select_option(label="High")
    page.get_by_label("Server").select_option(label=server.name)
    screenshot(page, "support-new-ticket")
    page.get_by_role("button", name="Open ticket").click()

    expect(page).to_have_url(TICKET_URL)
    expect(page.get_by_role("status").filter(has_text="Ticket opened")).to_have_text(
        "Ticket opened: we will reply here and by email."
    )
    expect(page.get_by_role("heading", level=1)).to_have_text("Site down after deploy")
    expect(page.get_by_test_id("status")).to_have_text("Open")
    expect(page.get_by_role("link", name=server.name)).to_be_visible()
    conversation = page.get_by_test_id("conversation")
    expect(conversation.get_by_role("listitem").first).to_contain_text(SCRIPT)
    expect(conversation.locator("script")).to_have_count(0)
    ticket_url = page.url

    page.get_by_role("link", name="← Support").click()
    expect(page).to_have_url(re.compile(r"/support/$"))
    row = ticket_row(page, "Site down after deploy")
    expect(cell(row, 1)).to_have_text("Open")
    expect(cell(row, 2)).to_have_text("High")
    expect(row.get_by_test_id("unread")).to_have_count(0)

    row.get_by_role("link", name="Site down after deploy").click()
    expect(page).to_have_url(ticket_url)
    page.get_by_label("Your reply").fill(REPLY)
    page.get_by_role("button", name="Send reply").click()
    expect(page).to_have_url(ticket_url)
    expect(page.get_by_role("status").filter(has_text="Reply sent.")).to_be_visible()
    messages = conversation.get_by_role("listitem")
    expect(messages).to_have_count(2)
    expect(messages.nth(1)).to_contain_text("You wrote")
    expect(messages.nth(1)).to_contain_text(REPLY)
    expect(page.get_by_label("Your reply")).to_have_value("")
    screenshot(page, "support-ticket")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "support-ticket-narrow")
    page.set_viewport_size({"width": 1280, "height": 720})

    ticket = Ticket.objects.get(user=customer)
    assert (ticket.subject, ticket.priority, ticket.server) == (
        "Site down after deploy",
        "high",
        server,
    )
    # Stored as typed, markup and all; the browser's CRLF line breaks stored as LF.
    assert ticket.description == f"Every page is a 502.\n{SCRIPT}"

    services.ticket_reply_by_staff(
        ticket=ticket, author=StaffFactory(), body="We are looking into it."
    )
    page.goto("/support/")
    row = ticket_row(page, "Site down after deploy")
    expect(row.get_by_test_id("unread")).to_have_text("New reply")
    expect(cell(row, 1)).to_have_text("In progress")
    screenshot(page, "support-list-unread")

    row.get_by_role("link", name="Site down after deploy").click()
    expect(page).to_have_url(ticket_url)
    expect(messages).to_have_count(3)
    expect(messages.nth(2)).to_contain_text("Support wrote")
    expect(messages.nth(2)).to_contain_text("We are looking into it.")
    page.get_by_role("link", name="← Support").click()
    expect(ticket_row(page, "Site down after deploy")).to_be_visible()
    expect(page.get_by_test_id("unread")).to_have_count(0)
    assert dialogs == []
    assert console_errors == []


def test_search_from_the_box(page, customer):
    open_ticket_with_reply(customer, "Backups")
    open_ticket_with_reply(customer, "Slow pages", reply="Still slow since Monday.")
    services.ticket_create(user=customer, subject="Billing question", description="Invoice?")
    page.goto("/support/")
    expect(page.get_by_test_id("tickets").get_by_role("row")).to_have_count(4)  # and the head

    box = page.get_by_role("searchbox", name="Search your tickets")
    box.fill("marmalade")
    box.press("Enter")
    expect(page).to_have_url(re.compile(r"/support/\?q=marmalade$"))
    rows = page.get_by_test_id("tickets").locator("tbody tr")
    expect(rows).to_have_count(1)
    expect(cell(rows, 0)).to_have_text("Backups")
    expect(box).to_have_value("marmalade")

    box.fill("zeppelin")
    box.press("Enter")
    expect(page).to_have_url(re.compile(r"/support/\?q=zeppelin$"))
    expect(page.get_by_test_id("no-results")).to_have_text("No tickets match “zeppelin”.")
    expect(page.get_by_test_id("tickets")).to_have_count(0)
    screenshot(page, "support-search-empty")

    page.get_by_role("link", name="Clear").click()
    expect(page).to_have_url(re.compile(r"/support/$"))
    expect(page.get_by_test_id("tickets").locator("tbody tr")).to_have_count(3)


def test_close_a_ticket(page, customer):
    ticket = open_ticket_with_reply(customer, "Please cancel my domain")
    page.goto(f"/support/tickets/{ticket.uuid}/")
    expect(page.get_by_label("Your reply")).to_be_visible()

    page.get_by_role("button", name="Close ticket").click()
    expect(page).to_have_url(re.compile(rf"/support/tickets/{ticket.uuid}/$"))
    expect(page.get_by_role("status").filter(has_text="Ticket closed.")).to_be_visible()
    expect(page.get_by_test_id("status")).to_have_text("Closed")
    closed = page.get_by_role("status").filter(has_text="This ticket is closed")
    expect(closed).to_have_text("This ticket is closed; open a new one.")
    expect(closed.get_by_role("link", name="open a new one")).to_have_attribute(
        "href", "/support/tickets/new/"
    )
    expect(page.get_by_label("Your reply")).to_have_count(0)
    expect(page.get_by_role("button", name="Send reply")).to_have_count(0)
    expect(page.get_by_role("button", name="Close ticket")).to_have_count(0)
    expect(page.get_by_role("button", name="Reopen")).to_be_visible()
    expect(page.get_by_test_id("conversation").get_by_role("listitem")).to_have_count(2)
    screenshot(page, "support-closed")

    ticket.refresh_from_db()
    assert ticket.status == "closed"
    closed.get_by_role("link", name="open a new one").click()
    expect(page).to_have_url(re.compile(r"/support/tickets/new/$"))
