from django.db import models


class DailySales(models.Model):
    """Units of one book sold on one day (UTC), less those of orders later cancelled."""

    day = models.DateField()
    book_id = models.BigIntegerField()
    title = models.CharField(max_length=300)
    units = models.IntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["day", "book_id"], name="sales_day_book")]
        indexes = [models.Index(fields=["day", "-units"], name="sales_day_units")]

    def __str__(self) -> str:
        return f"{self.day} {self.title}: {self.units}"


class DailyRevenue(models.Model):
    """Money taken (payments less refunds) on one day (UTC)."""

    day = models.DateField(primary_key=True)
    revenue = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    payments = models.PositiveIntegerField(default=0)
    refunds = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.day}: {self.revenue}"


class StockLevel(models.Model):
    """Units on hand per book, with what a low-stock list needs to show."""

    book_id = models.BigIntegerField(primary_key=True)
    title = models.CharField(max_length=300)
    on_hand = models.IntegerField(default=0)
    allow_backorder = models.BooleanField(default=False)
    discontinued = models.BooleanField(default=False)

    class Meta:
        indexes = [models.Index(fields=["on_hand"], name="stocklevel_on_hand")]

    def __str__(self) -> str:
        return f"{self.title}: {self.on_hand}"
