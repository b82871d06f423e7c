from django.contrib import admin, messages

from hosting.admin_links import ReadOnlyAdminMixin, link_column
from support import services
from support.models import Ticket, TicketMessage, TicketStatus


class TicketReplyInline(admin.TabularInline):
    """A new reply (or, with `internal`, a note only staff see) by the staff member
    signed in; written through the support service, see TicketAdmin.save_formset."""

    model = TicketMessage
    fields = ("body", "internal")
    extra = 1
    can_delete = False
    verbose_name = "reply"
    verbose_name_plural = "reply"

    def get_queryset(self, request):
        return super().get_queryset(request).none()


class TicketConversationInline(ReadOnlyAdminMixin, admin.TabularInline):
    """The conversation so far: messages are never edited."""

    model = TicketMessage
    fields = ("created_at", "author", "internal", "body")
    verbose_name_plural = "conversation"
    extra = 0

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("author").order_by("created_at")


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
    # The reply form first: it keeps the "messages" form prefix.
    inlines = (TicketReplyInline, TicketConversationInline)
    actions = (
        "assign_to_me",
        "mark_in_progress",
        "mark_resolved",
        "mark_closed",
        "reopen",
    )

    def get_readonly_fields(self, request, obj=None):
        # Status and assignee change through the actions (audited services), not by hand.
        if obj is not None:
            return (*self.readonly_fields, "user", "status", "assignee")
        return self.readonly_fields

    @admin.action(description="Assign to me")
    def assign_to_me(self, request, queryset):
        for ticket in queryset:
            services.ticket_assign(
                ticket=ticket, assignee=request.user, actor=request.user, request=request
            )
        self.message_user(request, f"{queryset.count()} ticket(s) are yours.")

    def _set_status(self, request, queryset, status):
        changed = sum(
            services.ticket_status_set_by_staff(
                ticket=ticket, status=status, actor=request.user, request=request
            )
            for ticket in queryset
        )
        label = TicketStatus(status).label.lower()
        self.message_user(request, f"{changed} ticket(s) now {label}.")

    @admin.action(description="Mark in progress")
    def mark_in_progress(self, request, queryset):
        self._set_status(request, queryset, TicketStatus.IN_PROGRESS)

    @admin.action(description="Mark resolved")
    def mark_resolved(self, request, queryset):
        self._set_status(request, queryset, TicketStatus.RESOLVED)

    @admin.action(description="Close")
    def mark_closed(self, request, queryset):
        self._set_status(request, queryset, TicketStatus.CLOSED)

    @admin.action(description="Reopen")
    def reopen(self, request, queryset):
        self._set_status(request, queryset, TicketStatus.OPEN)

    user_link = link_column("user", "user__email")
    server_link = link_column("server", "server__name")

    def save_formset(self, request, form, formset, change):
        if formset.model is not TicketMessage:
            return super().save_formset(request, form, formset, change)
        # A new row is a reply (or note) by the staff member signed in, through the service;
        # existing messages are never edited.
        written = []
        for message in formset.save(commit=False):
            if message.pk is not None:
                continue
            try:
                written.append(
                    services.ticket_reply_by_staff(
                        ticket=form.instance,
                        author=request.user,
                        body=message.body,
                        internal=message.internal,
                        request=request,
                    )
                )
            except services.TicketRefused as refusal:
                self.message_user(request, f"Reply not sent: {refusal}", messages.ERROR)
        formset.new_objects = written  # what the admin's history entry names


@admin.register(TicketMessage)
class TicketMessageAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The conversation, to search and read; replies are written on the ticket's page."""

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
