from django import forms
from django.contrib import admin
from django.contrib.auth import admin as auth_admin
from django.contrib.auth import forms as auth_forms

from accounts.models import AuditEvent, User
from billing.models import Payment
from hosting.admin_links import ReadOnlyAdminMixin, admin_pre, link_column, related_column
from servers.models import Deployment, Domain, Server
from support.models import Ticket


class EmailFormMixin:
    """The email is the login: stored lower-case, unique whatever its case."""

    def clean_email(self):
        email = User.objects.normalize_email(self.cleaned_data["email"]).lower()
        others = User.objects.filter(email__iexact=email).exclude(pk=self.instance.pk)
        if others.exists():
            raise forms.ValidationError(self.instance.unique_error_message(User, ["email"]))
        return email


class UserCreationForm(EmailFormMixin, auth_forms.UserCreationForm):
    class Meta:
        model = User
        fields = ("email",)


class UserChangeForm(EmailFormMixin, auth_forms.UserChangeForm):
    class Meta:
        model = User
        fields = ("email",)


@admin.register(User)
class UserAdmin(auth_admin.UserAdmin):
    form = UserChangeForm
    add_form = UserCreationForm
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Personal info", {"fields": ("name", "related")}),
        (
            "Permissions",
            {
                "fields": (
                    "is_active",
                    "is_staff",
                    "is_superuser",
                    "groups",
                    "user_permissions",
                )
            },
        ),
        ("Important dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)
    readonly_fields = ("related", "last_login")
    list_display = ("email", "name", "is_staff", "is_active", "date_joined")
    list_filter = ("is_staff", "is_superuser", "is_active", "groups")
    search_fields = ("email", "name")
    ordering = ("email",)
    date_hierarchy = "date_joined"

    related = related_column(
        (Payment, "Payments", "user__id__exact"),
        (Server, "Servers", "user__id__exact"),
        (Deployment, "Deployments", "user__id__exact"),
        (Domain, "Domains", "user__id__exact"),
        (Ticket, "Tickets", "user__id__exact"),
        (AuditEvent, "Audit trail", "actor__id__exact"),
    )


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The audit trail is append-only: staff read it, nobody edits it here."""

    list_display = ("created_at", "action", "actor_link", "actor_email", "ip_address", "target")
    list_filter = ("action", "created_at")
    date_hierarchy = "created_at"
    search_fields = ("actor__email", "actor_email", "ip_address")
    list_select_related = ("actor",)
    fields = (
        "created_at",
        "action",
        "actor",
        "actor_email",
        "ip_address",
        "target_type",
        "target_id",
        "metadata_pretty",
    )
    readonly_fields = ("metadata_pretty",)

    actor_link = link_column("actor", "actor__email")

    @admin.display(description="target")
    def target(self, obj):
        return " ".join(part for part in (obj.target_type, obj.target_id) if part) or None

    @admin.display(description="metadata")
    def metadata_pretty(self, obj):
        return admin_pre(obj.metadata)
