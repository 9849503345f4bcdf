from django import forms
from django.contrib import admin

from apps.cqrs.admin import CommandAdmin, events_link
from apps.write.inventory import services
from apps.write.inventory.models import StockItem
from apps.write.inventory.services import ADJUSTMENT_REASONS, MAX_UNITS


class StockChangeForm(forms.ModelForm):
    receive = forms.IntegerField(
        required=False, min_value=1, max_value=MAX_UNITS, help_text="Units delivered."
    )
    adjust = forms.IntegerField(
        required=False,
        min_value=-MAX_UNITS,
        max_value=MAX_UNITS,
        help_text="Correction: negative to take units off, positive to add.",
    )
    reason = forms.ChoiceField(choices=[("", "---"), *ADJUSTMENT_REASONS.items()], required=False)
    note = forms.CharField(required=False, max_length=200)

    class Meta:
        model = StockItem
        fields = ["allow_backorder"]

    def clean(self):
        data = self.cleaned_data
        super().clean()
        if data.get("adjust") and not data.get("reason"):
            self.add_error("reason", "Say why the count changes.")
        if data.get("adjust") and self.instance.on_hand + data["adjust"] < 0:
            self.add_error("adjust", f"Only {self.instance.on_hand} on hand.")
        return data


@admin.register(StockItem)
class StockItemAdmin(CommandAdmin):
    form = StockChangeForm
    list_display = ("book", "on_hand", "allow_backorder", "updated_at")
    list_filter = ("allow_backorder",)
    search_fields = ("book__title", "=book__isbn")
    fields = ("book", "on_hand", "allow_backorder", "receive", "adjust", "reason", "note", "events")
    readonly_fields = ("book", "on_hand", "events")

    def has_add_permission(self, request):
        return False  # a stock row appears with the first delivery of a book

    @admin.display(description="History")
    def events(self, obj):
        return events_link("stock", obj.pk)

    def save_model(self, request, obj, form, change):
        data, user = form.cleaned_data, request.user
        if data.get("receive"):
            services.stock_receive(
                actor=user, book_id=obj.pk, quantity=data["receive"], note=data["note"]
            )
        if data.get("adjust"):
            services.stock_adjust(
                actor=user,
                book_id=obj.pk,
                change=data["adjust"],
                reason=data["reason"],
                note=data["note"],
            )
        if "allow_backorder" in form.changed_data:
            services.stock_set_backorders(
                actor=user, book_id=obj.pk, allowed=data["allow_backorder"]
            )
