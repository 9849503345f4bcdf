from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.http import urlencode

from apps.cqrs.errors import refusal
from apps.cqrs.models import DomainEvent, ProjectorCheckpoint, SubscriberCheckpoint


def events_link(aggregate_type: str, aggregate_id: str | int) -> str:
    """A link to the event log filtered to one aggregate, for write-model admin pages."""
    url = reverse("admin:cqrs_domainevent_changelist")
    query = urlencode({"aggregate_type": aggregate_type, "aggregate_id": aggregate_id})
    count = DomainEvent.objects.filter(
        aggregate_type=aggregate_type, aggregate_id=str(aggregate_id)
    ).count()
    history = reverse("admin-history", args=[aggregate_type, aggregate_id])
    return format_html(
        '<a href="{}?{}">{} events</a> · <a href="{}">history with state after each</a>',
        url,
        query,
        count,
        history,
    )


def run_command(
    modeladmin: admin.ModelAdmin[Any], request: HttpRequest, label: str, call: Callable[[], object]
) -> bool:
    """Run a command service for an admin action, turning its refusals (apps/cqrs/errors.py)
    into messages."""
    try:
        call()
    except Exception as exc:
        refused = refusal(exc)
        if refused is None:
            raise
        modeladmin.message_user(request, f"{label}: {refused.message}", messages.ERROR)
        return False
    return True


class ReadOnlyAdmin(admin.ModelAdmin[Any]):
    """Shows rows that only commands or projectors may change: no add, change or delete."""

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class CommandAdmin(admin.ModelAdmin[Any]):
    """Admin whose saves go through command services (override `save_model`), never straight
    to the table, so that every change staff make is in the event log. Nothing is deleted."""

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        pass  # relations are the command's business


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
        "flow",
        "recorded_at",
    )
    list_filter = ("event_type", "aggregate_type", "command", "recorded_at")
    search_fields = ("=aggregate_id", "=correlation_id", "=event_id", "actor")
    date_hierarchy = "recorded_at"
    ordering = ("-position",)
    show_full_result_count = False

    @admin.display(description="Correlation id")
    def flow(self, event: DomainEvent) -> str:
        url = reverse("admin-flow", args=[event.correlation_id])
        return format_html('<a href="{}">{}</a>', url, str(event.correlation_id)[:8])

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        # Links from orders, books and stock items filter by aggregate; a flow by correlation.
        if lookup in {"aggregate_id", "correlation_id", "causation_id", "actor_id"}:
            return True
        return super().lookup_allowed(lookup, value, request)


@admin.register(ProjectorCheckpoint, SubscriberCheckpoint)
class CheckpointAdmin(ReadOnlyAdmin):
    list_display = ("name", "position", "attempts", "failed_position", "retry_at", "updated_at")
