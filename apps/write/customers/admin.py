from django.contrib import admin

from apps.cqrs.admin import ReadOnlyAdmin, events_link
from apps.write.customers.models import Customer


@admin.register(Customer)
class CustomerAdmin(ReadOnlyAdmin):
    list_display = ("full_name", "user", "created_at")
    search_fields = ("full_name", "user__username", "user__email")

    def get_readonly_fields(self, request, obj=None):
        return [*super().get_readonly_fields(request, obj), "events"]

    @admin.display(description="History")
    def events(self, obj):
        return events_link("customer", obj.pk)
