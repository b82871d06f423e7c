from django.contrib import admin

from hosting.admin_links import ReadOnlyAdminMixin
from hosting.models import BackupRun


@admin.register(BackupRun)
class BackupRunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Written by `manage.py backup` and the scheduled backup job only."""

    list_display = (
        "started_at",
        "trigger",
        "file_name",
        "size_bytes",
        "duration",
        "verified",
        "short_error",
    )
    list_filter = ("verified", "trigger", "started_at")
    date_hierarchy = "started_at"
    search_fields = ("file_name", "error")
    fields = (
        "trigger",
        "started_at",
        "finished_at",
        "file_name",
        "size_bytes",
        "duration",
        "verified",
        "error",
        "row_counts",
    )

    @admin.display(description="error")
    def short_error(self, obj):
        return (obj.error[:80] + "...") if len(obj.error) > 80 else obj.error
