from django.contrib import admin, messages
from django.db.models import Q
from django.template.defaultfilters import pluralize
from django.utils.text import Truncator

from billing.admin import refund_as_staff
from hosting.admin_actions import confirmation_page, confirmed
from hosting.admin_links import ReadOnlyAdminMixin, admin_pre, link_column, related_column
from servers import actions, deployments, services
from servers.models import (
    ENDED_SERVER_STATUSES,
    Deployment,
    Domain,
    Server,
    ServerAction,
    ServerActionKind,
    ServerEvent,
)
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


class ServerActionInline(ReadOnlyAdminMixin, admin.TabularInline):
    """Power actions and password resets, newest first. The new password is never shown."""

    model = ServerAction
    fields = ("created_at", "kind", "status", "requested_by", "forced", "reason", "finished_at")
    show_change_link = True
    extra = 0


class DomainInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Domain
    fields = ("name", "verification_status", "ssl_status", "ssl_expires_at", "created_at")
    show_change_link = True
    extra = 0


@admin.register(Server)
class ServerAdmin(admin.ModelAdmin):
    """Servers come from payments and change only through their flows: every field that
    has consequences (status, owner, plan, payment, address) is read-only here, and the
    changes staff may make are the actions, which call the services."""

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
        "user",
        "plan",
        "payment",
        "payment_link",
        "status",
        "region",
        "related",
        "provider_id",
        "ip_address",
        "ssh_username",
        "ssh_host_key",
        "uuid",
        "created_at",
        "updated_at",
    )
    inlines = (ServerEventInline, ServerActionInline, DeploymentInline, DomainInline)
    actions = (
        "start_servers",
        "stop_servers",
        "reboot_servers",
        "reset_passwords",
        "provision_again",
        "refund_and_delete",
        "delete_without_refund",
    )

    def has_add_permission(self, request):
        return False  # a server exists because a payment went through

    def has_delete_permission(self, request, obj=None):
        return False  # rows stay; a destroyed server is `deleted`

    @admin.action(description="Provision again (stuck servers)", permissions=["change"])
    def provision_again(self, request, queryset):
        for server in queryset:
            if services.server_provision_retry(
                server_id=server.pk, actor=request.user, request=request
            ):
                self.message_user(request, f"{server.name}: provisioning job started again.")
            else:
                self.message_user(
                    request, f"{server.name}: not provisioning; left alone.", messages.WARNING
                )

    @admin.action(description="Refund and delete server", permissions=["change"])
    def refund_and_delete(self, request, queryset):
        servers = list(queryset.select_related("user", "payment"))
        paid = [s for s in servers if s.payment is not None and s.payment.is_paid]
        if not confirmed(request):
            return confirmation_page(
                self,
                request,
                queryset,
                action="refund_and_delete",
                title="Refund and delete server?",
                warning=(
                    "Each server below is deleted and its droplet destroyed (data on it is "
                    "lost); its payment is refunded in full through Stripe and the customer "
                    "is emailed. This cannot be undone."
                ),
                confirm_label=f"Yes, refund and delete {len(paid)} server{pluralize(paid)}",
                items=[f"{s.name} of {s.user.email}: {s.payment.amount_display}" for s in paid],
                skipped=[f"{s.name}: no paid payment to refund" for s in servers if s not in paid],
            )
        for server in servers:
            if server not in paid:
                self.message_user(request, f"{server.name}: no paid payment.", messages.WARNING)
                continue
            refund_as_staff(self, request, server.payment, label=server.name)

    @admin.action(description="Delete server without refund", permissions=["change"])
    def delete_without_refund(self, request, queryset):
        servers = list(queryset.select_related("user"))
        live = [s for s in servers if s.status not in ENDED_SERVER_STATUSES]
        if not confirmed(request):
            return confirmation_page(
                self,
                request,
                queryset,
                action="delete_without_refund",
                title="Delete server without refund?",
                warning=(
                    "Each server below is deleted and its droplet destroyed: the data on it "
                    "is lost and nothing is refunded. This cannot be undone."
                ),
                confirm_label=f"Yes, delete {len(live)} server{pluralize(live)}",
                items=[f"{s.name} of {s.user.email} ({s.get_status_display()})" for s in live],
                skipped=[
                    f"{s.name}: already {s.get_status_display()}" for s in servers if s not in live
                ],
            )
        for server in servers:
            if services.server_delete_by_staff(
                server_id=server.pk, actor=request.user, request=request
            ):
                self.message_user(request, f"{server.name}: deleted.")
            else:
                self.message_user(request, f"{server.name}: had already ended.", messages.WARNING)

    def _server_action(self, request, queryset, *, kind, action, title, warning, verb):
        """Ask first, then request `kind` on each server through the customers' own service
        (staff=True: audited, and the timeline says our staff asked)."""
        servers = list(queryset.select_related("user"))
        allowed = Server.Status.STOPPED if kind == ServerActionKind.START else Server.Status.RUNNING
        ready = [s for s in servers if s.status == allowed]
        if not confirmed(request):
            return confirmation_page(
                self,
                request,
                queryset,
                action=action,
                title=title,
                warning=warning,
                confirm_label=f"Yes, {verb} {len(ready)} server{pluralize(ready)}",
                items=[f"{s.name} of {s.user.email}" for s in ready],
                skipped=[
                    f"{s.name}: {s.get_status_display().lower()}" for s in servers if s not in ready
                ],
            )
        for server in servers:
            try:
                actions.server_action_request(
                    server_id=server.pk, kind=kind, actor=request.user, staff=True, request=request
                )
            except actions.ActionRefused as refusal:
                self.message_user(request, f"{server.name}: {refusal}", messages.WARNING)
            else:
                self.message_user(request, f"{server.name}: {actions.NOUNS[kind]} requested.")

    @admin.action(description="Start server", permissions=["change"])
    def start_servers(self, request, queryset):
        return self._server_action(
            request,
            queryset,
            kind=ServerActionKind.START,
            action="start_servers",
            title="Start server?",
            warning="Each stopped server below is powered on.",
            verb="start",
        )

    @admin.action(description="Stop server", permissions=["change"])
    def stop_servers(self, request, queryset):
        return self._server_action(
            request,
            queryset,
            kind=ServerActionKind.STOP,
            action="stop_servers",
            title="Stop server?",
            warning=(
                "Each server below is shut down (its power cut if the shutdown does not finish "
                "in time): the customer's sites go offline until it is started again."
            ),
            verb="stop",
        )

    @admin.action(description="Reboot server", permissions=["change"])
    def reboot_servers(self, request, queryset):
        return self._server_action(
            request,
            queryset,
            kind=ServerActionKind.REBOOT,
            action="reboot_servers",
            title="Reboot server?",
            warning="Each server below restarts: the customer's sites are offline meanwhile.",
            verb="reboot",
        )

    @admin.action(description="Reset login password", permissions=["change"])
    def reset_passwords(self, request, queryset):
        return self._server_action(
            request,
            queryset,
            kind=ServerActionKind.PASSWORD_RESET,
            action="reset_passwords",
            title="Reset the login password?",
            warning=(
                "Each server below gets a new login password; the old one stops working. The "
                "customer reads the new one on their server page (it is never shown here)."
            ),
            verb="reset the password of",
        )

    user_link = link_column("user", "user__email")
    payment_link = link_column("payment", description="payment record")
    related = related_column(
        (Deployment, "Deployments", "server__id__exact"),
        (Domain, "Domains", "server__id__exact"),
        (Ticket, "Tickets", "server__id__exact"),
    )


# The deployment page shows the end of long logs; the whole log is the customer's page.
ADMIN_LOG_LINES = 2000


class ServerRowMixin:
    """Columns for rows that belong to a server and its customer."""

    server_link = link_column("server", "server__name")
    user_link = link_column("user", "user__email")


@admin.register(Deployment)
class DeploymentAdmin(ReadOnlyAdminMixin, ServerRowMixin, admin.ModelAdmin):
    """Deployments are made and finished by their jobs: staff look (the log included), and
    may cancel or redeploy through the customers' own services, audited."""

    list_display = (
        "created_at",
        "server_link",
        "user_link",
        "git_url",
        "branch",
        "status",
        "short_commit",
        "duration_display",
    )
    list_filter = ("status",)
    search_fields = ("git_url", "server__name", "user__email", "commit", "uuid")
    list_select_related = ("server", "user")
    fields = (
        "server",
        "user",
        "git_url",
        "branch",
        "subdirectory",
        "commit",
        "status",
        "failure_reason",
        "uuid",
        "created_at",
        "started_at",
        "finished_at",
        "cancel_requested_at",
        "job_id",
        "log",
    )
    actions = ["cancel_deployments", "redeploy"]

    def has_run_permission(self, request):
        return request.user.has_perm("servers.change_deployment")

    @admin.display(description="commit")
    def short_commit(self, obj):
        return obj.commit[:7]

    @admin.display(description=f"log (the last {ADMIN_LOG_LINES} lines)")
    def log(self, obj):
        lines = list(obj.lines.order_by("-number").values_list("number", "text")[:ADMIN_LOG_LINES])
        if not lines:
            return None
        return admin_pre("\n".join(f"{number:>5}  {text}" for number, text in reversed(lines)))

    @admin.action(description="Cancel deployment", permissions=["run"])
    def cancel_deployments(self, request, queryset):
        for deployment in queryset:
            try:
                deployments.deployment_cancel(
                    deployment_id=deployment.pk, staff=request.user, request=request
                )
            except deployments.DeploymentRefused as refusal:
                self.message_user(request, f"{deployment}: {refusal}", messages.WARNING)
            else:
                self.message_user(request, f"{deployment}: cancelled.")

    @admin.action(description="Redeploy (same repository and branch)", permissions=["run"])
    def redeploy(self, request, queryset):
        for deployment in queryset:
            try:
                deployments.deployment_redeploy(
                    deployment_id=deployment.pk, staff=request.user, request=request
                )
            except deployments.DeploymentRefused as refusal:
                self.message_user(request, f"{deployment}: {refusal}", messages.WARNING)
            else:
                self.message_user(request, f"{deployment}: deployment queued.")


class FailingDomainFilter(admin.SimpleListFilter):
    """Domains that need a look: the DNS check or the HTTPS check failed."""

    title = "failing"
    parameter_name = "failing"

    def lookups(self, request, model_admin):
        return (("yes", "Failing (DNS or HTTPS)"),)

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(
                Q(verification_status=Domain.VerificationStatus.FAILED)
                | Q(ssl_status=Domain.SSLStatus.FAILED)
            )
        return queryset


# The list shows the start of a reason; the domain's page shows all of it.
REASON_SHOWN = 80


@admin.register(Domain)
class DomainAdmin(ReadOnlyAdminMixin, ServerRowMixin, admin.ModelAdmin):
    """Domains are verified and certified by their checks: staff look, they do not edit."""

    list_display = (
        "name",
        "server_link",
        "user_link",
        "verification_status",
        "ssl_status",
        "short_reason",
        "ssl_expires_at",
    )
    list_filter = (FailingDomainFilter, "verification_status", "ssl_status")
    search_fields = ("name",)
    list_select_related = ("server", "user")
    autocomplete_fields = ("server", "user")
    fields = (
        "name",
        "server",
        "user",
        "verification_status",
        "verification_reason",
        "verification_token",
        "verified_at",
        "checked_at",
        "check_attempts",
        "ssl_status",
        "ssl_error",
        "ssl_expires_at",
        "ssl_checked_at",
        "expiry_warned_for",
        "uuid",
        "created_at",
    )
    readonly_fields = ("verification_token", "verified_at", "uuid", "created_at")

    @admin.display(description="reason")
    def short_reason(self, obj):
        """Why the domain is not ready: the DNS reason until verified, then the HTTPS one."""
        if obj.verification_status != Domain.VerificationStatus.VERIFIED:
            reason = obj.verification_reason
        elif obj.ssl_status != Domain.SSLStatus.ACTIVE:
            reason = obj.ssl_error
        else:
            reason = ""
        return Truncator(reason).chars(REASON_SHOWN) if reason else ""


@admin.register(ServerAction)
class ServerActionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Power actions and password resets are written by their service and job: staff look
    (and act from the server's page), they do not edit. The new password is never shown."""

    list_display = (
        "created_at",
        "server_link",
        "kind",
        "status",
        "requested_by_link",
        "forced",
        "finished_at",
    )
    list_filter = ("kind", "status")
    search_fields = ("server__name", "server__user__email", "requested_by__email")
    list_select_related = ("server", "requested_by")
    fields = (
        "server",
        "kind",
        "status",
        "requested_by",
        "provider_action_id",
        "forced",
        "reason",
        "created_at",
        "finished_at",
    )

    server_link = link_column("server", "server__name")
    requested_by_link = link_column("requested_by", "requested_by__email")
