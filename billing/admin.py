from django.contrib import admin

from billing.models import Payment, PaymentStatus, Plan, StripeEvent
from hosting.admin_links import ReadOnlyAdminMixin, admin_pre, link_column


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
        "amount",
        "status",
        "paid_at",
        "refunded_at",
        "server_link",
    )
    list_filter = ("status", "plan", "created_at")
    search_fields = (
        "user__email",
        "stripe_checkout_session_id",
        "stripe_payment_intent_id",
        "stripe_charge_id",
        "stripe_refund_id",
        "uuid",
    )
    list_select_related = ("user", "plan", "server")
    autocomplete_fields = ("user",)
    fieldsets = (
        (None, {"fields": ("user", "plan", "amount_cents", "currency", "status", "server_link")}),
        (
            "Stripe",
            {
                "fields": (
                    "stripe_checkout_session_id",
                    "stripe_payment_intent_id",
                    "stripe_charge_id",
                    "stripe_refund_id",
                )
            },
        ),
        ("Record", {"fields": ("uuid", "created_at", "paid_at", "refunded_at")}),
    )
    readonly_fields = (
        "server_link",
        "stripe_checkout_session_id",
        "stripe_payment_intent_id",
        "stripe_charge_id",
        "stripe_refund_id",
        "uuid",
        "created_at",
        "paid_at",
        "refunded_at",
    )

    def get_readonly_fields(self, request, obj=None):
        # A payment becomes paid or refunded only through the billing flows, which set
        # paid_at / refunded_at and the server in the same transaction.
        if obj is not None:
            return (*self.readonly_fields, "status")
        return self.readonly_fields

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

    list_display = ("event_id", "type", "received_at", "processed_at", "has_error")
    list_filter = ("type", "received_at")
    search_fields = ("event_id",)
    date_hierarchy = "received_at"
    fields = ("event_id", "type", "received_at", "processed_at", "error", "payload_pretty")
    readonly_fields = ("payload_pretty",)

    @admin.display(description="error", boolean=True)
    def has_error(self, obj):
        return bool(obj.error)

    @admin.display(description="payload")
    def payload_pretty(self, obj):
        return admin_pre(obj.payload)
