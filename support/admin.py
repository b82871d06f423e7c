from django.contrib import admin

from hosting.admin_links import link_column
from support.models import Ticket, TicketMessage


class TicketMessageInline(admin.TabularInline):
    """The conversation; a new row is a staff reply (or, with `internal`, a staff note)."""

    model = TicketMessage
    fields = ("author", "body", "internal", "created_at")
    readonly_fields = ("author", "created_at")
    extra = 1
    can_delete = False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("author")


@admin.register(Ticket)
class TicketAdmin(admin.ModelAdmin):
    list_display = (
        "subject",
        "user_link",
        "server_link",
        "priority",
        "status",
        "assignee",
        "updated_at",
    )
    list_filter = ("status", "priority", "assignee")
    search_fields = ("subject", "user__email")
    list_select_related = ("user", "server", "assignee")
    autocomplete_fields = ("user", "server")
    fields = (
        "subject",
        "user",
        "server",
        "description",
        "priority",
        "status",
        "assignee",
        "uuid",
        "created_at",
        "updated_at",
    )
    readonly_fields = ("uuid", "created_at", "updated_at")
    inlines = (TicketMessageInline,)

    user_link = link_column("user", "user__email")
    server_link = link_column("server", "server__name")

    def save_formset(self, request, form, formset, change):
        if formset.model is not TicketMessage:
            return super().save_formset(request, form, formset, change)
        # Messages added here are written by the staff member who is signed in.
        for message in formset.save(commit=False):
            if message.pk is None:
                message.author = request.user
            message.save()
        formset.save_m2m()


@admin.register(TicketMessage)
class TicketMessageAdmin(admin.ModelAdmin):
    list_display = ("ticket_link", "author_link", "internal", "created_at")
    list_display_links = ("created_at",)  # the first column is already a link
    list_filter = ("internal",)
    search_fields = ("ticket__subject", "author__email")
    list_select_related = ("ticket", "author")
    autocomplete_fields = ("ticket",)
    fields = ("ticket", "author", "body", "internal", "created_at")
    readonly_fields = ("author", "created_at")

    ticket_link = link_column("ticket", "ticket__subject")
    author_link = link_column("author", "author__email")

    def save_model(self, request, obj, form, change):
        if obj.pk is None:
            obj.author = request.user
        super().save_model(request, obj, form, change)
