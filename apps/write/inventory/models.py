from django.db import models
from django.db.models import Q


class StockItem(models.Model):
    """Units of one book free to sell. Reserving for an order takes units off `on_hand`;
    releasing puts them back. The constraint is the last word on overselling."""

    book = models.OneToOneField(
        "catalog.Book", primary_key=True, on_delete=models.PROTECT, related_name="stock"
    )
    on_hand = models.IntegerField(default=0)
    allow_backorder = models.BooleanField(
        default=False, help_text="Accept orders beyond stock and fill them when stock arrives."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(on_hand__gte=0),
                name="stock_on_hand_not_negative",
                violation_error_message="There are not that many on the shelf.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.book}: {self.on_hand}"
