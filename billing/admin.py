from django.contrib import admin, messages
from django.template.defaultfilters import pluralize

from billing import services, webhooks
from billing.gateways import GatewayError
from billing.models import Payment, PaymentStatus, Plan, StripeEvent, Subscription
from hosting.admin_actions import confirmation_page, confirmed
from hosting.admin_links import ReadOnlyAdminMixin, admin_pre, link_column, related_column


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


@admin.register(Subscription)
class SubscriptionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """As Stripe last told us, and what billing did about it. Changed by Stripe's events,
    the periodic jobs and reconciliation only."""

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
        "delete_after",
    )
    list_filter = ("status", "cancel_at_period_end", "plan")
    search_fields = ("stripe_subscription_id", "stripe_customer_id", "user__email")
    list_select_related = ("user", "server", "plan")

    user_link = link_column("user", "user__email")
    server_link = link_column("server", "server__name")
