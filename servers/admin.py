from django.contrib import admin

from hosting.admin_links import ReadOnlyAdminMixin, admin_pre, link_column, related_column
from servers.models import Deployment, Domain, Server, ServerEvent
from support.models import Ticket


class DeploymentInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Deployment
    fields = ("created_at", "git_url", "branch", "commit", "status", "finished_at")
    show_change_link = True
    extra = 0


class ServerEventInline(ReadOnlyAdminMixin, admin.TabularInline):
    """The server's timeline, as the customer sees it."""

    model = ServerEvent
    fields = ("created_at", "kind", "message")
    extra = 0


class DomainInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Domain
    fields = ("name", "verification_status", "ssl_status", "created_at")
    show_change_link = True
    extra = 0


@admin.register(Server)
class ServerAdmin(admin.ModelAdmin):
    list_display = ("name", "user_link", "plan", "status", "region", "ip_address", "created_at")
    list_filter = ("status", "plan", "region")
    search_fields = ("name", "user__email", "ip_address", "provider_id", "uuid")
    list_select_related = ("user", "plan")
    autocomplete_fields = ("user", "payment")
    # The SSH password never reaches a staff screen, not even as a form field.
    exclude = ("ssh_password", "ssh_host_private_key")
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "name",
                    "user",
                    "plan",
                    "payment",
                    "payment_link",
                    "status",
                    "region",
                    "related",
                )
            },
        ),
        ("Provider", {"fields": ("provider_id", "ip_address", "ssh_username", "ssh_host_key")}),
        ("Record", {"fields": ("uuid", "created_at", "updated_at")}),
    )
    readonly_fields = (
        "payment_link",
        "related",
        "provider_id",
        "ssh_host_key",
        "uuid",
        "created_at",
        "updated_at",
    )
    inlines = (ServerEventInline, DeploymentInline, DomainInline)

    user_link = link_column("user", "user__email")
    payment_link = link_column("payment", description="payment record")
    related = related_column(
        (Deployment, "Deployments", "server__id__exact"),
        (Domain, "Domains", "server__id__exact"),
        (Ticket, "Tickets", "server__id__exact"),
    )


class ServerRowMixin:
    """Columns for rows that belong to a server and its customer."""

    server_link = link_column("server", "server__name")
    user_link = link_column("user", "user__email")


@admin.register(Deployment)
class DeploymentAdmin(ServerRowMixin, admin.ModelAdmin):
    list_display = (
        "created_at",
        "server_link",
        "user_link",
        "git_url",
        "branch",
        "status",
        "finished_at",
    )
    list_filter = ("status",)
    search_fields = ("git_url", "server__name", "user__email")
    list_select_related = ("server", "user")
    autocomplete_fields = ("server", "user")
    fields = (
        "server",
        "user",
        "git_url",
        "branch",
        "commit",
        "status",
        "uuid",
        "created_at",
        "started_at",
        "finished_at",
        "output_pre",
    )
    readonly_fields = ("uuid", "created_at", "started_at", "finished_at", "output_pre")

    @admin.display(description="output")
    def output_pre(self, obj):
        return admin_pre(obj.output) if obj.output else None


@admin.register(Domain)
class DomainAdmin(ServerRowMixin, admin.ModelAdmin):
    list_display = (
        "name",
        "server_link",
        "user_link",
        "verification_status",
        "ssl_status",
        "created_at",
    )
    list_filter = ("verification_status", "ssl_status")
    search_fields = ("name",)
    list_select_related = ("server", "user")
    autocomplete_fields = ("server", "user")
    fields = (
        "name",
        "server",
        "user",
        "verification_status",
        "verification_token",
        "verified_at",
        "ssl_status",
        "ssl_error",
        "uuid",
        "created_at",
    )
    readonly_fields = ("verification_token", "verified_at", "uuid", "created_at")
