"""Admin actions that change money, servers or data: they ask first, on one shared page,
then call the service that owns the change (never a bare model save)."""

from django.contrib import admin
from django.template.response import TemplateResponse


def confirmed(request) -> bool:
    """True on the second POST, from the confirmation page's "Yes" button."""
    return request.POST.get("confirm") == "yes"


def confirmation_page(
    modeladmin,
    request,
    queryset,
    *,
    action: str,
    title: str,
    warning: str,
    confirm_label: str,
    items,
    skipped=(),
) -> TemplateResponse:
    """The page that asks before `action` runs on `queryset`: `warning` says what cannot
    be undone, `items` (text per object) what will change, `skipped` what will not, and
    `confirm_label` is the button that goes ahead."""
    return TemplateResponse(
        request,
        "admin/confirm_action.html",
        {
            **modeladmin.admin_site.each_context(request),
            "title": title,
            "opts": modeladmin.model._meta,
            "warning": warning,
            "confirm_label": confirm_label,
            "items": list(items),
            "skipped": list(skipped),
            "selected": [obj.pk for obj in queryset],
            "action": action,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        },
    )
