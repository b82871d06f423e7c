"""Small helpers every app's admin uses: links between related rows, preformatted text,
read-only screens."""

import json
from urllib.parse import urlencode

from django.contrib import admin
from django.db import models
from django.urls import reverse
from django.utils.html import format_html, format_html_join


def admin_url(model_or_obj, view: str = "change") -> str:
    """The admin URL of a row ("change", "delete", "history") or of a model ("changelist",
    "add")."""
    opts = model_or_obj._meta
    args = [model_or_obj.pk] if isinstance(model_or_obj, models.Model) else []
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_{view}", args=args)


def admin_link(obj, label=None):
    """A link to `obj`'s change page, labelled `label` or `str(obj)`. None for no object, so
    the admin shows its empty-value dash."""
    if obj is None:
        return None
    return format_html('<a href="{}">{}</a>', admin_url(obj), obj if label is None else label)


def admin_changelist_link(model, label, **filters):
    """A link to `model`'s changelist narrowed by `filters`, e.g. user__id__exact=3."""
    url = admin_url(model, "changelist")
    if filters:
        url = f"{url}?{urlencode(filters)}"
    return format_html('<a href="{}">{}</a>', url, label)


def link_column(field: str, ordering: str | None = None, description: str | None = None):
    """A list_display / readonly_fields column linking to the row's `field` relation; put
    the field in list_select_related so the column costs no query per row."""

    @admin.display(description=description or field, ordering=ordering or field)
    def column(self, obj):
        # A missing reverse one-to-one raises DoesNotExist, an AttributeError.
        return admin_link(getattr(obj, field, None))

    return column


def related_column(*related, description: str = "related"):
    """A readonly_fields column linking to other models' changelists narrowed to this row;
    `related` holds (model, label, lookup) triples such as (Payment, "Payments",
    "user__id__exact")."""

    @admin.display(description=description)
    def column(self, obj):
        if obj.pk is None:
            return None
        links = (
            (admin_changelist_link(model, label, **{lookup: obj.pk}),)
            for model, label, lookup in related
        )
        return format_html_join(" · ", "{}", links)

    return column


def admin_pre(value):
    """Text (a log) or JSON-able data (a payload) in a <pre>, escaped."""
    if not isinstance(value, str):
        value = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
    return format_html("<pre>{}</pre>", value)


class ReadOnlyAdminMixin:
    """For a ModelAdmin or an inline whose rows staff may look at but never add, change or
    delete: an append-only record, or rows owned by a flow elsewhere."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
