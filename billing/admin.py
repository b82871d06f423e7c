from django.conf import settings
from django.contrib import admin, messages
from django.db.models import Q
from django.template.defaultfilters import pluralize
from django.utils import timezone
from django.utils.formats import date_format

from billing import services, subscriptions, webhooks
from billing.gateways import GatewayError
from billing.models import (
    Payment,
    PaymentKind,
    PaymentStatus,
    Plan,
    StripeEvent,
    Subscription,
)
from billing.subscriptions import SubscriptionRefused
from hosting.admin_actions import confirmation_page, confirmed
from hosting.admin_links import (
    ReadOnlyAdminMixin,
    admin_changelist_link,
    admin_pre,
    link_column,
    related_column,
)
from servers.models import Server


def refund_as_staff(modeladmin, request, payment, *, label: str) -> None:
    """Refund `payment` for the staff member signed in, and say how it went."""
    try:
        refunded = services.payment_refund(
            payment_id=payment.pk,
            kind=services.RefundKind.STAFF,
            reason="Refunded by our staff.",
            actor=request.user,
            request=request,
        )
    except (GatewayError, services.RefundRefused) as exc:
        modeladmin.message_user(request, f"{label}: not refunded: {exc}", messages.ERROR)
        return
    if refunded:
        message = f"{label}: refunded {payment.amount_display} to {payment.user.email}."
        modeladmin.message_user(request, message)
    else:
        modeladmin.message_user(request, f"{label}: already refunded.", messages.WARNING)


def _refund_line(payment) -> str:
    server = getattr(payment, "server", None)
    where = f"server {server.name} ({server.get_status_display()})" if server else "no server"
    return f"{payment.amount_display} from {payment.user.email} for {payment.plan.name}: {where}"


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "slug",
        "price",
        "vcpus",
        "memory",
        "disk",
        "provider_size_slug",
        "is_active",
        "sort_order",
    )
    list_editable = ("is_active", "sort_order")
    list_filter = ("is_active",)
    search_fields = ("name", "slug")

    @admin.display(description="price / month", ordering="price_cents")
    def price(self, obj):
        return obj.price_display

    @admin.display(ordering="memory_mb")
    def memory(self, obj):
        return f"{obj.memory_gb:g} GB"

    @admin.display(ordering="disk_gb")
    def disk(self, obj):
        return f"{obj.disk_gb} GB"


@admin.register(Payment)
class PaymentAdmin(admin.ModelAdmin):
    list_display = (
        "created_at",
        "user_link",
        "plan",
        "kind",
        "amount",
        "status",
        "disputed_at",
        "paid_at",
        "refunded_at",
        "server_link",
    )
    list_filter = (
        "status",
        "kind",
        ("disputed_at", admin.EmptyFieldListFilter),
        "plan",
        "created_at",
    )
    search_fields = (
        "user__email",
        "stripe_invoice_id",
        "stripe_dispute_id",
        "stripe_checkout_session_id",
        "stripe_payment_intent_id",
        "stripe_charge_id",
        "stripe_refund_id",
        "uuid",
    )
    list_select_related = ("user", "plan", "server")
    autocomplete_fields = ("user",)
    actions = ("refund_and_delete_server",)
    STRIPE_FIELDS = (
        "stripe_checkout_session_id",
        "stripe_customer_id",
        "stripe_subscription_id",
        "stripe_invoice_id",
        "stripe_payment_intent_id",
        "stripe_charge_id",
        "stripe_refund_id",
    )
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "user",
                    "plan",
                    "amount_cents",
                    "currency",
                    "status",
                    "failure_reason",
                    "refund_reason",
                    "server_link",
                    "related",
                )
            },
        ),
        ("Stripe", {"fields": STRIPE_FIELDS}),
        ("Dispute", {"fields": ("stripe_dispute_id", "dispute_reason", "disputed_at")}),
        ("Record", {"fields": ("uuid", "kind", "renews", "created_at", "paid_at", "refunded_at")}),
    )
    readonly_fields = (
        "stripe_dispute_id",
        "dispute_reason",
        "disputed_at",
        "kind",
        "renews",
        "server_link",
        "related",
        *STRIPE_FIELDS,
        "failure_reason",
        "refund_reason",
        "uuid",
        "created_at",
        "paid_at",
        "refunded_at",
    )
    related = related_column((StripeEvent, "Stripe events", "payment__id__exact"))

    @admin.action(description="Refund and delete server", permissions=["change"])
    def refund_and_delete_server(self, request, queryset):
        """Asks first; then one refund per payment through the billing service, which also
        deletes the server and destroys its droplet."""
        payments = list(queryset.select_related("user", "plan", "server"))
        refundable = [p for p in payments if p.status == PaymentStatus.SUCCEEDED]
        if not confirmed(request):
            n = len(refundable)
            return confirmation_page(
                self,
                request,
                queryset,
                action="refund_and_delete_server",
                title="Refund and delete server?",
                warning=(
                    "Each payment below is refunded in full through Stripe, its server is "
                    "marked deleted and its droplet destroyed (data on it is lost), its "
                    "subscription is cancelled, and the customer is emailed. This cannot "
                    "be undone."
                ),
                confirm_label=(
                    f"Yes, refund {n} payment{pluralize(n)} and delete the server{pluralize(n)}"
                ),
                items=[_refund_line(p) for p in refundable],
                skipped=[
                    f"{p} from {p.user.email} (only paid payments are refunded)"
                    for p in payments
                    if p not in refundable
                ],
            )
        # Every selected payment gets an answer: one may have been refunded (or found not
        # paid) by someone else since the confirmation page was drawn.
        for payment in payments:
            refund_as_staff(self, request, payment, label=str(payment))
        return None

    def get_readonly_fields(self, request, obj=None):
        # A payment changes only through the billing flows (paid, refunded: with its
        # server, in one transaction), never by editing it here.
        if obj is not None:
            return (*self.readonly_fields, "user", "plan", "amount_cents", "currency", "status")
        return self.readonly_fields

    def has_delete_permission(self, request, obj=None):
        return False  # money history stays

    def formfield_for_choice_field(self, db_field, request, **kwargs):
        if db_field.name == "status":  # only on add; see get_readonly_fields
            kwargs["choices"] = [
                (s.value, s.label) for s in (PaymentStatus.PENDING, PaymentStatus.FAILED)
            ]
        return super().formfield_for_choice_field(db_field, request, **kwargs)

    user_link = link_column("user", "user__email")
    server_link = link_column("server", "server__name")

    @admin.display(ordering="amount_cents")
    def amount(self, obj):
        return obj.amount_display


@admin.register(StripeEvent)
class StripeEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Webhook events as received; written only by the webhook."""

    list_display = (
        "event_id",
        "type",
        "received_at",
        "processed_at",
        "processing_ms",
        "has_error",
        "payment_link",
    )
    list_filter = ("type", "received_at", ("processed_at", admin.EmptyFieldListFilter))
    list_select_related = ("payment",)
    search_fields = ("event_id",)
    date_hierarchy = "received_at"
    fields = (
        "event_id",
        "type",
        "payment_link",
        "received_at",
        "processed_at",
        "processing_ms",
        "attempts",
        "error",
        "payload_pretty",
    )
    readonly_fields = ("payload_pretty", "payment_link")
    actions = ("process_again",)
    payment_link = link_column("payment", description="payment")

    def has_process_again_permission(self, request):
        return request.user.is_staff

    @admin.action(description="Process again", permissions=["process_again"])
    def process_again(self, request, queryset):
        """Run the handler again on the stored payload: safe, as every handler is
        idempotent; an event that failed or waited for its payment is retried."""
        for event in queryset.order_by("received_at"):
            outcome = webhooks.stripe_event_process_again(event=event)
            level = messages.SUCCESS if outcome.http_status == 200 else messages.ERROR
            self.message_user(request, f"{event.event_id}: {outcome.value}", level)

    @admin.display(description="error", boolean=True)
    def has_error(self, obj):
        return bool(obj.error)

    @admin.display(description="payload")
    def payload_pretty(self, obj):
        return admin_pre(obj.payload)


def _day(value) -> str:
    return date_format(timezone.localtime(value), "M j, Y")


def _subscription_label(subscription) -> str:
    return f"{subscription}: {subscription.server.name} of {subscription.user.email}"


def _suspend_refusal(subscription) -> str:
    """Why "Suspend now" would leave this subscription alone; "" when it would not."""
    if subscription.canceled_at is not None:
        return f"ended on {_day(subscription.canceled_at)}"
    if subscription.suspended_at is not None:
        by = "our staff" if subscription.suspended_by_staff else "billing (an unpaid renewal)"
        return f"already suspended by {by} since {_day(subscription.suspended_at)}"
    server = subscription.server
    if server.status not in (Server.Status.RUNNING, Server.Status.STOPPED):
        return (
            f"the server is {server.get_status_display().lower()}: only a running or "
            "stopped server can be suspended"
        )
    return ""


def _resume_refusal(subscription) -> str:
    if subscription.canceled_at is not None:
        return f"ended on {_day(subscription.canceled_at)}: the customer needs a new subscription"
    if subscription.suspended_at is None:
        return "not suspended"
    return ""


def _resume_line(subscription, grace: str) -> str:
    by = "our staff" if subscription.suspended_by_staff else "billing (an unpaid renewal)"
    line = (
        f"{_subscription_label(subscription)}: suspended by {by} since "
        f"{_day(subscription.suspended_at)}"
    )
    if subscription.past_due_since is not None:
        line += f"; still overdue: a new {grace}-day grace period starts now"
    return line


def _last_payment(subscription) -> tuple[Payment | None, str]:
    """The payment "Refund the last payment" would refund, or None and why not. Only
    the last one: once it is refunded, asking again (or a second click on "Yes")
    refunds nothing, rather than the payment before it, which, were it the purchase,
    would delete the server. Older payments are refunded from the payments' page."""
    payment = subscriptions.subscription_last_payment(subscription)
    refunds = subscriptions.server_payments(subscription.server_id).filter(
        status=PaymentStatus.REFUNDED
    )
    if payment is not None:
        refunds = refunds.filter(
            Q(paid_at__gt=payment.paid_at) | Q(paid_at=payment.paid_at, pk__gt=payment.pk)
        )
    refunded = refunds.order_by("-paid_at", "-pk").first()
    if refunded is not None:
        kind = refunded.get_kind_display().lower()
        return None, (
            f"its last payment, the {kind} of {refunded.amount_display}, was already "
            f"refunded on {_day(refunded.refunded_at)}"
        )
    if payment is None:
        return None, "no paid payment to refund"
    return payment, ""


def _refund_consequence(subscription, payment) -> str:
    """What refunding `payment` does, as `services._payment_mark_refunded` decides it."""
    paid = f"{payment.amount_display} paid {_day(payment.paid_at)}"
    if payment.kind == PaymentKind.RENEWAL:
        return f"the renewal, {paid}: money back only; the server and the subscription carry on"
    return (
        f"the purchase, {paid}: the server {subscription.server.name} is DELETED (its "
        "data lost) and the subscription cancelled"
    )


@admin.register(Subscription)
class SubscriptionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """As Stripe last told us, and what billing did about it. Changed by Stripe's events,
    the periodic jobs and reconciliation, and by staff's actions here, each through its
    service in billing/subscriptions.py (never by editing the row)."""

    list_display = (
        "stripe_subscription_id",
        "user_link",
        "server_link",
        "plan",
        "status",
        "current_period_end",
        "cancel_at_period_end",
        "past_due_since",
        "suspended_at",
        "suspended_by_staff",
        "canceled_at",
        "delete_after",
        "payments",
    )
    list_filter = (
        "status",
        "cancel_at_period_end",
        "suspended_by_staff",
        ("suspended_at", admin.EmptyFieldListFilter),
        ("canceled_at", admin.EmptyFieldListFilter),
        "plan",
    )
    search_fields = ("stripe_subscription_id", "stripe_customer_id", "user__email")
    list_select_related = ("user", "server", "plan")
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "stripe_subscription_id",
                    "stripe_customer_id",
                    "user_link",
                    "server_link",
                    "plan",
                    "status",
                    "payments",
                )
            },
        ),
        ("Period", {"fields": ("current_period_end", "cancel_at_period_end", "synced_at")}),
        (
            "Overdue, suspended, ended",
            {
                "fields": (
                    "past_due_since",
                    "failure_reason",
                    "pay_url",
                    "suspended_at",
                    "suspended_by_staff",
                    "canceled_at",
                    "delete_after",
                    "deletion_warned_at",
                )
            },
        ),
        ("Record", {"fields": ("created_at", "updated_at")}),
    )
    readonly_fields = ("user_link", "server_link", "payments", "created_at", "updated_at")
    actions = ("suspend_now", "resume", "cancel_now", "refund_last_payment")

    user_link = link_column("user", "user__email", description="user")
    server_link = link_column("server", "server__name", description="server")

    @admin.display(description="payments")
    def payments(self, obj):
        # The purchase and every renewal carry the Stripe subscription's id: no query.
        return admin_changelist_link(
            Payment, "Payments", stripe_subscription_id=obj.stripe_subscription_id
        )

    def has_manage_permission(self, request):
        # The rows stay read-only (ReadOnlyAdminMixin); staff who may change
        # subscriptions act on them through the actions below.
        return request.user.has_perm("billing.change_subscription")

    def _each(self, request, rows, service, *, verb, done, undone, refusals=(SubscriptionRefused,)):
        """Call the staff `service` for every row, with one message each: `done`, or
        `undone` (a warning) when there was nothing to do, or the refusal (an error)."""
        for subscription in rows:
            label = _subscription_label(subscription)
            try:
                changed = service(
                    subscription_id=subscription.pk, actor=request.user, request=request
                )
            except refusals as refusal:
                self.message_user(request, f"{label}: not {verb}: {refusal}", messages.ERROR)
                continue
            if changed:
                self.message_user(request, f"{label}: {done}")
            else:
                self.message_user(request, f"{label}: not {verb}: {undone}", messages.WARNING)

    def _rows(self, queryset):
        return list(queryset.select_related("user", "server", "plan"))

    @admin.action(description="Suspend now (staff)", permissions=["manage"])
    def suspend_now(self, request, queryset):
        """Asks first; then each subscription's server is suspended through its service:
        powered off, data kept, and no payment lifts it, only "Resume" does."""
        rows = self._rows(queryset)
        if not confirmed(request):
            ready = [s for s in rows if not _suspend_refusal(s)]
            return confirmation_page(
                self,
                request,
                queryset,
                action="suspend_now",
                title="Suspend now?",
                warning=(
                    "Each server below is suspended now: powered off (its data kept), the "
                    "customer's actions and deployments refused, and the customer emailed. "
                    'A payment does not lift a suspension made by staff: only "Resume" does.'
                ),
                confirm_label=f"Yes, suspend {len(ready)} server{pluralize(ready)}",
                items=[
                    f"{_subscription_label(s)} ({s.server.get_status_display()})" for s in ready
                ],
                skipped=[
                    f"{_subscription_label(s)}: {_suspend_refusal(s)}"
                    for s in rows
                    if s not in ready
                ],
            )
        return self._each(
            request,
            rows,
            subscriptions.subscription_suspend_by_staff,
            verb="suspended",
            done="suspended; the server is being powered off.",
            undone="it already was, or the subscription has ended.",
        )

    @admin.action(description="Resume (lift a suspension)", permissions=["manage"])
    def resume(self, request, queryset):
        """Asks first; then each suspension, staff's or billing's, is lifted through its
        service. One still overdue gets a new grace period from now."""
        rows = self._rows(queryset)
        if not confirmed(request):
            ready = [s for s in rows if not _resume_refusal(s)]
            grace = f"{settings.BILLING_GRACE_DAYS:g}"
            return confirmation_page(
                self,
                request,
                queryset,
                action="resume",
                title="Resume?",
                warning=(
                    "Each server below is started again and the customer emailed. A "
                    f"subscription still overdue gets a new grace period of {grace} days "
                    "from now; billing suspends it again if it is still unpaid by then."
                ),
                confirm_label=f"Yes, resume {len(ready)} server{pluralize(ready)}",
                items=[_resume_line(s, grace) for s in ready],
                skipped=[
                    f"{_subscription_label(s)}: {_resume_refusal(s)}"
                    for s in rows
                    if s not in ready
                ],
            )
        return self._each(
            request,
            rows,
            subscriptions.subscription_resume_by_staff,
            verb="resumed",
            done="resumed; the server is being started.",
            undone="it is not suspended.",
        )

    @admin.action(description="Cancel now, without a refund", permissions=["manage"])
    def cancel_now(self, request, queryset):
        """Asks first; then each subscription is cancelled in Stripe now (no refund)
        through its service, which suspends the server, emails the customer and
        schedules the server's deletion after DELETION_GRACE_DAYS."""
        rows = self._rows(queryset)
        days = f"{settings.DELETION_GRACE_DAYS:g}"
        if not confirmed(request):
            ready = [s for s in rows if s.canceled_at is None]
            return confirmation_page(
                self,
                request,
                queryset,
                action="cancel_now",
                title="Cancel now, without a refund?",
                warning=(
                    "Each subscription below is cancelled in Stripe now, with no refund and "
                    "no further charges; its server is suspended (powered off, data kept), "
                    f"the customer is emailed, and the server is deleted with its data "
                    f"after {days} days. This cannot be undone."
                ),
                confirm_label=f"Yes, cancel {len(ready)} subscription{pluralize(ready)}",
                items=[
                    f"{_subscription_label(s)} ({s.server.get_status_display()})" for s in ready
                ],
                skipped=[
                    f"{_subscription_label(s)}: already ended on {_day(s.canceled_at)}"
                    for s in rows
                    if s not in ready
                ],
            )
        return self._each(
            request,
            rows,
            subscriptions.subscription_cancel_by_staff,
            verb="cancelled",
            done=f"cancelled in Stripe; the server is suspended and will be deleted after "
            f"{days} days.",
            undone="it had already ended.",
            refusals=(GatewayError,),
        )

    @admin.action(description="Refund the last payment", permissions=["manage"])
    def refund_last_payment(self, request, queryset):
        """Asks first, saying for each row what the refund does (a renewal: money back
        only; the purchase: the server deleted); then each last payment is refunded
        through the billing service, once."""
        rows = self._rows(queryset)
        last = {s.pk: _last_payment(s) for s in rows}
        if not confirmed(request):
            ready = [s for s in rows if last[s.pk][0] is not None]
            purchases = [s for s in ready if last[s.pk][0].kind == PaymentKind.PURCHASE]
            confirm_label = f"Yes, refund {len(ready)} payment{pluralize(ready)}"
            if purchases:
                confirm_label += f" and delete {len(purchases)} server{pluralize(purchases)}"
            return confirmation_page(
                self,
                request,
                queryset,
                action="refund_last_payment",
                title="Refund the last payment?",
                warning=(
                    "The last payment of each subscription below is refunded in full "
                    "through Stripe and the customer is emailed. Refunding a renewal gives "
                    "the money back only; refunding the purchase also deletes the server "
                    "(its data is lost) and cancels the subscription. This cannot be undone."
                ),
                confirm_label=confirm_label,
                items=[
                    f"{_subscription_label(s)}: {_refund_consequence(s, last[s.pk][0])}"
                    for s in ready
                ],
                skipped=[
                    f"{_subscription_label(s)}: {last[s.pk][1]}" for s in rows if s not in ready
                ],
            )
        for subscription in rows:
            label = _subscription_label(subscription)
            payment, refusal = last[subscription.pk]
            if payment is None:
                self.message_user(
                    request, f"{label}: nothing refunded: {refusal}.", messages.WARNING
                )
                continue
            kind = payment.get_kind_display().lower()
            refund_as_staff(self, request, payment, label=f"{label}, the {kind}")
        return None
