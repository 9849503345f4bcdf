from functools import partial

from django.contrib import admin

from apps.cqrs.admin import ReadOnlyAdmin, events_link, run_command
from apps.write.orders import services
from apps.write.orders.models import Notification, Order, OrderLine, Payment


class OrderLineInline(admin.TabularInline):
    model = OrderLine
    fields = ("title", "unit_price", "quantity", "backordered")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


class PaymentInline(admin.TabularInline):
    model = Payment
    fields = ("status", "amount", "card_last4", "reference", "decline_reason", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Order)
class OrderAdmin(ReadOnlyAdmin):
    """Orders change only through their commands: the actions below."""

    list_display = ("id", "customer", "status", "total", "placed_at")
    list_filter = ("status", "placed_at")
    search_fields = ("=id", "customer__username", "customer__email")
    date_hierarchy = "placed_at"
    inlines = [OrderLineInline, PaymentInline]
    actions = ["ship", "deliver", "cancel"]

    def get_readonly_fields(self, request, obj=None):
        return [*super().get_readonly_fields(request, obj), "events"]

    def has_change_permission(self, request, obj=None):
        # Viewing, and the actions, need it; the form itself has no editable field.
        return request.user.is_staff

    @admin.display(description="History")
    def events(self, obj):
        return events_link("order", obj.pk)

    def _each(self, request, queryset, label, service, **extra):
        done = sum(
            run_command(
                self,
                request,
                f"Order {order.pk}",
                partial(service, actor=request.user, order_id=order.pk, **extra),
            )
            for order in queryset.order_by("pk")
        )
        if done:
            self.message_user(request, f"{label} {done} order(s).")

    @admin.action(description="Ship the selected orders")
    def ship(self, request, queryset):
        self._each(request, queryset, "Shipped", services.order_ship)

    @admin.action(description="Mark the selected orders delivered")
    def deliver(self, request, queryset):
        self._each(request, queryset, "Delivered", services.order_deliver)

    @admin.action(description="Cancel the selected orders (release stock, refund)")
    def cancel(self, request, queryset):
        self._each(request, queryset, "Cancelled", services.order_cancel, reason="By staff")


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    """Customer e-mails: unsent ones are retried by the beat's recovery (emails.py)."""

    list_display = ("subject", "recipient", "created_at", "sent_at", "attempts")
    list_filter = (("sent_at", admin.EmptyFieldListFilter),)
    search_fields = ("recipient", "=event_id")
    date_hierarchy = "created_at"
