import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from hosting.db import choices_check
from hosting.money import format_cents


class Plan(models.Model):
    """A VPS size a customer can buy; seeded by a data migration."""

    slug = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=64)
    price_cents = models.PositiveIntegerField(help_text="Price per month, in cents.")
    currency = models.CharField(max_length=3, default="usd")
    vcpus = models.PositiveSmallIntegerField()
    memory_mb = models.PositiveIntegerField()
    disk_gb = models.PositiveIntegerField()
    provider_size_slug = models.CharField(max_length=64, help_text="DigitalOcean size slug.")
    stripe_price_id = models.CharField(max_length=255, blank=True)
    is_active = models.BooleanField(default=True)
    sort_order = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["sort_order", "price_cents"]
        constraints = [
            models.CheckConstraint(
                condition=Q(currency__regex=r"^[a-z]{3}$"), name="billing_plan_currency_iso"
            ),
        ]

    def __str__(self):
        return self.name

    @property
    def memory_gb(self):
        return self.memory_mb / 1024

    @property
    def price_display(self):
        return format_cents(self.price_cents, self.currency)


class PaymentStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Paid"
    REFUNDED = "refunded", "Refunded"
    FAILED = "failed", "Failed"


def _unique_when_set(field: str):
    return models.UniqueConstraint(
        fields=[field], condition=~Q(**{field: ""}), name=f"billing_payment_{field}_unique"
    )


class PaymentKind(models.TextChoices):
    PURCHASE = "purchase", "Purchase"
    RENEWAL = "renewal", "Renewal"


class Payment(models.Model):
    """One payment for one plan. Stripe ids are unique when set, so one Stripe object can
    never be booked against two payments."""

    Status = PaymentStatus
    Kind = PaymentKind

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    kind = models.CharField(
        max_length=16,
        choices=PaymentKind.choices,
        default=PaymentKind.PURCHASE,
        db_default=PaymentKind.PURCHASE,
    )
    # The server a renewal paid for (a purchase's server points at its payment instead).
    renews = models.ForeignKey(
        "servers.Server",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="renewals",
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="payments"
    )
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="payments")
    amount_cents = models.PositiveIntegerField()
    currency = models.CharField(max_length=3, default="usd")
    status = models.CharField(
        max_length=16, choices=PaymentStatus.choices, default=PaymentStatus.PENDING
    )
    stripe_checkout_session_id = models.CharField(max_length=255, blank=True, default="")
    # Where the customer pays; kept so a second click reuses the same open session.
    checkout_url = models.TextField(blank=True, default="", db_default="")
    stripe_customer_id = models.CharField(max_length=255, blank=True, default="", db_default="")
    stripe_subscription_id = models.CharField(max_length=255, blank=True, default="", db_default="")
    stripe_invoice_id = models.CharField(max_length=255, blank=True, default="", db_default="")
    stripe_payment_intent_id = models.CharField(max_length=255, blank=True, default="")
    stripe_charge_id = models.CharField(max_length=255, blank=True, default="")
    stripe_refund_id = models.CharField(max_length=255, blank=True, default="")
    # Said to the customer: why a payment failed, why it was refunded.
    failure_reason = models.TextField(blank=True, default="", db_default="")
    refund_reason = models.TextField(blank=True, default="", db_default="")
    created_at = models.DateTimeField(default=timezone.now)
    paid_at = models.DateTimeField(null=True, blank=True)
    refunded_at = models.DateTimeField(null=True, blank=True)
    # A chargeback: the customer's bank took the money back pending review.
    stripe_dispute_id = models.CharField(max_length=255, blank=True, default="", db_default="")
    dispute_reason = models.CharField(max_length=64, blank=True, default="", db_default="")
    disputed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            choices_check("status", PaymentStatus, "billing_payment"),
            choices_check("kind", PaymentKind, "billing_payment"),
            models.CheckConstraint(
                condition=Q(kind=PaymentKind.PURCHASE) | Q(renews__isnull=False),
                name="billing_payment_renewal_has_server",
            ),
            _unique_when_set("stripe_checkout_session_id"),
            _unique_when_set("stripe_invoice_id"),
            _unique_when_set("stripe_payment_intent_id"),
            _unique_when_set("stripe_charge_id"),
            _unique_when_set("stripe_refund_id"),
            models.CheckConstraint(
                condition=~Q(status=PaymentStatus.SUCCEEDED) | Q(paid_at__isnull=False),
                name="billing_payment_paid_has_paid_at",
            ),
            models.CheckConstraint(
                condition=~Q(status=PaymentStatus.REFUNDED) | Q(refunded_at__isnull=False),
                name="billing_payment_refunded_has_refunded_at",
            ),
        ]
        indexes = [
            models.Index(fields=["user", "-created_at"], name="payment_user_created_idx"),
            models.Index(fields=["status", "-created_at"], name="payment_status_created_idx"),
            models.Index(
                fields=["stripe_subscription_id"],
                condition=~Q(stripe_subscription_id=""),
                name="payment_subscription_idx",
            ),
        ]

    def __str__(self):
        return f"{self.plan} · {self.amount_display} · {self.get_status_display()}"

    @property
    def amount_display(self):
        return format_cents(self.amount_cents, self.currency)

    @property
    def is_paid(self) -> bool:
        """Paid and not refunded."""
        return self.status == PaymentStatus.SUCCEEDED


class SubscriptionStatus(models.TextChoices):
    """Stripe's subscription statuses, mirrored as Stripe says them."""

    INCOMPLETE = "incomplete", "Incomplete"
    INCOMPLETE_EXPIRED = "incomplete_expired", "Incomplete, expired"
    TRIALING = "trialing", "Trial"
    ACTIVE = "active", "Active"
    PAST_DUE = "past_due", "Past due"
    CANCELED = "canceled", "Canceled"
    UNPAID = "unpaid", "Unpaid"
    PAUSED = "paused", "Paused"


# Stripe is still trying to collect: the grace period runs.
OVERDUE_STATUSES = [SubscriptionStatus.PAST_DUE, SubscriptionStatus.UNPAID]


def billing_grace() -> timedelta:
    """How long a failed renewal may stay unpaid before the server is suspended."""
    return timedelta(days=settings.BILLING_GRACE_DAYS)


def suspension_due(past_due_since: datetime) -> datetime:
    """When a renewal unpaid since `past_due_since` gets the server suspended."""
    return past_due_since + billing_grace()


class Subscription(models.Model):
    """The monthly subscription that pays for one server, as Stripe last told us (events,
    or a re-read during reconciliation), plus what we did about it: when it fell overdue,
    when its server was suspended, when a canceled one's server is to be deleted."""

    Status = SubscriptionStatus

    server = models.OneToOneField(
        "servers.Server", on_delete=models.PROTECT, related_name="subscription"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="subscriptions"
    )
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="subscriptions")
    stripe_subscription_id = models.CharField(max_length=255, unique=True)
    stripe_customer_id = models.CharField(max_length=255, blank=True, default="")
    status = models.CharField(
        max_length=24, choices=SubscriptionStatus.choices, default=SubscriptionStatus.ACTIVE
    )
    current_period_end = models.DateTimeField(null=True, blank=True)
    cancel_at_period_end = models.BooleanField(default=False)
    # The first renewal that failed and is still unpaid: the grace period counts from here.
    past_due_since = models.DateTimeField(null=True, blank=True)
    # Said to the customer while past due, with where to pay (Stripe's invoice page).
    failure_reason = models.TextField(blank=True, default="")
    pay_url = models.TextField(blank=True, default="")
    suspended_at = models.DateTimeField(null=True, blank=True)
    # Staff suspended it (abuse, a dispute): a payment does not lift that, staff do.
    suspended_by_staff = models.BooleanField(default=False)
    canceled_at = models.DateTimeField(null=True, blank=True)
    # A canceled subscription's server is destroyed after this, and never before the
    # customer was warned (deletion_warned_at).
    delete_after = models.DateTimeField(null=True, blank=True)
    deletion_warned_at = models.DateTimeField(null=True, blank=True)
    # When Stripe last told us its state (an event, or reconciliation's re-read).
    synced_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [choices_check("status", SubscriptionStatus, "billing_subscription")]
        indexes = [
            models.Index(fields=["user"], name="subscription_user_idx"),
            models.Index(
                fields=["past_due_since"],
                condition=Q(past_due_since__isnull=False),
                name="subscription_overdue_idx",
            ),
            models.Index(
                fields=["delete_after"],
                condition=Q(delete_after__isnull=False),
                name="subscription_delete_after_idx",
            ),
        ]

    def __str__(self):
        return self.stripe_subscription_id

    @property
    def suspends_at(self) -> datetime | None:
        """While past due: when the server is suspended unless paid."""
        return suspension_due(self.past_due_since) if self.past_due_since else None


class StripeEvent(models.Model):
    """Every Stripe webhook event we accepted. The unique event id makes a redelivered
    event a no-op."""

    event_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=128)
    payload = models.JSONField()
    received_at = models.DateTimeField(default=timezone.now)
    processed_at = models.DateTimeField(null=True, blank=True)
    # How long the last processing took, for staff looking at a slow or failing event.
    processing_ms = models.PositiveIntegerField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0, db_default=0)
    error = models.TextField(blank=True)
    # The payment the event was about, once a handler found it.
    payment = models.ForeignKey(
        Payment, on_delete=models.PROTECT, null=True, blank=True, related_name="stripe_events"
    )

    class Meta:
        ordering = ["-received_at"]
        indexes = [
            models.Index(fields=["type", "-received_at"], name="stripeevent_type_idx"),
            # Reconciliation looks for events still waiting to be processed.
            models.Index(
                fields=["received_at"],
                condition=Q(processed_at__isnull=True),
                name="stripeevent_unprocessed_idx",
            ),
        ]

    def __str__(self):
        return f"{self.type} {self.event_id}"


class SimulatedSessionStatus(models.TextChoices):
    OPEN = "open", "Open"
    COMPLETE = "complete", "Complete"
    EXPIRED = "expired", "Expired"


class SimulatedPaymentStatus(models.TextChoices):
    UNPAID = "unpaid", "Unpaid"
    PAID = "paid", "Paid"


class SimulatedSubscriptionStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    PAST_DUE = "past_due", "Past due"
    CANCELED = "canceled", "Canceled"


class SimulatedCheckoutSession(models.Model):
    """The offline Stripe stand-in's Checkout Sessions, kept in PostgreSQL so the web
    process that shows the page and the one that answers the webhook agree. Unused when
    STRIPE_SECRET_KEY is set."""

    session_id = models.CharField(max_length=64, unique=True)
    idempotency_key = models.CharField(max_length=255, unique=True)
    client_reference_id = models.CharField(max_length=64)
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="+")
    amount_cents = models.PositiveIntegerField()
    currency = models.CharField(max_length=3, default="usd")
    customer_email = models.EmailField(blank=True)
    success_url = models.TextField()
    cancel_url = models.TextField()
    # As Stripe says them.
    status = models.CharField(
        max_length=16, choices=SimulatedSessionStatus.choices, default=SimulatedSessionStatus.OPEN
    )
    payment_status = models.CharField(
        max_length=16,
        choices=SimulatedPaymentStatus.choices,
        default=SimulatedPaymentStatus.UNPAID,
    )
    refund_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)
    # The subscription a paid session starts (one per session, `sub_sim_<hex>`), as
    # Stripe would keep it; empty until paid.
    subscription_status = models.CharField(
        max_length=16, choices=SimulatedSubscriptionStatus.choices, blank=True
    )
    current_period_end = models.DateTimeField(null=True, blank=True)
    cancel_at_period_end = models.BooleanField(default=False)
    # The simulator page's "make the next renewal fail": the card is declined once.
    fail_next_renewal = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            choices_check("status", SimulatedSessionStatus, "billing_simulatedsession"),
            choices_check("payment_status", SimulatedPaymentStatus, "billing_simulatedsession"),
        ]
        indexes = [
            models.Index(
                fields=["current_period_end"],
                condition=Q(subscription_status="active"),
                name="simulated_renewal_due_idx",
            )
        ]

    def __str__(self):
        return self.session_id

    @property
    def amount_display(self):
        return format_cents(self.amount_cents, self.currency)


class SimulatedInvoice(models.Model):
    """A renewal invoice of a simulated subscription (number 2 on: the first invoice is
    the session's own). `open` when the card was declined, until paid on the simulator
    page."""

    session = models.ForeignKey(
        SimulatedCheckoutSession, on_delete=models.CASCADE, related_name="renewal_invoices"
    )
    number = models.PositiveIntegerField()
    amount_cents = models.PositiveIntegerField()
    currency = models.CharField(max_length=3, default="usd")
    paid = models.BooleanField(default=False)
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now)
    paid_at = models.DateTimeField(null=True, blank=True)
    refund_id = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["session", "number"]
        constraints = [
            models.UniqueConstraint(
                fields=["session", "number"], name="billing_simulatedinvoice_number_unique"
            )
        ]

    def __str__(self):
        return f"{self.session.session_id} #{self.number}"


class SimulatedEvent(models.Model):
    """The events the simulator owes the webhook, written in the transaction that changed
    its state and delivered (signed, in order) until the webhook accepts each: Stripe's
    own at-least-once delivery, so a crash between the change and the delivery loses
    nothing."""

    event_id = models.CharField(max_length=64, unique=True)
    type = models.CharField(max_length=64)
    payload = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["pk"]
        indexes = [
            models.Index(
                fields=["id"],
                condition=Q(delivered_at__isnull=True),
                name="simulated_event_pending_idx",
            )
        ]

    def __str__(self):
        return f"{self.event_id} ({self.type})"
