import secrets
import uuid

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.db import models
from django.utils import timezone

from hosting.db import choices_check


class TicketPriority(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    CRITICAL = "critical", "Critical"


class TicketStatus(models.TextChoices):
    OPEN = "open", "Open"
    IN_PROGRESS = "in_progress", "In progress"
    RESOLVED = "resolved", "Resolved"
    CLOSED = "closed", "Closed"


def reply_token_new() -> str:
    """The secret in a ticket's reply address, support+<token>@...: lower case, since
    mail systems may change the case of a local part."""
    return secrets.token_hex(12)


class Ticket(models.Model):
    Priority = TicketPriority
    Status = TicketStatus

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="tickets"
    )
    server = models.ForeignKey(
        "servers.Server",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="tickets",
    )
    subject = models.CharField(max_length=200)
    description = models.TextField()
    priority = models.CharField(
        max_length=16, choices=TicketPriority.choices, default=TicketPriority.MEDIUM
    )
    status = models.CharField(
        max_length=16, choices=TicketStatus.choices, default=TicketStatus.OPEN
    )
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="assigned_tickets",
        limit_choices_to={"is_staff": True},
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    # The last message the customer can see (theirs or staff's), and when the customer
    # last looked: a staff reply after that is "unread" on their list.
    last_activity_at = models.DateTimeField(default=timezone.now)
    customer_seen_at = models.DateTimeField(null=True, blank=True)
    # The customer wrote last (a new ticket, or a reply staff have not answered yet).
    waiting_on_staff = models.BooleanField(default=True)
    # When the status last changed: a ticket resolved this long ago autocloses.
    status_changed_at = models.DateTimeField(default=timezone.now)
    reply_token = models.CharField(
        max_length=32, unique=True, default=reply_token_new, editable=False
    )
    staff_mailed_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Full-text documents kept by a trigger (migration 0003) whenever the subject,
    # description or a message changes: what the customer may search (no internal notes)
    # and what staff search (everything).
    search_document = SearchVectorField(null=True, editable=False)
    staff_search_document = SearchVectorField(null=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            choices_check("priority", TicketPriority, "support_ticket"),
            choices_check("status", TicketStatus, "support_ticket"),
        ]
        indexes = [
            models.Index(fields=["user", "-created_at"], name="ticket_user_created_idx"),
            models.Index(fields=["status", "-updated_at"], name="ticket_status_updated_idx"),
            models.Index(fields=["user", "-last_activity_at"], name="ticket_user_activity_idx"),
            GinIndex(fields=["search_document"], name="ticket_search_idx"),
            GinIndex(fields=["staff_search_document"], name="ticket_staff_search_idx"),
        ]

    def __str__(self):
        return self.subject

    @property
    def unread(self) -> bool:
        """Support wrote since the customer last viewed the ticket."""
        return self.customer_seen_at is None or self.last_activity_at > self.customer_seen_at


class TicketMessage(models.Model):
    """A reply on a ticket; an internal one is a staff note the customer never sees."""

    ticket = models.ForeignKey(Ticket, on_delete=models.PROTECT, related_name="messages")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="ticket_messages"
    )
    body = models.TextField()
    internal = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    # When its notification mail went out (never, for an internal note).
    mailed_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The Message-ID of the email this reply came in by: the same email read twice is
    # one reply.
    email_message_id = models.CharField(max_length=255, blank=True, editable=False)

    class Meta:
        ordering = ["created_at"]
        indexes = [
            models.Index(fields=["ticket", "created_at"], name="ticketmsg_ticket_created_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["email_message_id"],
                condition=~models.Q(email_message_id=""),
                name="ticketmsg_email_once",
            )
        ]

    def __str__(self):
        return f"Message on {self.ticket} by {self.author}"
