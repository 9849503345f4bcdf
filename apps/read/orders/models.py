from django.db import models


class OrderSummary(models.Model):
    """One row per order as its customer sees it: lines with the titles and prices of the day
    it was placed, and the timeline of its status changes."""

    order_id = models.BigIntegerField(primary_key=True)
    customer_id = models.BigIntegerField()
    status = models.CharField(max_length=20)
    total = models.DecimalField(max_digits=12, decimal_places=2)
    refunded = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    # [{"line_id", "book_id", "title", "unit_price", "quantity", "backordered"}]
    lines = models.JSONField(default=list)
    item_count = models.PositiveIntegerField()
    shipping_address = models.TextField()
    cancel_reason = models.CharField(max_length=200, blank=True)
    # [{"status": "paid", "at": "...", "position": 12}, ...] oldest first
    timeline = models.JSONField(default=list)
    placed_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    position = models.BigIntegerField(help_text="The last event applied to this row.")

    class Meta:
        ordering = ["-placed_at", "-order_id"]
        indexes = [
            models.Index(
                fields=["customer_id", "-placed_at", "-order_id"], name="summary_customer"
            ),
            models.Index(fields=["status", "-placed_at"], name="summary_status"),
        ]

    def __str__(self) -> str:
        return f"Order {self.order_id}"


class CustomerProfile(models.Model):
    """A customer's name and address as their profile page shows them."""

    customer_id = models.BigIntegerField(primary_key=True)
    full_name = models.CharField(max_length=200)
    shipping_address = models.TextField(blank=True)
    position = models.BigIntegerField()

    def __str__(self) -> str:
        return self.full_name


class CustomerTotals(models.Model):
    customer_id = models.BigIntegerField(primary_key=True)
    orders = models.PositiveIntegerField(default=0)
    spent = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    position = models.BigIntegerField()

    def __str__(self) -> str:
        return f"Customer {self.customer_id}"
