"""Full-text search of tickets: the customer's search box (`/support/?q=`) and the admin's
(`/admin/support/ticket/?q=`). The documents are kept by PostgreSQL triggers (migration
0003), so every test writes through the services or the ORM and reads back what the
database found: stemming, ranking (subject before description before replies), another
customer's tickets and internal notes never reaching a customer, the trigger following
edits and deletions, pinned query counts, and bad input never a 500."""

import pytest
from django.contrib.postgres.search import SearchQuery
from django.db import connection
from django.test import Client
from django.utils import timezone

from accounts.tests.factories import StaffFactory, UserFactory
from hosting import tenant
from hosting.admin_links import admin_url
from support import selectors, services
from support.models import Ticket, TicketMessage

pytestmark = pytest.mark.django_db

NO_MATCH = 'data-testid="no-results"'


@pytest.fixture(autouse=True)
def _admin_without_mfa(settings):
    settings.STAFF_REQUIRE_MFA = False


@pytest.fixture(autouse=True)
def _no_hourly_limit(settings):
    """Tests open many tickets through the service; the hourly limit has its own test."""
    settings.SUPPORT_RATE_LIMIT = 10_000


def open_ticket(user, subject="Help please", description="Something is wrong.") -> Ticket:
    return services.ticket_create(user=user, subject=subject, description=description)


def customer_reply(ticket, body) -> TicketMessage:
    return services.ticket_reply_by_customer(ticket_id=ticket.pk, user=ticket.user, body=body)


def staff_reply(ticket, body, *, internal=False) -> TicketMessage:
    return services.ticket_reply_by_staff(
        ticket=ticket, author=StaffFactory(), body=body, internal=internal
    )


def found(user, search, status_filter="") -> list[str]:
    """The subjects the customer's search finds, in the order shown."""
    page = selectors.tickets_page_for(user, status_filter, search)
    return [ticket.subject for ticket in page["tickets"]]


def customer_page(user, search) -> str:
    """The customer's `/support/?q=` page, in a client of its own (the `client` fixture may
    be signed in as staff)."""
    client = Client()
    client.force_login(user)
    response = client.get("/support/", {"q": search})
    assert response.status_code == 200
    return response.content.decode()


def in_order(page: str, *texts: str) -> bool:
    """Every text is on the page, in this order."""
    positions = [page.find(text) for text in texts]
    return -1 not in positions and positions == sorted(positions)


def admin_search(client, search):
    response = client.get(admin_url(Ticket, "changelist"), {"q": search})
    assert response.status_code == 200, response.content.decode()[:3000]
    return response


def admin_found(client, search) -> list[str]:
    return [ticket.subject for ticket in admin_search(client, search).context["cl"].result_list]


def staff_found(search) -> list[str]:
    """The subjects whose staff document matches: what the admin's search filters on."""
    query = SearchQuery(search, search_type="websearch", config="english")
    return sorted(
        Ticket.objects.filter(staff_search_document=query).values_list("subject", flat=True)
    )


# -- the customer's search ---------------------------------------------------------------


def test_a_word_only_in_a_reply_is_found_and_words_are_stemmed():
    """A word that is only in a public reply (the customer's or staff's) finds the ticket,
    and English stemming matches "disks" to "disk" and "rebooting" to "rebooted"."""
    user = UserFactory()
    ticket = open_ticket(user, "Cannot log in", "The panel refuses my password.")
    open_ticket(user, "Billing question", "Why two invoices?")
    customer_reply(ticket, "Now the disk is full as well.")
    staff_reply(ticket, "We rebooted the machine.")

    assert found(user, "disk") == ["Cannot log in"]
    assert found(user, "disks") == ["Cannot log in"]
    assert found(user, "rebooting") == ["Cannot log in"]
    assert found(user, "invoice") == ["Billing question"]
    assert found(user, "kangaroo") == []

    page = customer_page(user, "disks")
    assert "Cannot log in" in page and "Billing question" not in page
    assert NO_MATCH not in page


def test_the_subject_match_comes_first():
    """Subject (A) before description (B) before a reply (C), although the reply's ticket
    has the newest activity and the subject's the oldest: without the rank the order would
    be the reverse."""
    user = UserFactory()
    in_subject = open_ticket(user, "Printer offline", "It stopped.")
    in_description = open_ticket(user, "Office trouble", "The printer jams.")
    in_reply = open_ticket(user, "Other problem", "Nothing works.")
    customer_reply(in_reply, "Also the printer.")
    activity = Ticket.objects.order_by("-last_activity_at", "-id").values_list("pk", flat=True)
    assert list(activity) == [in_reply.pk, in_description.pk, in_subject.pk]

    assert found(user, "printer") == ["Printer offline", "Office trouble", "Other problem"]
    page = customer_page(user, "printer")
    assert in_order(page, "Printer offline", "Office trouble", "Other problem")
    # Without a search the list is by activity, newest first.
    assert found(user, "") == ["Other problem", "Office trouble", "Printer offline"]


def test_another_customers_ticket_is_never_found():
    """A second customer's ticket with the same word (in its subject, the best rank) is in
    neither the selector's results nor the page."""
    mine, theirs = UserFactory(), UserFactory()
    open_ticket(mine, "My backup failed", "Since Monday.")
    open_ticket(theirs, "Their backup secret", "Backup backup backup.")

    assert found(mine, "backup") == ["My backup failed"]
    assert found(theirs, "backup") == ["Their backup secret"]
    page = customer_page(mine, "backup")
    assert "My backup failed" in page and "Their backup secret" not in page
    # Nothing of theirs even when only their ticket matches.
    page = customer_page(mine, "secret")
    assert "Their backup secret" not in page and NO_MATCH in page


def note_only_in_staff_document():
    """A customer whose ticket has a word (quokka) only in an internal note."""
    user = UserFactory()
    ticket = open_ticket(user, "Slow website", "Pages take ages.")
    open_ticket(user, "Unrelated", "Nothing here.")
    staff_reply(ticket, "Customer is on the abusive list, see quokka.", internal=True)
    staff_reply(ticket, "We are looking into it.")
    return user


def test_internal_notes_are_never_searched_for_the_customer():
    """A word only in a staff internal note does not find the ticket for its customer
    (selector and page), though it is in the staff document; a public staff reply is in
    both."""
    user = note_only_in_staff_document()

    assert found(user, "quokka") == []
    assert found(user, "abusive") == []
    page = customer_page(user, "quokka")
    assert NO_MATCH in page and "Slow website" not in page
    assert staff_found("quokka") == ["Slow website"]

    assert found(user, "looking") == ["Slow website"]
    assert staff_found("looking") == ["Slow website"]


def test_the_admin_search_finds_internal_notes(client, staff):
    """The admin's search finds a ticket by a word only in its internal note."""
    note_only_in_staff_document()
    assert admin_found(client, "quokka") == ["Slow website"]
    assert admin_found(client, "abusive") == ["Slow website"]
    assert admin_found(client, "looking") == ["Slow website"]


# -- the admin's search ------------------------------------------------------------------


def test_the_admin_search_ranks_subject_matches_first(client, staff):
    """In the admin too the subject's match comes first, then the description's, a reply's,
    an internal note's (D), though the order of activity is the reverse."""
    user = UserFactory()
    open_ticket(user, "Firewall rules", "Please check.")
    open_ticket(user, "Network", "The firewall blocks port 25.")
    in_reply = open_ticket(user, "Mail", "Cannot send.")
    customer_reply(in_reply, "Could it be the firewall?")
    in_note = open_ticket(user, "Other", "Something else.")
    staff_reply(in_note, "Check the firewall first.", internal=True)
    open_ticket(user, "Unrelated", "Nothing here.")
    Ticket.objects.filter(pk=in_note.pk).update(last_activity_at=timezone.now())

    assert admin_found(client, "firewall") == ["Firewall rules", "Network", "Mail", "Other"]
    page = admin_search(client, "firewall").content.decode()
    assert in_order(page, "Firewall rules", "Network", "Mail", "Other")
    # Without a search the admin lists by activity, newest first.
    response = client.get(admin_url(Ticket, "changelist"))
    assert [t.subject for t in response.context["cl"].result_list][:2] == ["Other", "Unrelated"]


def test_the_admin_search_finds_a_customers_tickets_by_email(client, staff):
    """The customer's exact email (any case) finds all their tickets, nobody else's, though
    the email is nowhere in the tickets' text."""
    user = UserFactory(email="Ada.Lovelace@example.org")
    open_ticket(user, "First ticket", "One.")
    open_ticket(user, "Second ticket", "Two.")
    open_ticket(UserFactory(), "Someone else's", "Three.")

    assert sorted(admin_found(client, "ada.lovelace@example.org")) == [
        "First ticket",
        "Second ticket",
    ]
    assert sorted(admin_found(client, " ADA.LOVELACE@EXAMPLE.ORG ")) == [
        "First ticket",
        "Second ticket",
    ]
    assert admin_found(client, "lovelace@example.org") == []


def test_the_admin_search_escapes_the_subject(client, staff):
    """A subject with a script tag is shown as text in the changelist of a search."""
    open_ticket(UserFactory(), "<script>alert(1)</script> wombat", "Hello.")
    page = admin_search(client, "wombat").content.decode()
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; wombat" in page


# -- the trigger keeps the documents current ---------------------------------------------


def test_editing_the_subject_changes_what_is_found():
    """An UPDATE of the subject (queryset update, and a full save of an instance loaded
    before) re-runs the trigger: the old word no longer matches, the new one does, and the
    replies stay in the document."""
    user = UserFactory()
    ticket = open_ticket(user, "Wombat problem", "Description.")
    customer_reply(ticket, "A reply about numbats.")
    assert found(user, "wombat") == ["Wombat problem"]

    Ticket.objects.filter(pk=ticket.pk).update(subject="Kangaroo problem")
    assert found(user, "wombat") == []
    assert found(user, "kangaroo") == ["Kangaroo problem"]
    assert staff_found("wombat") == []
    assert staff_found("kangaroo") == ["Kangaroo problem"]

    ticket.refresh_from_db()
    ticket.subject = "Platypus problem"
    ticket.description = "Now described with echidnas."
    ticket.save()
    assert found(user, "kangaroo") == []
    assert found(user, "platypus") == ["Platypus problem"]
    assert found(user, "echidna") == ["Platypus problem"]
    assert found(user, "description") == []
    assert found(user, "numbat") == ["Platypus problem"]
    assert staff_found("platypus") == ["Platypus problem"]
    assert staff_found("kangaroo") == []


def test_a_full_save_of_a_stale_instance_keeps_the_new_replies():
    """An instance loaded before a reply, saved whole, writes its stale documents back; the
    trigger computes them again, so the reply stays findable."""
    user = UserFactory()
    ticket = open_ticket(user, "Stale instance", "Description.")
    stale = Ticket.objects.get(pk=ticket.pk)
    customer_reply(ticket, "Reply about lemurs.")
    staff_reply(ticket, "Note about tapirs.", internal=True)

    stale.priority = Ticket.Priority.HIGH
    stale.save()
    assert found(user, "lemur") == ["Stale instance"]
    assert staff_found("tapir") == ["Stale instance"]


def test_replies_added_and_deleted_change_what_is_found():
    """A reply added through the service is found at once; a deleted message (public or
    note) is no longer found, by the customer or by staff."""
    user = UserFactory()
    ticket = open_ticket(user, "Server issue", "Description.")
    assert found(user, "gecko") == []

    reply = customer_reply(ticket, "The gecko process crashed.")
    answer = staff_reply(ticket, "The iguana service restarted.")
    note = staff_reply(ticket, "Salamander internal remark.", internal=True)
    assert found(user, "gecko") == ["Server issue"]
    assert found(user, "iguana") == ["Server issue"]
    assert staff_found("salamander") == ["Server issue"]
    assert found(user, "salamander") == []

    TicketMessage.objects.filter(pk=reply.pk).delete()
    note.delete()
    assert found(user, "gecko") == []
    assert staff_found("gecko") == []
    assert staff_found("salamander") == []
    assert found(user, "iguana") == ["Server issue"]  # the other reply stays

    answer.body = "Changed to mention a tortoise."
    answer.save()
    assert found(user, "iguana") == []
    assert found(user, "tortoise") == ["Server issue"]


def test_the_gin_indexes_exist():
    """Both documents have their GIN index, the kind a tsvector @@ query can use."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'support_ticket' "
            "AND indexname IN ('ticket_search_idx', 'ticket_staff_search_idx')"
        )
        indexes = dict(cursor.fetchall())
    assert sorted(indexes) == ["ticket_search_idx", "ticket_staff_search_idx"]
    assert "USING gin (search_document)" in indexes["ticket_search_idx"]
    assert "USING gin (staff_search_document)" in indexes["ticket_staff_search_idx"]


# -- query counts ------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 30])
def test_the_search_query_count_is_pinned(client, django_assert_num_queries, n):
    """`/support/?q=` costs as many queries as the page without a search (session, user;
    the tickets), with 1 or 30 matching tickets with replies and notes."""
    user = UserFactory()
    staff = StaffFactory()
    for i in range(n):
        ticket = open_ticket(user, f"Ticket {i}", "The mailbox is full.")
        customer_reply(ticket, f"Reply {i}")
        services.ticket_reply_by_staff(ticket=ticket, author=staff, body="Note", internal=True)
    open_ticket(user, "Not matching", "Nothing.")
    client.force_login(user)

    with django_assert_num_queries(3 + tenant.SCOPE_QUERIES):  # and the tenant scope
        response = client.get("/support/", {"q": "mailboxes"})
    assert response.status_code == 200
    assert len(response.context["tickets"]) == n


# -- bad input ---------------------------------------------------------------------------

BAD_SEARCHES = [
    '"',
    '""',
    "-",
    "--",
    "or",
    "OR",
    "!!!",
    "&|!():*",
    "'",
    "\\",
    '"disk',
    "-disk",
    "disk or",
    "or disk -",
    "<script>alert(1)</script>",
    "x" * 5_000,
    "disk " * 1_000,
    "ß 日本語 🙂",
]


@pytest.mark.parametrize("search", BAD_SEARCHES)
def test_bad_searches_answer_200(search):
    """Punctuation, websearch operators alone, and very long input: the customer's page
    answers 200 with results or the "No tickets match" message, never a 500."""
    user = UserFactory()
    open_ticket(user, "Disk full", "My disk is full.")
    page = customer_page(user, search)
    assert NO_MATCH in page or "Disk full" in page


@pytest.mark.parametrize("search", BAD_SEARCHES)
def test_bad_searches_answer_200_in_the_admin(client, staff, search):
    """The same inputs in the admin's search: 200, never a 500."""
    open_ticket(UserFactory(), "Disk full", "My disk is full.")
    admin_search(client, search)


def test_operators_work_in_the_customers_search():
    """websearch syntax: a phrase in quotes, "or", and "-" to exclude."""
    user = UserFactory()
    open_ticket(user, "Disk full", "The disk is full.")
    open_ticket(user, "Full mailbox", "The mailbox is full, not the disk.")
    open_ticket(user, "Mailbox quota", "Please raise it.")

    assert found(user, '"disk is full"') == ["Disk full"]
    assert sorted(found(user, "disk -mailbox")) == ["Disk full"]
    assert sorted(found(user, "quota or disk")) == ["Disk full", "Full mailbox", "Mailbox quota"]


def test_the_search_is_cut_to_200_characters():
    """A longer search is cut to what the search box allows (maxlength=200) and echoed."""
    user = UserFactory()
    open_ticket(user, "Disk full", "My disk is full.")
    page = customer_page(user, "disk " + "x" * 4_000)
    assert NO_MATCH in page
    assert "x" * 195 in page and "x" * 196 not in page


def test_a_nul_character_answers_200():
    """A NUL (which PostgreSQL text cannot hold) in the customer's search: 200."""
    user = UserFactory()
    open_ticket(user, "Disk full", "My disk is full.")
    page = customer_page(user, "disk\x00")
    assert NO_MATCH in page or "Disk full" in page


def test_a_nul_character_answers_200_in_the_admin(client, staff):
    """A NUL in the admin's search: 200 (Django's search form refuses it with a message)."""
    open_ticket(UserFactory(), "Disk full", "My disk is full.")
    admin_search(client, "disk\x00")


def test_a_ticket_with_a_megabyte_of_replies_still_takes_replies():
    """PostgreSQL refuses a tsvector over 1 MB; without the trigger's cap, a ticket whose
    replies hold that many distinct words would refuse every further reply and note."""
    import random
    import string

    user = UserFactory()
    ticket = open_ticket(user, "Logs", "Pasting logs.")
    words = random.Random(9).choices(string.ascii_lowercase, k=9 * 130_000)
    pasted = " ".join("".join(words[i : i + 9]) for i in range(0, len(words), 9))
    assert len(pasted) > 1_100_000
    for internal in (False, True):  # the customer's document and the staff one
        TicketMessage.objects.create(ticket=ticket, author=user, body=pasted, internal=internal)

    services.ticket_reply_by_customer(ticket_id=ticket.pk, user=user, body="One more: zebra")
    services.ticket_reply_by_staff(
        ticket=ticket, author=StaffFactory(), body="Noted.", internal=True
    )
    assert ticket.messages.count() == 4
    assert pasted[:9] in str(Ticket.objects.values_list("search_document", flat=True).get())
