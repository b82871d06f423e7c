"""`manage.py support_fetch_mail`: read the support mailbox once and add the replies."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from support.inbound import MailboxError, mailbox_fetch


class Command(BaseCommand):
    help = (
        "Read unread mail in the SUPPORT_IMAP_URL mailbox: replies to a ticket's address "
        "from its customer or staff are added to the ticket and marked read; anything else "
        "is left unread and logged. The worker does this every minute when the URL is set."
    )

    def add_arguments(self, parser):
        parser.add_argument("--url", help="An IMAP URL to read instead of SUPPORT_IMAP_URL.")

    def handle(self, *args, url=None, **options):
        url = url or settings.SUPPORT_IMAP_URL
        if not url:
            raise CommandError(
                "Set SUPPORT_IMAP_URL (imaps://user:password@host/INBOX) or pass --url."
            )
        try:
            result = mailbox_fetch(url)
        except MailboxError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Replies added: {result.added}")
        self.stdout.write(f"Already added before: {result.duplicates}")
        self.stdout.write(f"Left unread (see the log for why): {result.rejected}")
