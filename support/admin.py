from django import forms
from django.contrib import admin, messages
from django.contrib.admin.views.main import SEARCH_VAR
from django.contrib.postgres.search import SearchQuery, SearchRank
from django.db.models import F, Q
from django.utils.timesince import timesince

from accounts.models import User
from hosting.admin_links import ReadOnlyAdminMixin, link_column
from support import notifications, services
from support.models import Ticket, TicketMessage, TicketStatus
from support.selectors import search_text


class TicketReplyForm(forms.ModelForm):
    class Meta:
        model = TicketMessage
        fields = ("body", "internal")
        labels = {"body": "Reply", "internal": "Internal note (only staff see it; not mailed)"}
        widgets = {"body": forms.Textarea(attrs={"rows": 6, "cols": 80})}


class TicketReplyInline(admin.TabularInline):
    """A new reply (or, with `internal`, a note only staff see) by the staff member
    signed in; written through the support service, see TicketAdmin.save_formset."""

    model = TicketMessage
    form = TicketReplyForm
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
    fields = ("created_at", "author", "internal", "body", "mailed_at")
    readonly_fields = fields
    verbose_name_plural = "conversation (mailed: when its mail went out; empty for notes)"
    extra = 0

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("author").order_by("created_at")


class AssigneeFilter(admin.SimpleListFilter):
    title = "assignee"
    parameter_name = "assignee"

    def lookups(self, request, model_admin):
        staff = User.objects.filter(is_staff=True, is_active=True).order_by("email")
        return [
            ("me", "Me"),
            ("none", "Unassigned"),
            *((str(pk), email) for pk, email in staff.values_list("pk", "email")),
        ]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "me":
            return queryset.filter(assignee=request.user)
        if value == "none":
            return queryset.filter(assignee__isnull=True)
        if value and value.isdigit():
            return queryset.filter(assignee_id=int(value))
        return queryset


class WaitingOnFilter(admin.SimpleListFilter):
    """Open tickets by who is to write next: staff (the customer wrote last) or the
    customer (staff answered)."""

    title = "waiting on"
    parameter_name = "waiting_on"

    def lookups(self, request, model_admin):
        return [("staff", "Staff"), ("customer", "Customer")]

    def queryset(self, request, queryset):
        if self.value() not in ("staff", "customer"):
            return queryset
        return queryset.filter(
            status__in=(TicketStatus.OPEN, TicketStatus.IN_PROGRESS),
            waiting_on_staff=self.value() == "staff",
        )


def _staff_query(term: str) -> SearchQuery:
    return SearchQuery(term, search_type="websearch", config="english")


@admin.register(Ticket)
class TicketAdmin(admin.ModelAdmin):
    list_display = (
        "subject",
        "user_link",
        "server_link",
        "priority",
        "status",
        "waiting",
        "assignee",
        "last_activity_at",
        "age",
    )
    list_filter = ("status", "priority", AssigneeFilter, WaitingOnFilter)
    # Searched with the full-text document (get_search_results); the customer's email too.
    search_fields = ("subject",)
    search_help_text = "Words from the subject, description, replies or notes; or an email."
    list_select_related = ("user", "server", "assignee")
    autocomplete_fields = ("server",)
    fields = (
        "subject",
        "user",
        "server",
        "description",
        "priority",
        "status",
        "assignee",
        "reply_address",
        "uuid",
        "created_at",
        "last_activity_at",
        "staff_mailed_at",
    )
    readonly_fields = (
        "user",
        "description",
        "status",
        "assignee",
        "reply_address",
        "uuid",
        "created_at",
        "last_activity_at",
        "staff_mailed_at",
    )
    # The reply form first: it keeps the "messages" form prefix.
    inlines = (TicketReplyInline, TicketConversationInline)
    actions = (
        "assign_to_me",
        "mark_in_progress",
        "mark_resolved",
        "mark_closed",
        "reopen",
    )

    def has_add_permission(self, request):
        # A ticket is the customer's: they open it (support/services.ticket_create).
        return False

    def has_delete_permission(self, request, obj=None):
        # A conversation is a record (its messages are protected): close it instead.
        return False

    def get_search_results(self, request, queryset, search_term):
        """Ranked full-text search over everything staff may read, notes included (the
        GIN-indexed document), or the customer's email."""
        term = search_text(search_term)
        if not term:
            return queryset, False
        query = _staff_query(term)
        return queryset.filter(Q(staff_search_document=query) | Q(user__email__iexact=term)), False

    def get_ordering(self, request):
        # The changelist orders after searching, so the rank is an ordering of its own.
        term = search_text(request.GET.get(SEARCH_VAR, ""))
        if term:
            rank = SearchRank(F("staff_search_document"), _staff_query(term))
            return (rank.desc(), "-last_activity_at")
        return ("-last_activity_at",)

    def save_model(self, request, obj, form, change):
        if not change:
            return super().save_model(request, obj, form, change)
        # Only what staff changed on the form: a full save would write back the activity
        # columns as they were when the page was loaded, over a reply that came since.
        if form.changed_data:
            obj.save(update_fields=[*form.changed_data, "updated_at"])

    @admin.display(description="waiting on", ordering="waiting_on_staff")
    def waiting(self, obj):
        if obj.status not in (TicketStatus.OPEN, TicketStatus.IN_PROGRESS):
            return ""
        return "staff" if obj.waiting_on_staff else "customer"

    @admin.display(description="age", ordering="created_at")
    def age(self, obj):
        return timesince(obj.created_at)

    @admin.display(description="reply address")
    def reply_address(self, obj):
        return notifications.reply_address(obj)

    @admin.action(description="Assign to me")
    def assign_to_me(self, request, queryset):
        for ticket in queryset:
            services.ticket_assign(
                ticket=ticket, assignee=request.user, actor=request.user, request=request
            )
        self.message_user(request, f"{queryset.count()} ticket(s) are yours.")

    def _event(self, request, queryset, event: str, done: str):
        """Apply a status event to each ticket by the status rules; say what was refused."""
        changed, refused = 0, []
        for ticket in queryset:
            try:
                services.ticket_event_by_staff(
                    ticket=ticket, event=event, actor=request.user, request=request
                )
                changed += 1
            except services.TicketRefused as refusal:
                refused.append(f"“{ticket.subject}”: {refusal}")
        if changed:
            self.message_user(request, f"{changed} ticket(s) {done}.")
        for line in refused:
            self.message_user(request, line, messages.WARNING)

    @admin.action(description="Mark in progress")
    def mark_in_progress(self, request, queryset):
        self._event(request, queryset, "start", "now in progress")

    @admin.action(description="Mark resolved")
    def mark_resolved(self, request, queryset):
        self._event(request, queryset, "resolve", "resolved")

    @admin.action(description="Close")
    def mark_closed(self, request, queryset):
        self._event(request, queryset, "close", "closed")

    @admin.action(description="Reopen")
    def reopen(self, request, queryset):
        self._event(request, queryset, "reopen", "reopened")

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
