from django.contrib import admin

from apps.cqrs.models import DomainEvent, ProjectorCheckpoint


class ReadOnlyAdmin(admin.ModelAdmin):
    """Shows rows that only commands or projectors may change: no add, change or delete."""

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(DomainEvent)
class DomainEventAdmin(ReadOnlyAdmin):
    """The event log, read-only: there is no way to add, change or delete an event here."""

    list_display = (
        "position",
        "event_type",
        "aggregate_type",
        "aggregate_id",
        "aggregate_version",
        "actor",
        "command",
        "correlation_id",
        "recorded_at",
    )
    list_filter = ("event_type", "aggregate_type", "command", "recorded_at")
    search_fields = ("=aggregate_id", "=correlation_id", "=event_id", "actor")
    date_hierarchy = "recorded_at"
    ordering = ("-position",)
    show_full_result_count = False


@admin.register(ProjectorCheckpoint)
class ProjectorCheckpointAdmin(ReadOnlyAdmin):
    list_display = ("name", "position", "attempts", "failed_position", "retry_at", "updated_at")
